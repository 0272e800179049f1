"""The degenerate-answer rules of text.py on the answers that made them necessary."""

from __future__ import annotations

import pytest

from kdscale.text import character_run_share, has_sentence, is_degenerate, is_repetitive

LOOP = ("The water cycle is a cycle that can be a cycle in a cycle in a cycle in a cycle in a cycle "
        "in a cycle in a cycle in a cycle in a cycle in a cycle in a cycle")
GOOD = [
    "The water cycle moves water between the sea, the air and the land. The sun heats the sea, vapour rises, "
    "cools into clouds and falls again as rain or snow.",
    "1. Eat a balanced diet with plenty of fruit and vegetables.\n2. Exercise for thirty minutes a day.\n"
    "3. Sleep seven to eight hours a night.",
    "Dear Sam, thank you for the lovely gift.",
    "Birds sing.",  # short, and still a sentence
    "Yes, absolutely!!!!!",  # a short run is emphasis, not a loop
    "Step one\n----------\nMix the flour and the sugar in a large bowl, then add the eggs one at a time and "
    "stir until smooth.",  # a separator line is a small share of the answer
    "The population grew from 1000 to 1000000 in a century.",
    '{"colour": "blue", "size": "large"}',  # what a "reply in JSON" prompt asks for
]


def test_a_loop_is_repetitive_and_degenerate():
    assert is_repetitive(LOOP)
    assert has_sentence(LOOP)  # it reads as English: only the loop rule catches it
    assert is_degenerate(LOOP)


@pytest.mark.parametrize("text", ["a a a a", "a a a a a a a a a a a a a a a a a a a a", "........", "", "   \n",
                                  "1, 2, 3, 4, 5", "<<Title>>"])
def test_text_without_a_sentence_is_degenerate(text):
    assert not has_sentence(text)
    assert is_degenerate(text)


@pytest.mark.parametrize("text", GOOD)
def test_ordinary_answers_are_not_degenerate(text):
    assert has_sentence(text) and not is_repetitive(text)
    assert not is_degenerate(text)


# Loops of digits, symbols and word fragments, from the embedded students' answers: the word rule
# misses them (a run of zeros is one word; "*" is none).
@pytest.mark.parametrize("text", [
    "The mark is a 40, 40, 4000, " + "4" + "0" * 120,
    "The main part of water, " + "* " * 60,
    "The petite-pet" + "est" * 50,
    "\U0001f368" * 32,  # a teacher answer to "Write a tweet announcing a charity bake sale"
])
def test_a_character_loop_is_repetitive(text):
    assert character_run_share(text) > 0.5
    assert is_repetitive(text) and is_degenerate(text)


def test_is_repetitive_thresholds():
    # 4-grams of "alpha beta gamma delta" repeated: 17 n-grams, 4 distinct, so 76% repeat. Its unit is
    # longer than a character run's, so the word rule alone decides.
    looped = " ".join(["alpha beta gamma delta"] * 5)
    assert character_run_share(looped) == 0
    assert is_repetitive(looped, n=4, max_fraction=0.5)
    assert not is_repetitive(looped, n=4, max_fraction=0.8)
    # 5 n-grams < 2n: too short to judge
    assert not is_repetitive("alpha beta gamma delta alpha beta gamma delta", n=4, max_fraction=0.1)
    # words are compared lowercased (the character runs cover 62% of it, under the threshold)
    assert is_repetitive("Hello, HELLO... hello! hello hello hello hello hello hello", n=1, max_fraction=0.7)
