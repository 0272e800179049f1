"""kdscale.adherence: the checks, the blank-answer rule, scoring and the adherence file loader."""

import inspect
import json
import random
import pytest

from kdscale.adherence import evaluate_response, load_adherence, type_counts
from kdscale.adherence.checks import CHECKS, REQUIRED_ARGS
from kdscale.adherence.language import LANGUAGES, detect_language
from kdscale.adherence.score import loose_variants
from kdscale.adherence.text import count_words, split_sentences
from kdscale.errors import UserError

YNM = ["My answer is yes.", "My answer is no.", "My answer is maybe."]

# (type, args, response, expected). Every type needs >= 1 pass and >= 2 fails, one of them blank.
CASES = [
    ("max_words", {"max": 5}, "one two three four five", True),
    ("max_words", {"max": 5}, "**one** two *three*", True),
    ("max_words", {"max": 5}, "one two three four five six", False),
    ("max_words", {"max": 5}, "", False),
    ("max_words", {"max": 5}, "   \n ", False),
    ("min_words", {"min": 3}, "don't stop now", True),
    ("min_words", {"min": 3}, "# Heading\n**bold** words here", True),
    ("min_words", {"min": 3}, "too short", False),
    ("min_words", {"min": 3}, " ", False),
    ("sentence_count", {"relation": "exactly", "n": 2}, "It rains. It pours!", True),
    ("sentence_count", {"relation": "exactly", "n": 2}, "One. Two. Three.", False),
    ("sentence_count", {"relation": "exactly", "n": 2}, "", False),
    ("sentence_count", {"relation": "at_most", "n": 2}, "Just one sentence.", True),
    ("sentence_count", {"relation": "at_most", "n": 2}, "Sun. Rain. Snow.", False),
    ("sentence_count", {"relation": "at_most", "n": 2}, "\n\n", False),
    ("sentence_count", {"relation": "at_most", "n": 2}, "...", False),
    ("sentence_count", {"relation": "at_least", "n": 3}, "A cat. A dog? A bird!", True),
    ("sentence_count", {"relation": "at_least", "n": 3}, "A cat. A dog.", False),
    ("sentence_count", {"relation": "at_least", "n": 3}, "", False),
    ("lowercase", {}, "all lowercase here, 123.", True),
    ("lowercase", {}, "Not all lowercase", False),
    ("lowercase", {}, "", False),
    ("lowercase", {}, "  ", False),
    ("uppercase", {}, "WET FLOOR! TAKE CARE.", True),
    ("uppercase", {}, "WET floor", False),
    ("uppercase", {}, "", False),
    ("no_commas", {}, "no commas in here", True),
    ("no_commas", {}, "one, two", False),
    ("no_commas", {}, "full-width，comma", False),
    ("no_commas", {}, "", False),
    ("no_commas", {}, "...", False),
    ("end_phrase", {"phrase": "That is all."}, "Great movie. That is all.", True),
    ("end_phrase", {"phrase": "That is all."}, "Great movie. that is all.  \n", True),
    ("end_phrase", {"phrase": "That is all."}, '"Great movie. That is all."', True),
    ("end_phrase", {"phrase": "That is all."}, "That is all. Bye.", False),
    ("end_phrase", {"phrase": "That is all."}, "", False),
    ("quoted", {}, '"Fresh bread, every day."', True),
    ("quoted", {}, "  “Curly quotes count.”\n", True),
    ("quoted", {}, 'Fresh bread "every" day', False),
    ("quoted", {}, '""', False),
    ("quoted", {}, "", False),
    ("json", {}, '{"country": "France", "capital": "Paris"}', True),
    ("json", {}, '```json\n{"a": [1, 2]}\n```', True),
    ("json", {}, '```\n["milk", "eggs"]\n```', True),
    ("json", {}, 'Here it is: {"a": 1}', False),
    ("json", {}, "{'a': 1}", False),
    ("json", {}, "", False),
    ("title", {}, "<<Ode to the Tide>>\nWaves roll in.", True),
    ("title", {}, "Ode to the Tide\nWaves roll in.", False),
    ("title", {}, "<<   >> waves", False),
    ("title", {}, "", False),
    ("bullet_count", {"n": 3}, "* run\n* swim\n- lift", True),
    ("bullet_count", {"n": 3}, "Benefits:\n  * **Heart**: stronger\n* Mood\n* Sleep\n**Done**", True),
    ("bullet_count", {"n": 3}, "* run\n* swim", False),
    ("bullet_count", {"n": 3}, "* a\n* b\n* c\n* d", False),
    ("bullet_count", {"n": 3}, "**a**\n---\n*b*", False),
    ("bullet_count", {"n": 3}, " ", False),
    ("postscript", {"marker": "P.S."}, "Happy birthday!\n\nP.S. Cake is on me.", True),
    ("postscript", {"marker": "P.S."}, "Happy birthday!\n**p.s.** see you soon", True),
    ("postscript", {"marker": "P.S."}, "Happy birthday! See you soon.", False),
    ("postscript", {"marker": "P.S."}, "Happy birthday, cake P.S. inline", False),
    ("postscript", {"marker": "P.S."}, "", False),
    ("keywords", {"words": ["sunlight", "water"]}, "Plants use Sunlight and WATER.", True),
    ("keywords", {"words": ["sunlight", "water"]}, "Plants use **sunlight** and _water_.", True),
    ("keywords", {"words": ["sunlight", "water"]}, "Plants use sunlight and a waterfall.", False),
    ("keywords", {"words": ["sunlight", "water"]}, "Plants use sunlight.", False),
    ("keywords", {"words": ["sunlight", "water"]}, "", False),
    ("forbidden_words", {"words": ["fur", "whiskers"]}, "A cat has soft furry paws.", True),
    ("forbidden_words", {"words": ["fur", "whiskers"]}, "A cat has soft Fur.", False),
    ("forbidden_words", {"words": ["fur", "whiskers"]}, "Long **whiskers** twitch.", False),
    ("forbidden_words", {"words": ["fur", "whiskers"]}, "", False),
    ("forbidden_words", {"words": ["fur", "whiskers"]}, "\t", False),
    ("placeholders", {"n": 2}, "Hi [name], lunch at [time]?", True),
    ("placeholders", {"n": 2}, "Hi [name], lunch today?", False),
    ("placeholders", {"n": 2}, "Hi [ ], lunch at []?", False),
    ("placeholders", {"n": 2}, "", False),
    ("choice", {"options": YNM}, "My answer is no. Tomatoes are fruits, botanically... wait.", True),
    ("choice", {"options": YNM}, "**My answer is yes.**", True),
    ("choice", {"options": ["yes", "no", "not sure"]}, "yes", True),
    ("choice", {"options": ["yes", "no", "not sure"]}, "i know it does", False),
    ("choice", {"options": YNM}, "My answer is yes. My answer is no.", False),
    ("choice", {"options": YNM}, "Tomatoes are fruits.", False),
    ("choice", {"options": YNM}, "", False),
    ("start_word", {"word": "Bees"}, "Bees make honey.", True),
    ("start_word", {"word": "Bees"}, "**bees** make honey.", True),
    ("start_word", {"word": "Bees"}, '"Bees make honey."', True),
    ("start_word", {"word": "Bees"}, "Honey is made by bees.", False),
    ("start_word", {"word": "Bees"}, "Beeswax and honey.", False),
    ("start_word", {"word": "Bees"}, "", False),
    ("keyword_frequency", {"word": "river", "relation": "at_least", "n": 3}, "A River, a river; RIVER!", True),
    ("keyword_frequency", {"word": "river", "relation": "at_least", "n": 3}, "A river and two rivers, riverside.", False),
    ("keyword_frequency", {"word": "river", "relation": "at_most", "n": 1}, "The river rose.", True),
    ("keyword_frequency", {"word": "river", "relation": "at_most", "n": 1}, "River, river.", False),
    ("keyword_frequency", {"word": "river", "relation": "exactly", "n": 2}, "*river* and **river**", True),
    ("keyword_frequency", {"word": "river", "relation": "at_least", "n": 1}, "", False),
    ("letter_frequency", {"letter": "s", "relation": "at_least", "n": 5}, "Sunny summer days pass so fast.", True),
    ("letter_frequency", {"letter": "s", "relation": "at_least", "n": 5}, "Hot days in July.", False),
    ("letter_frequency", {"letter": "z", "relation": "at_most", "n": 1}, "A quiet zoo.", True),
    ("letter_frequency", {"letter": "z", "relation": "at_most", "n": 1}, "Zebras at the zoo.", False),
    ("letter_frequency", {"letter": "z", "relation": "at_most", "n": 1}, " ", False),
    ("paragraph_count", {"n": 2, "separator": "***"}, "First part.\n***\nSecond part.", True),
    ("paragraph_count", {"n": 2, "separator": "***"}, "***\nFirst part. *** Second part.\n***", True),
    ("paragraph_count", {"n": 2, "separator": "***"}, "First part.\n\nSecond part.", False),
    ("paragraph_count", {"n": 2, "separator": "***"}, "First.\n***\n***\nSecond.", False),
    ("paragraph_count", {"n": 2, "separator": "***"}, "***Bold italic*** stays one paragraph.", False),
    ("paragraph_count", {"n": 3, "separator": "blank_line"}, "Spring.\n\nSummer.\n  \n\nWinter.", True),
    ("paragraph_count", {"n": 3, "separator": "blank_line"}, "Spring.\nSummer.\nWinter.", False),
    ("paragraph_count", {"n": 3, "separator": "blank_line"}, "Spring.\r\n\r\nSummer.\r\n\r\nWinter.", True),
    ("paragraph_count", {"n": 3, "separator": "blank_line"}, "", False),
    ("paragraph_first_word", {"n": 2, "nth": 2, "word": "Flowers"}, "Spring is here.\n\n**Flowers** bloom.", True),
    ("paragraph_first_word", {"n": 2, "nth": 2, "word": "Flowers"}, "Spring is here.\n\n\n\"Flowers,\" she said.", True),
    ("paragraph_first_word", {"n": 2, "nth": 2, "word": "Flowers"}, "Spring is here.\n\nBirds sing.", False),
    ("paragraph_first_word", {"n": 2, "nth": 2, "word": "Flowers"}, "Spring.\n\nFlowers bloom.\n\nBees hum.", False),
    ("paragraph_first_word", {"n": 2, "nth": 2, "word": "Flowers"}, "Spring. Flowers bloom.", False),
    ("paragraph_first_word", {"n": 2, "nth": 1, "word": "My"}, "", False),
    ("highlighted_sections", {"n": 2}, "Turn off the *tap* and fix **leaks** today.", True),
    ("highlighted_sections", {"n": 2}, "Use ***less*** water and *shorter* showers.", True),
    ("highlighted_sections", {"n": 2}, "Fix _leaks_ and take __short__ showers.", True),
    ("highlighted_sections", {"n": 2}, "* tap\n* leaks\n* showers", False),
    ("highlighted_sections", {"n": 2}, "Compute 2*3*4 and ** ** here.", False),
    ("highlighted_sections", {"n": 1}, "", False),
    ("section_count", {"marker": "SECTION", "n": 2}, "SECTION 1\nPack food.\nSECTION 2\nFind a park.", True),
    ("section_count", {"marker": "SECTION", "n": 2}, "## **Section 1**: food\n## Section 2: games", True),
    ("section_count", {"marker": "SECTION", "n": 2}, "SECTION 1\nPack food and find a park.", False),
    ("section_count", {"marker": "SECTION", "n": 2}, "SECTION 1 food\nSECTION 2 park\nSECTION 3 games", False),
    ("section_count", {"marker": "SECTION", "n": 2}, "Food, see section 1. Park, see section 2.", False),
    ("section_count", {"marker": "SECTION", "n": 2}, "SECTION 1: pack food. SECTION 2: find a park.", True),
    ("section_count", {"marker": "Part", "n": 1}, "", False),
    ("repeat_prompt", {"prompt": "What is the largest ocean on Earth?"}, "What is the largest ocean on Earth? The Pacific.", True),
    ("repeat_prompt", {"prompt": "What is the largest ocean on Earth?"}, "**What is the largest ocean on earth?**\nThe Pacific.", True),
    ("repeat_prompt", {"prompt": "What is the largest ocean on Earth?"}, "The Pacific is the largest ocean on Earth.", False),
    ("repeat_prompt", {"prompt": "What is the largest ocean on Earth?"}, "Sure! What is the largest ocean on Earth? The Pacific.", False),
    ("repeat_prompt", {"prompt": "What is the largest ocean on Earth?"}, "What is the largest ocean? The Pacific.", False),
    ("repeat_prompt", {"prompt": "What is the largest ocean on Earth?"}, "", False),
    ("two_responses", {}, "Goldie\n******\nBubbles", True),
    ("two_responses", {}, "******\nGoldie\n******\nBubbles\n", True),
    ("two_responses", {}, "Goldie\n******\ngoldie", False),
    ("two_responses", {}, "Goldie\n******\nBubbles\n******\nFinn", False),
    ("two_responses", {}, "Goldie\n******\n******\nBubbles", False),
    ("two_responses", {}, "Goldie\n*******\nBubbles", False),
    ("two_responses", {}, "", False),
    ("capital_word_frequency", {"relation": "at_least", "n": 2}, "ALWAYS wear a HELMET.", True),
    ("capital_word_frequency", {"relation": "at_least", "n": 2}, "I wear A helmet, Always.", False),
    ("capital_word_frequency", {"relation": "at_most", "n": 2}, "Bring WATER. I mean it, DON'T forget.", True),
    ("capital_word_frequency", {"relation": "at_most", "n": 2}, "BRING WATER AND SNACKS.", False),
    ("capital_word_frequency", {"relation": "at_most", "n": 2}, "", False),
    ("response_language", {"language": "fr"}, "J'aime l'automne. Les feuilles sont belles et il fait frais.", True),
    ("response_language", {"language": "fr"}, "I love autumn. The leaves are pretty and it is cool.", False),
    ("response_language", {"language": "es"}, "Hoy hace sol y la temperatura es muy agradable.", True),
    ("response_language", {"language": "es"}, "Hoje está sol e a temperatura é muito agradável para nós.", False),
    ("response_language", {"language": "es"}, "", False),
]


@pytest.mark.parametrize("kind,args,response,expected", CASES)
def test_check(kind, args, response, expected):
    assert CHECKS[kind](response, **args) is expected


def test_cases_cover_every_type():
    # each type has a pass, two fails, and a blank-response fail
    for kind in CHECKS:
        mine = [c for c in CASES if c[0] == kind]
        assert any(c[3] for c in mine), kind
        assert sum(not c[3] for c in mine) >= 2, kind
        assert any(not c[3] and not c[2].strip() for c in mine), kind


@pytest.mark.parametrize("kind", sorted(CHECKS))
@pytest.mark.parametrize("blank", ["", " ", "\n\t  \n"])
def test_blank_fails_every_check(kind, blank):
    # even checks that would pass vacuously (lowercase, no_commas, max_words, forbidden_words, ...)
    args = {
        "max": 100, "min": 1, "relation": "at_most", "n": 1, "phrase": "end", "marker": "P.S.",
        "words": ["zebra"], "options": ["yes", "no"], "word": "yes", "letter": "e", "separator": "***", "nth": 1,
        "prompt": "Say hi.", "language": "en",
    }
    kwargs = {k: args[k] for k in REQUIRED_ARGS[kind]}
    assert CHECKS[kind](blank, **kwargs) is False


def test_registry_matches_signatures():
    assert set(CHECKS) == set(REQUIRED_ARGS)
    for kind, fn in CHECKS.items():
        assert fn.__name__ == f"check_{kind}"
        assert fn.__doc__ and "\n" not in fn.__doc__.strip()
        params = list(inspect.signature(fn).parameters)
        assert params[0] == "response"
        assert set(params[1:]) == REQUIRED_ARGS[kind]


def test_markdown_does_not_change_counts():
    assert count_words("**Water** moves: _evaporation_, `rain`.") == 4
    assert count_words("# The Water Cycle\n\n**bold** text") == 5
    assert count_words("don't stop") == 2
    assert split_sentences("**Note.** The sky is blue! Why? Light.") == ["Note.", "The sky is blue!", "Why?", "Light."]
    assert split_sentences("No end punctuation") == ["No end punctuation"]
    assert split_sentences("   ") == []
    assert split_sentences("3.14 is pi. Yes.") == ["3.14 is pi.", "Yes."]


def test_loose_variants():
    v = loose_variants("Sure!\n**the answer**\nHope this helps")
    assert v == [
        "Sure!\n**the answer**\nHope this helps",
        "**the answer**\nHope this helps",
        "Sure!\n**the answer**",
        "**the answer**",
        "Sure!\nthe answer\nHope this helps",
        "the answer\nHope this helps",
        "Sure!\nthe answer",
        "the answer",
    ]
    assert len(v) == len(set(v))
    # a single line collapses: dropping the first or last line leaves "" for both
    assert loose_variants("just one line") == ["just one line", ""]


def test_chatty_first_line_fails_strict_passes_loose():
    checks = [{"type": "lowercase"}, {"type": "max_words", "max": 20}]
    response = "Sure! Here is the description:\nwater evaporates, forms clouds, and falls as rain."
    result = evaluate_response(checks, response)
    assert result == {
        "strict": False,
        "loose": True,
        "checks": [
            {"type": "lowercase", "strict": False, "loose": True},
            {"type": "max_words", "strict": True, "loose": True},
        ],
    }


def test_markdown_stars_fixed_by_loose():
    # bolding the whole answer hides the quotes; the star-stripped loose variant forgives it
    checks = [{"type": "quoted"}]
    assert evaluate_response(checks, '**"Bread you can trust."**') == {
        "strict": False, "loose": True, "checks": [{"type": "quoted", "strict": False, "loose": True}],
    }


def test_evaluate_response_fails_both():
    checks = [{"type": "uppercase"}, {"type": "keywords", "words": ["run"]}]
    result = evaluate_response(checks, "JOIN THE FUN RUN!")
    assert result["strict"] is True and result["loose"] is True
    result = evaluate_response(checks, "Join us.\nJOIN THE FUN WALK!")
    assert result["strict"] is False and result["loose"] is False
    assert [c["type"] for c in result["checks"]] == ["uppercase", "keywords"]
    assert result["checks"][0] == {"type": "uppercase", "strict": False, "loose": True}
    assert result["checks"][1] == {"type": "keywords", "strict": False, "loose": False}
    blank = evaluate_response(checks, "")
    assert blank["strict"] is False and blank["loose"] is False


# -----------------------------------------------------------------------------
# the packaged adherence set

def test_packaged_set():
    records = load_adherence()
    assert len(records) == 50
    ids = [r["id"] for r in records]
    assert len(set(ids)) == 50
    counts = type_counts(records)
    covered = [t for t, k in counts.items() if k >= 2]
    assert len(covered) >= 20 and set(covered) == set(CHECKS), counts  # every type, each on 2+ prompts
    for r in records:
        assert r["instruction"].strip() and isinstance(r["input"], str)
        assert 1 <= len(r["checks"]) <= 2
        for c in r["checks"]:
            assert set(c) - {"type"} == REQUIRED_ARGS[c["type"]]
        # checks run cleanly on a typical answer and a blank one
        assert evaluate_response(r["checks"], "")["loose"] is False
        evaluate_response(r["checks"], "Sure! Here is my answer.\nIt is short.")


# -----------------------------------------------------------------------------
# bad adherence files: one-line UserError naming the line

GOOD = {"id": "a-1", "instruction": "Say hi in lowercase.", "input": "", "checks": [{"type": "lowercase"}]}


def _write(tmp_path, lines):
    path = tmp_path / "adherence.jsonl"
    path.write_text("\n".join(l if isinstance(l, str) else json.dumps(l) for l in lines) + "\n", encoding="utf-8")
    return path


def _rec(**changes):
    rec = dict(GOOD, id=changes.pop("id", "a-2"))
    rec.update(changes)
    return {k: v for k, v in rec.items() if v is not None}


def _error(path):
    with pytest.raises(UserError) as e:
        load_adherence(path)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_loads_good_file_with_blank_lines(tmp_path):
    path = _write(tmp_path, [GOOD, "", _rec(id="a-2", input=None)])
    records = load_adherence(path)
    assert [r["id"] for r in records] == ["a-1", "a-2"]
    assert records[1]["input"] == ""


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.jsonl"
    msg = _error(missing)
    assert msg == (
        f"adherence file not found: {missing}; set eval.adherence_file to an existing .jsonl "
        "or leave it empty for the built-in set"
    )


def test_not_utf8(tmp_path):
    path = tmp_path / "adherence.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"id": "a-2", "instruction": "caf\xe9"}\n')
    msg = _error(path)
    assert f"{path}:2:" in msg and "UTF-8" in msg


def test_malformed_json(tmp_path):
    msg = _error(_write(tmp_path, [GOOD, GOOD | {"id": "a-2"}, '{"id": "a-3", "instruction": }']))
    assert ":3: malformed JSON" in msg


def test_not_an_object(tmp_path):
    assert ":2: expected a JSON object" in _error(_write(tmp_path, [GOOD, "[1, 2]"]))


@pytest.mark.parametrize("instruction", [None, "", "   "])
def test_missing_or_empty_instruction(tmp_path, instruction):
    msg = _error(_write(tmp_path, [GOOD, _rec(instruction=instruction)]))
    assert ":2:" in msg and "'instruction'" in msg


@pytest.mark.parametrize("rid", [None, ""])
def test_missing_id(tmp_path, rid):
    msg = _error(_write(tmp_path, [GOOD, _rec(id=rid)]))
    assert ":2:" in msg and "'id'" in msg


def test_duplicate_id(tmp_path):
    msg = _error(_write(tmp_path, [GOOD, _rec(), _rec(id="a-1")]))
    assert ":3: duplicate id 'a-1' (first used on line 1)" in msg


@pytest.mark.parametrize("checks", [[], None, {"type": "lowercase"}])
def test_empty_checks(tmp_path, checks):
    msg = _error(_write(tmp_path, [GOOD, _rec(checks=checks)]))
    assert ":2:" in msg and "'checks'" in msg


def test_unknown_check_type(tmp_path):
    msg = _error(_write(tmp_path, [GOOD, GOOD | {"id": "a-2"}, GOOD | {"id": "a-3"}, GOOD | {"id": "a-4"},
                                   GOOD | {"id": "a-5"}, GOOD | {"id": "a-6"}, _rec(id="a-7", checks=[{"type": "lowercas"}])]))
    assert msg.startswith(f"{tmp_path / 'adherence.jsonl'}:7: unknown check type 'lowercas' (did you mean 'lowercase'?); known types: ")
    for kind in CHECKS:
        assert kind in msg


def test_unknown_check_type_without_suggestion(tmp_path):
    msg = _error(_write(tmp_path, [_rec(checks=[{"type": "zzz"}])]))
    assert ":1: unknown check type 'zzz'; known types:" in msg


def test_check_without_type(tmp_path):
    assert ":1: checks[0]" in _error(_write(tmp_path, [_rec(checks=[{"max": 3}])]))


def test_missing_arg(tmp_path):
    msg = _error(_write(tmp_path, [GOOD, _rec(checks=[{"type": "lowercase"}, {"type": "sentence_count", "n": 2}])]))
    assert ":2: checks[1]: check 'sentence_count' is missing arg 'relation'; it takes: n, relation" in msg


def test_extra_arg(tmp_path):
    msg = _error(_write(tmp_path, [GOOD, _rec(checks=[{"type": "lowercase", "strict": True}])]))
    assert ":2: checks[0]: check 'lowercase' got unexpected arg 'strict'; it takes: no args" in msg


@pytest.mark.parametrize(
    "check",
    [
        {"type": "max_words", "max": "40"},
        {"type": "max_words", "max": 0},
        {"type": "bullet_count", "n": True},
        {"type": "sentence_count", "relation": "fewer", "n": 2},
        {"type": "keywords", "words": "sunlight"},
        {"type": "forbidden_words", "words": []},
        {"type": "choice", "options": ["yes"]},
        {"type": "start_word", "word": "two words"},
        {"type": "end_phrase", "phrase": " "},
    ],
)
def test_bad_arg_value(tmp_path, check):
    msg = _error(_write(tmp_path, [GOOD, _rec(checks=[check])]))
    assert ":2: checks[0]:" in msg and "must be" in msg


def test_unexpected_record_key(tmp_path):
    msg = _error(_write(tmp_path, [_rec(chekcs=[{"type": "lowercase"}])]))
    assert ":1: unexpected key 'chekcs'" in msg


def test_empty_file(tmp_path):
    path = tmp_path / "adherence.jsonl"
    path.write_text("\n\n", encoding="utf-8")
    assert "no prompts found" in _error(path)


# -----------------------------------------------------------------------------
# issue 13: each defect, with the verdict a careful human grader gives (True = the check passes)

SENTENCES = [  # (answer, sentences a grader counts)
    ("Leaves turn red in Oct. and fall by Nov. every year.", 1),
    ("Eat fruit, e.g. apples. Dr. Smith agrees.", 2),
    ("The U.S. is large. Mr. Smith lives there.", 2),
    ("J. K. Rowling wrote it. It sold well.", 2),
    ("1. Gravity pulls.\n2. It bends light.", 2),
    ("Steps:\n(1) Mix the flour\n(2) Bake it", 3),
    ('He shouted "Stop!" Then he ran.', 2),
    ("He shouted “Stop!” Then he ran.", 2),
    ('"Stop!" he said. Then he ran.', 2),
    ("It was late (almost midnight.) We left.", 2),
    ("it rains. it pours. i stay in.", 3),  # an all-lowercase answer still has sentence ends
    ("# The Moon\n\nThe moon is bright. It has no light of its own.", 2),  # a heading is not a sentence
    ("Wait... Really? Yes!", 3),
]


@pytest.mark.parametrize("text,n", SENTENCES)
def test_sentence_count_as_a_grader_counts(text, n):
    assert len(split_sentences(text)) == n, split_sentences(text)
    assert CHECKS["sentence_count"](text, relation="exactly", n=n) is True


YNS = ["yes", "no", "not sure"]
ISSUE_13 = [
    # choice: mentioning another option is not choosing it
    ("choice", {"options": YNS}, "yes, there is no doubt about it.", True),
    ("choice", {"options": YNS}, "No. I checked, and yes, the shop is closed.", True),
    ("choice", {"options": YNS}, "Not sure, but maybe.", True),
    ("choice", {"options": YNS}, "yes or no, who knows", False),
    ("choice", {"options": YNS}, "Yes. No.", False),
    ("choice", {"options": YNM}, "Sure! My answer is yes. It is no secret.", True),
    ("choice", {"options": YNM}, "My answer is yes, because tomatoes have seeds.", True),
    ("choice", {"options": YNM}, "My answer is maybe", True),
    # json: an object or a list, never a bare value, and deep nesting does not crash
    ("json", {}, "42", False),
    ("json", {}, '"France"', False),
    ("json", {}, "null", False),
    ("json", {}, "NaN", False),
    ("json", {}, "Infinity", False),
    ("json", {}, '{"temperature": NaN}', False),
    ("json", {}, '{"a": ' * 100_000 + "1" + "}" * 100_000, False),  # valid, but too deep to read: no crash
    ("json", {}, "[1, " * 100_000, False),
    ("json", {}, "```JSON\n[1]\n```", True),
    ("json", {}, "```json\n{}\n```", False),
    # end_phrase: whole words, and closing quotes or markdown after the phrase are fine
    ("end_phrase", {"phrase": "any other questions?"}, "...do you have many other questions?", False),
    ("end_phrase", {"phrase": "any other questions?"}, "Rainbows are light. any other questions?", True),
    ("end_phrase", {"phrase": "That is all."}, "“Great movie. That is all.”", True),
    ("end_phrase", {"phrase": "That is all."}, "Great movie. **That is all.**", True),
    ("end_phrase", {"phrase": "That is all."}, "Great movie. That is all.**", True),
    ("end_phrase", {"phrase": "That is all."}, "Great movie. That is\nall.", True),
    # keywords / forbidden / start word: markdown marks inside a keyword are part of it
    ("keywords", {"words": ["snake_case"]}, "Python names use snake_case.", True),
    ("keywords", {"words": ["snake_case"]}, "Python names use snake case.", False),
    ("forbidden_words", {"words": ["C#"]}, "I write C# at work.", False),
    ("forbidden_words", {"words": ["C#"]}, "I write C at work.", True),
    ("forbidden_words", {"words": ["fur"]}, "She wore a fur_coat.", False),
    ("forbidden_words", {"words": ["fur"]}, "A fur-lined hood.", False),
    ("forbidden_words", {"words": ["fur"]}, "A furry friend.", True),
    ("forbidden_words", {"words": ["wolf"]}, "The Wolf's den.", False),
    ("start_word", {"word": "snake_case"}, "snake_case is a naming style.", True),
    # postscript: spaced and quoted forms count; P.S.A. and a P.S. before the body do not
    ("postscript", {"marker": "P.S."}, "See you soon.\nP. S. Bring cake.", True),
    ("postscript", {"marker": "P.S."}, "See you soon.\n> P.S. Bring cake.", True),
    ("postscript", {"marker": "P.S."}, "See you soon.\n## P.S.\nBring cake.", True),
    ("postscript", {"marker": "P.S."}, "Ride safe.\nP.S.A. wear a helmet", False),
    ("postscript", {"marker": "P.S."}, "P.S. I missed you.\nSee you soon.", False),
    ("postscript", {"marker": "P.P.S."}, "Hi.\nP.S. one\nP. P. S. two", True),
    ("postscript", {"marker": "P.S."}, "See you soon.\nP.S I miss you.", True),
    ("postscript", {"marker": "P.S."}, "See you soon.\nPS I miss you.", False),
    # bullets: + and • lists count; a * * * rule and a lone - line do not
    ("bullet_count", {"n": 3}, "+ sun\n+ rain\n+ snow", True),
    ("bullet_count", {"n": 3}, "• sun\n• rain\n• snow", True),
    ("bullet_count", {"n": 3}, "* sun\n* * *\n* rain\n* snow", True),
    ("bullet_count", {"n": 3}, "* sun\n- - -\n* rain", False),
    ("bullet_count", {"n": 2}, "-\nsun\n* rain\n* snow", True),
    # placeholders: citations, checkboxes and links are not placeholders
    ("placeholders", {"n": 1}, "As shown [1], tick [x] and click [here](https://example.com).", False),
    ("placeholders", {"n": 1}, '["milk", "eggs"]', False),
    ("placeholders", {"n": 2}, "Dear [Your Name], see you at [time].", True),
    # titles: shifts in code and empty brackets are not titles
    ("title", {}, "Compute x << 2 >> 1 first.", False),
    ("title", {}, "Use a << b >> c here.", False),
    ("title", {}, "<<>> and then text", False),
    ("title", {}, "<< The Sea >>\nWaves roll.", True),
    ("title", {}, "<<1984>> is a novel.", True),
    # commas of other scripts
    ("no_commas", {}, "نعم، شكرا", False),
    ("no_commas", {}, "はい、どうぞ", False),
    ("no_commas", {}, "はい。どうぞ", True),
    # phrases: curly apostrophes, line breaks and Unicode forms
    ("keywords", {"words": ["don't"]}, "I don’t know.", True),
    ("keywords", {"words": ["don’t"]}, "I don't know.", True),
    ("keywords", {"words": ["ice cream"]}, "I love ice\ncream.", True),
    ("keywords", {"words": ["café"]}, "A cafe\u0301 on the corner.", True),
    ("forbidden_words", {"words": ["cafe\u0301"]}, "A café on the corner.", False),
    ("keywords", {"words": ["don"]}, "I don't know.", False),
    ("keywords", {"words": ["well-known"]}, "A well\u2011known song.", True),
]


@pytest.mark.parametrize("kind,args,response,expected", ISSUE_13)
def test_issue_13_verdicts(kind, args, response, expected):
    assert CHECKS[kind](response, **args) is expected


# The five classes a differential run against an independent IFEval implementation found
# (issue 25), each on examples of its class, and the near misses that must keep their verdict.
ABC = ["A", "B", "C"]
ISSUE_25 = [
    # a possessive first word is the word
    ("start_word", {"word": "summer"}, "Summer's long evenings are the best.", True),
    ("start_word", {"word": "Dogs"}, "Dogs’ tails wag when they are happy.", True),
    ("start_word", {"word": "Paris"}, "**Paris's** museums open at nine.", True),
    ("start_word", {"word": "summer"}, "Summers are long here.", False),
    ("start_word", {"word": "summer"}, "Summertime is long here.", False),
    ("paragraph_first_word", {"n": 2, "nth": 2, "word": "winter"}, "Autumn ends.\n\nWinter's cold arrives.", True),
    # a no-break (or any Unicode) space is a space in section markers and line marks
    ("section_count", {"marker": "SECTION", "n": 2}, "SECTION\u00a01 Pack.\nSECTION\u00a02 Go.", True),
    ("section_count", {"marker": "Part", "n": 2}, "\u00a0Part 1: wake\n\u2003Part\u202f2: eat", True),
    ("section_count", {"marker": "Day", "n": 2}, "Day\u00a01 rest\nDay\u00a02 rest\nDay\u00a03 rest", False),
    ("postscript", {"marker": "P.S."}, "See you.\nP.\u00a0S.\u00a0Bring cake.", True),
    ("bullet_count", {"n": 2}, "*\u00a0sun\n-\u00a0rain", True),
    # a dotted all-capital abbreviation is a capital word; a lowercase one is not
    ("capital_word_frequency", {"relation": "at_least", "n": 1}, "We flew to the U.S.A. in May.", True),
    ("capital_word_frequency", {"relation": "exactly", "n": 2}, "The U.K. and the U.S. signed it.", True),
    ("capital_word_frequency", {"relation": "at_least", "n": 1}, "Bring snacks, e.g. fruit.", False),
    ("capital_word_frequency", {"relation": "at_most", "n": 0}, "Meet at 5 p.m. by the gate.", True),
    # a spaced or undotted marker is the marker, however the instruction writes it
    ("postscript", {"marker": "P.P.S"}, "Hi.\nP.S. one\nP. P. S. two", True),
    ("postscript", {"marker": "P. P. S."}, "Hi.\nP.P.S. two", True),
    ("postscript", {"marker": "P.P.S."}, "Hi.\nP .P .S. two", True),
    ("postscript", {"marker": "P.S."}, "Hi.\nP.  S. two", True),
    ("postscript", {"marker": "P.P.S"}, "Hi.\nP.S. one", False),
    ("postscript", {"marker": "P. S."}, "Hi.\nP.S.A. wear a helmet", False),
    # giving two of the options is not choosing one
    ("choice", {"options": YNS}, "Yes, or no.", False),
    ("choice", {"options": YNS}, "yes/no", False),
    ("choice", {"options": YNS}, "Yes, no, not sure.", False),
    ("choice", {"options": YNM}, "My answer is yes or no.", False),
    ("choice", {"options": YNM}, "My answer is no, maybe.", False),
    ("choice", {"options": ABC}, "A or B.", False),
    ("choice", {"options": YNS}, "Yes, and no one doubts it.", True),
    ("choice", {"options": YNS}, "No, I know no shop open now.", True),
    ("choice", {"options": YNM}, "My answer is no.", True),
]


@pytest.mark.parametrize("kind,args,response,expected", ISSUE_25)
def test_issue_25_verdicts(kind, args, response, expected):
    assert CHECKS[kind](response, **args) is expected


# -----------------------------------------------------------------------------
# the loose variants, per type: (type, args, response, strict, loose)

LOOSE = [
    ("max_words", {"max": 5}, "Sure, here is my short answer:\none two three", False, True),
    ("min_words", {"min": 5}, "Sure!\none two three", False, False),  # dropping lines never adds words
    ("sentence_count", {"relation": "exactly", "n": 1}, "Sure! Here you go.\nLeaves fall.", False, True),
    ("lowercase", {}, "Sure!\nall lowercase here", False, True),
    ("uppercase", {}, "Sure!\nALL CAPITALS HERE", False, True),
    ("no_commas", {}, "Sure, here it is:\nno commas here", False, True),
    ("end_phrase", {"phrase": "That is all."}, "Nice film. That is all.\nHope this helps!", False, True),
    ("quoted", {}, '**"Bread you can trust."**', False, True),
    ("json", {}, 'Here is the JSON:\n{"a": 1}', False, True),
    ("title", {}, "Ode to the Tide\nWaves roll in.", False, False),
    ("bullet_count", {"n": 2}, "* Here are two:\n* sun\n* rain", False, True),
    ("postscript", {"marker": "P.S."}, "P.S. I forgot the body.", False, False),
    ("keywords", {"words": ["sunlight"]}, "Plants need sun*light.", False, True),
    ("forbidden_words", {"words": ["fur"]}, "Sure, no fur here:\nA soft cat.", False, True),
    ("placeholders", {"n": 2}, "Hi [name],\nsee you soon.", False, False),
    ("choice", {"options": YNM}, "My answer is yes.\nMy answer is no.", False, True),
    ("start_word", {"word": "Bees"}, "Sure!\nBees make honey.", False, True),
    ("keyword_frequency", {"word": "sun", "relation": "at_most", "n": 1}, "The sun, the sun!\nThe sun rises.", False, True),
    ("letter_frequency", {"letter": "z", "relation": "at_most", "n": 1}, "Zzz\nA zebra.", False, True),
    ("paragraph_count", {"n": 2, "separator": "***"}, "Sure!\n***\nOne.\n***\nTwo.", False, True),
    ("paragraph_first_word", {"n": 2, "nth": 1, "word": "Bees"}, "Sure!\n\nBees hum.\n\nThey fly.", False, True),
    ("highlighted_sections", {"n": 2}, "No highlights\nat all", False, False),
    ("section_count", {"marker": "SECTION", "n": 2}, "SECTION 1 food\nSECTION 2 park\nSECTION 3 notes", False, True),
    ("repeat_prompt", {"prompt": "Name a river."}, "Sure!\nName a river. The Nile.", False, True),
    ("two_responses", {}, "Here are two:\n******\nGoldie\n******\nBubbles", False, True),
    ("capital_word_frequency", {"relation": "at_most", "n": 1}, "NOTE: READ THIS\nOnly ONE loud word.", False, True),
    ("response_language", {"language": "fr"}, "Sure! Here is the answer that you asked for, in French:\n"
                                              "Le soleil est une étoile.", False, True),
]


def test_loose_cases_cover_every_type():
    assert {c[0] for c in LOOSE} == set(CHECKS)


@pytest.mark.parametrize("kind,args,response,strict,loose", LOOSE)
def test_loose_variant_per_type(kind, args, response, strict, loose):
    verdict = evaluate_response([{"type": kind, **args}], response)
    assert (verdict["strict"], verdict["loose"]) == (strict, loose)


# -----------------------------------------------------------------------------
# the built-in language detector, on real sentences

REAL_SENTENCES = {
    "en": "The train leaves at seven, so we should have breakfast early.",
    "es": "El tren sale a las siete, así que debemos desayunar temprano.",
    "fr": "Le train part à sept heures, donc nous devons déjeuner tôt.",
    "de": "Der Zug fährt um sieben Uhr ab, also sollten wir früh frühstücken.",
    "it": "Il treno parte alle sette, quindi dobbiamo fare colazione presto.",
    "pt": "O trem sai às sete, então precisamos tomar o café da manhã cedo.",
    "nl": "De trein vertrekt om zeven uur, dus we moeten vroeg ontbijten.",
    "ru": "Поезд отправляется в семь, поэтому нам нужно рано позавтракать.",
    "el": "Το τρένο φεύγει στις επτά, οπότε πρέπει να φάμε πρωινό νωρίς.",
    "ar": "يغادر القطار في السابعة، لذلك يجب أن نتناول الفطور مبكرا.",
    "he": "הרכבת יוצאת בשבע, אז אנחנו צריכים לאכול ארוחת בוקר מוקדם.",
    "hi": "ट्रेन सात बजे निकलती है, इसलिए हमें जल्दी नाश्ता करना चाहिए।",
    "zh": "火车七点出发，所以我们应该早点吃早饭。",
    "ja": "電車は七時に出発するので、早めに朝ごはんを食べましょう。",
    "ko": "기차가 일곱 시에 출발하니까 아침을 일찍 먹어야 해요.",
    "th": "รถไฟออกเวลาเจ็ดโมง เราจึงควรกินข้าวเช้าแต่เนิ่นๆ",
}


@pytest.mark.parametrize("lang", sorted(REAL_SENTENCES))
def test_detect_language_on_real_sentences(lang):
    assert detect_language(REAL_SENTENCES[lang]) == lang
    assert CHECKS["response_language"](REAL_SENTENCES[lang], language=lang) is True


def test_detect_language_unsure():
    assert detect_language("12345 !!!") is None
    assert detect_language("Ok") is None  # no stop word: unsure, so the check fails
    assert detect_language("Hace sol. ¡Qué bien!") == "es"  # short answers: common words and own letters
    assert detect_language("Bonjour ! Comment ça va ?") == "fr"
    assert detect_language("Schöne Grüße") == "de"
    assert detect_language("Բարեւ, ինչպես ես") is None  # Armenian: a script the detector does not know
    assert detect_language("**The** cat is *on* the mat, and it sleeps.") == "en"
    assert REAL_SENTENCES.keys() <= set(LANGUAGES)


# -----------------------------------------------------------------------------
# a check never raises: seeded random and adversarial text, every type

ARGS = {  # one valid set of args per type
    "max_words": {"max": 5}, "min_words": {"min": 2}, "sentence_count": {"relation": "exactly", "n": 2},
    "lowercase": {}, "uppercase": {}, "no_commas": {}, "end_phrase": {"phrase": "That is all."}, "quoted": {},
    "json": {}, "title": {}, "bullet_count": {"n": 2}, "postscript": {"marker": "P.S."},
    "keywords": {"words": ["snake_case", "ice cream"]}, "forbidden_words": {"words": ["C#", "fur"]},
    "placeholders": {"n": 1}, "choice": {"options": ["yes", "no", "not sure"]}, "start_word": {"word": "Bees"},
    "keyword_frequency": {"word": "sun", "relation": "at_least", "n": 2},
    "letter_frequency": {"letter": "e", "relation": "at_most", "n": 3},
    "paragraph_count": {"n": 2, "separator": "***"}, "paragraph_first_word": {"n": 2, "nth": 2, "word": "My"},
    "highlighted_sections": {"n": 1}, "section_count": {"marker": "SECTION", "n": 2},
    "repeat_prompt": {"prompt": "Name a river."}, "two_responses": {},
    "capital_word_frequency": {"relation": "at_most", "n": 1}, "response_language": {"language": "de"},
}
PIECES = ["", " ", "\n", "\n\n", "\t", "*", "**", "***", "******", "_", "`", "#", "# ", "- ", "+ ", "• ", "1. ", ">",
          "<<", ">>", "[", "]", "(", ")", "{", "}", '"', "“", "”", "’", ",", "،", "、", ".", "...", "!", "?", "P.S.",
          "SECTION 1", "yes", "no", "not sure", "Bees", "sun", "C#", "snake_case", "e.g.", "Dr.", "NaN", "null",
          "é", "e\u0301", "\u200d", "\u202e", "\ufeff", "\x00", "\ud800", "🙂", "👩‍👩‍👧", "ß", "İ", "ﬁ", "火", "は",
          "한", "Солнце", "שלום", "مرحبا", "नमस्ते", "That is all.", "Name a river.", "word", "WORD", "My"]


def _nasty_strings(seed=13, n=100):
    rng = random.Random(seed)
    out = [
        "", " ", "\n" * 1000, "[" * 20_000, "{" * 20_000 + "}" * 20_000, '{"a": ' * 5_000, "*" * 10_000,
        "<<" * 2_000 + ">>" * 2_000, "(" * 10_000, "P.S. " * 2_000, "yes no " * 2_000, "Dr. " * 3_000,
        "*a " * 3_000, "a. " * 3_000, "******\n" * 1_000, "word " * 5_000, "".join(map(chr, range(0x20, 0x3000))),
    ]
    for _ in range(n):
        out.append("".join(rng.choice(PIECES) for _ in range(rng.randint(1, 40))))
    return out


def test_checks_never_raise():
    assert set(ARGS) == set(CHECKS)
    for text in _nasty_strings():
        for kind, check in CHECKS.items():
            assert check(text, **ARGS[kind]) in (True, False), (kind, text[:80])
        if len(text) < 2_000:
            assert set(evaluate_response([{"type": k, **a} for k, a in ARGS.items()], text)) == {"strict", "loose", "checks"}


# -----------------------------------------------------------------------------
# bad args for the new types, and keywords that could never match

@pytest.mark.parametrize(
    "check,fix",
    [
        ({"type": "keywords", "words": ["**bold**"]}, "markdown"),
        ({"type": "forbidden_words", "words": ["_fur_"]}, "markdown"),
        ({"type": "keywords", "words": ["..."]}, "letter or digit"),
        ({"type": "choice", "options": ["Yes", "yes"]}, "distinct"),
        ({"type": "start_word", "word": "*Bees*"}, "single word"),
        ({"type": "keyword_frequency", "word": "river", "relation": "less than", "n": 3}, '"at_most"'),
        ({"type": "keyword_frequency", "word": "two words", "relation": "at_least", "n": 3}, "single word"),
        ({"type": "letter_frequency", "letter": "ab", "relation": "at_least", "n": 3}, "single letter"),
        ({"type": "letter_frequency", "letter": "7", "relation": "at_least", "n": 3}, "single letter"),
        ({"type": "paragraph_count", "n": 2, "separator": "---"}, '"blank_line"'),
        ({"type": "paragraph_count", "n": 0, "separator": "***"}, "positive integer"),
        ({"type": "paragraph_first_word", "n": 2, "nth": 3, "word": "My"}, "at most 'n'"),
        ({"type": "highlighted_sections", "n": -1}, "positive integer"),
        ({"type": "section_count", "marker": " ", "n": 2}, "letter or digit"),
        ({"type": "repeat_prompt", "prompt": ""}, "instruction"),
        ({"type": "two_responses", "n": 2}, "unexpected arg 'n'"),
        ({"type": "capital_word_frequency", "relation": "at_least"}, "missing arg 'n'"),
        ({"type": "response_language", "language": "english"}, "ISO 639-1"),
    ],
)
def test_bad_args_of_new_types(tmp_path, check, fix):
    msg = _error(_write(tmp_path, [GOOD, _rec(checks=[check])]))
    assert ":2: checks[0]:" in msg and fix in msg


def test_repeat_prompt_must_come_from_the_instruction(tmp_path):
    ok = _rec(instruction="Repeat this request first, then answer it: Name a river.",
              checks=[{"type": "repeat_prompt", "prompt": "name a  river."}])
    assert load_adherence(_write(tmp_path, [ok]))[0]["checks"][0]["type"] == "repeat_prompt"
    bad = _rec(instruction="Repeat this request first: Name a river.", checks=[{"type": "repeat_prompt", "prompt": "Name a lake."}])
    assert "must be copied from the instruction of 'a-2'" in _error(_write(tmp_path, [bad]))


def test_type_counts_counts_prompts_not_checks():
    prompts = [{"checks": [{"type": "keywords", "words": ["a"]}, {"type": "keywords", "words": ["b"]}]},
               {"checks": [{"type": "keywords", "words": ["c"]}, {"type": "lowercase"}]}]
    assert type_counts(prompts) == {"keywords": 2, "lowercase": 1}


# an answer a good model could write passes each prompt that uses the new families: the set is not impossible
GOOD_ANSWERS = {
    "adh-004": "Sunny summer days pass slowly by the sea.",
    "adh-011": ("My ideal weekend starts with a slow breakfast and a long walk in the park with my dog.\n***\n"
                "In the afternoon I read a good book, then I cook a big dinner with old friends and we all watch a funny film."),
    "adh-017": "A river starts small in the hills. The river grows as streams join it, and every river ends at the sea.",
    "adh-019": "The sea sparkles under the evening sun. Gentle waves meet the shore.",
    "adh-020": "Spring brings warm days and longer evenings.\n\nFlowers open in every garden.",
    "adh-023": "1. Fix *dripping taps* quickly.\n2. Take **shorter showers**.\n3. Water plants in the evening.",
    "adh-024": "Mars is the fourth planet from the Sun. *It has the tallest volcano in the solar system.*",
    "adh-025": "SECTION 1\nPack sandwiches, fruit and water.\n\nSECTION 2\nPick a shady spot in the park.",
    "adh-026": "Name three animals that live in the ocean.\nDolphins, octopuses and sharks.",
    "adh-027": "What is the largest ocean on Earth? The Pacific Ocean.",
    "adh-030": "Goldie\n******\nBubbles",
    "adh-032": "ALWAYS wear a helmet and NEVER ride without lights at night.",
    "adh-033": "J'aime l'automne. Les feuilles sont rouges et le vent est frais.",
    "adh-037": "Gravity is a force that pulls objects toward each other. It keeps us on the ground. "
               "It also keeps the Moon in orbit around Earth.",
    "adh-038": "My favorite food is pizza.\n\nI like it with cheese and tomatoes.",
    "adh-042": "Part 1: Wake up and drink water.\nPart 2: Stretch for five minutes.\nPart 3: Eat breakfast.",
    "adh-044": "Hoy hace sol y el cielo está despejado. La temperatura es muy agradable.",
    "adh-046": "Spring is fresh and green.\n\nSummer is hot and bright.\n\nAutumn and winter are cool and calm.",
    "adh-047": "Hi Sam, please bring WATER to the hike tomorrow. See you at eight!",
    "adh-048": "Why did the cat sit on the computer? To keep an eye on the mouse.\n******\n"
               "What do cats eat for breakfast? Mice Krispies.",
}


def test_new_prompts_can_be_passed():
    by_id = {r["id"]: r for r in load_adherence()}
    for rid, answer in GOOD_ANSWERS.items():
        assert evaluate_response(by_id[rid]["checks"], answer)["strict"], rid


BAD_VALUE = {  # one wrong value per argument name
    "max": "40", "min": 0, "n": True, "nth": 0, "relation": "less than", "phrase": "  ", "marker": "...",
    "prompt": 7, "words": "sunlight", "options": ["yes"], "word": "two words", "letter": "ab",
    "separator": "\n\n", "language": "english",
}


@pytest.mark.parametrize("kind", sorted(CHECKS))
def test_bad_args_of_every_type(tmp_path, kind):
    good = {"type": kind, **ARGS[kind]}
    loaded = load_adherence(_write(tmp_path, [_rec(instruction="Name a river.", checks=[good])]))
    assert loaded[0]["checks"] == [good]
    msg = _error(_write(tmp_path, [_rec(checks=[{**good, "bogus": 1}])]))
    assert "unexpected arg 'bogus'" in msg
    for name in REQUIRED_ARGS[kind]:
        missing = {k: v for k, v in good.items() if k != name}
        assert f"missing arg {name!r}" in _error(_write(tmp_path, [_rec(checks=[missing])]))
        msg = _error(_write(tmp_path, [_rec(checks=[{**good, name: BAD_VALUE[name]}])]))
        assert f"arg {name!r} must be" in msg


def test_a_registered_check_fails_a_blank_answer_before_it_runs():
    from kdscale.adherence import checks

    calls = []

    def check_mentions(response, word):
        """Says `word`."""
        calls.append(response)
        return True

    try:
        registered = checks.check(check_mentions)
        assert checks.REQUIRED_ARGS["mentions"] == {"word"}
        assert registered(" \n* ", word="x") is False and calls == []  # never reached the function
        assert registered("hello", word="x") is True and calls == ["hello"]
    finally:
        checks.CHECKS.pop("mentions", None)
        checks.REQUIRED_ARGS.pop("mentions", None)


# -----------------------------------------------------------------------------
# verdicts a careful human grader would not sign (2026-12-07, docs/decisions.md): each class on the
# examples that found it and on new ones; every case here failed before the fix

@pytest.mark.parametrize("options,response", [
    (YNM, "My answer is yes or no depending on the weather."),
    (YNS, "yes (or no)"),
    (YNS, "yes & no"),
    (YNS, "yes; no"),
    (YNM, "My answer is no or maybe if it rains."),
    (YNM, "My answer is maybe (or yes)."),
    (YNM, "My answer is yes & no."),
    (YNM, "My answer is no versus maybe, hard to say."),
    (YNS, "yes | no"),
    (YNS, "Not sure; yes."),
    (ABC, "A (or B) fits best."),
    (ABC, "B & C are both right."),
    (YNS, "No; yes if pressed."),
    (YNS, "Not sure, yes unless it rains."),
    (YNS, "Yes. Or no."),
    (YNS, '"yes" or "no"'),
])
def test_a_choice_answer_naming_two_options_fails_whatever_joins_them(options, response):
    assert CHECKS["choice"](response, options=options) is False


@pytest.mark.parametrize("response,n", [
    ("The U.S economy and the U.K market", 2),
    ("The U.N meets in N.Y today.", 2),
    ("We moved from L.A to D.C last May.", 2),
    ("A.I will change the E.U job market.", 2),
    ("Team N.Z won.", 1),
])
def test_a_dotted_capital_abbreviation_is_a_capital_word_without_its_last_dot(response, n):
    assert CHECKS["capital_word_frequency"](response, relation="exactly", n=n) is True


INVISIBLE_CASES = [  # (type, args, response, verdict)
    ("section_count", {"marker": "Section", "n": 1}, "Section\u200b1\nPack food.", True),
    ("section_count", {"marker": "Part", "n": 2}, "Part\u20601: pack\nPart\u20602: go", True),  # word joiner
    ("section_count", {"marker": "SECTION", "n": 2}, "\ufeffSECTION\u200b1\nFood.\nSECTION\u200b2\nGames.", True),
    ("paragraph_count", {"n": 2, "separator": "***"}, "One.\n*\u00a0*\u00a0*\nTwo.", True),
    ("paragraph_count", {"n": 2, "separator": "***"}, "One.\n*\u202f*\u202f*\nTwo.", True),  # narrow no-break
    ("paragraph_count", {"n": 2, "separator": "***"}, "One.\n*\u200b*\u200b*\nTwo.", True),  # reads as ***
    ("paragraph_count", {"n": 2, "separator": "blank_line"}, "One.\n\u200b\nTwo.", True),  # a blank line to a reader
    ("paragraph_count", {"n": 2, "separator": "blank_line"}, "One.\u2029Two.", True),  # paragraph separator
    ("start_word", {"word": "summer"}, "Summer\u02bcs heat is here.", True),
    ("start_word", {"word": "Dogs"}, "Dogs\u02bc tails wag.", True),
    ("keywords", {"words": ["don't"]}, "I don\u02bct know.", True),
    ("keywords", {"words": ["don't"]}, "I don\u00b4t know.", True),  # an acute accent typed for an apostrophe
    ("section_count", {"marker": "Day", "n": 2}, "Day\u200d1 rest\nDay\u200c2 walk", True),  # zero-width joiners
    ("forbidden_words", {"words": ["wolf"]}, "The wolf\u02bcs den.", False),
    ("json", {}, '\ufeff{"a": 1}', True),  # a byte-order mark before the object
    ("max_words", {"max": 2}, "hel\u200blo wor\u00adld", True),  # a zero-width space and a soft hyphen split nothing
]


@pytest.mark.parametrize("kind,args,response,expected", INVISIBLE_CASES)
def test_invisible_marks_no_break_spaces_and_apostrophe_variants_read_as_a_reader_sees_them(kind, args, response,
                                                                                            expected):
    assert CHECKS[kind](response, **args) is expected


@pytest.mark.parametrize("text,n", [
    ("I got a B. Then I cried.", 2),
    ("Temperatures reached 40.5°C. Stay inside!", 2),
    ("It rose to No. 3 in the charts.", 1),
    ("We switched to plan B. It worked.", 2),
    ("Take vitamin C. Then rest.", 2),
    ("Set the oven to 200 F. Bake it for an hour.", 2),
    ("The bulb needs 12 V. Check the label.", 2),
    ("Water boils at 100°C. Salt raises that.", 2),
    ("See p. 45 for the table.", 1),
    ("Read Vol. 2 first. It is short.", 2),
    ("She wore No. 7 all season.", 1),
    ("I got a B. Mom was upset.", 2),
    ("The answer is B. Photosynthesis needs light.", 2),
    ("J.K. Rowling wrote it.", 1),
    ("We won the U.S. Open.", 1),
])
def test_a_sentence_ends_after_a_one_letter_word_or_a_unit_but_not_in_a_name_or_before_a_number(text, n):
    assert len(split_sentences(text)) == n, split_sentences(text)
    assert CHECKS["sentence_count"](text, relation="exactly", n=n) is True


CODE_CASES = [
    ("bullet_count", {"n": 1}, "Steps:\n```\n- a\n- b\n```\n- c", True),
    ("bullet_count", {"n": 2}, "Run:\n```bash\n- install\n- build\n```\n* fast\n* safe", True),
    ("bullet_count", {"n": 1}, "~~~yaml\nitems:\n  - milk\n  - eggs\n~~~\n- buy them today", True),
    ("bullet_count", {"n": 2}, "````diff\n- old line\n+ new line\n````\n- one\n- two", True),
    ("bullet_count", {"n": 2}, "```\n- a\n- b", False),  # an unclosed block runs to the end
    ("highlighted_sections", {"n": 2}, "```md\n*not* **this**\n```\nBut *this* yes.", False),
    ("paragraph_count", {"n": 3, "separator": "blank_line"},
     "Intro.\n\n```python\ndef a():\n    pass\n\n\ndef b():\n    pass\n```\n\nDone.", True),
    ("paragraph_count", {"n": 2, "separator": "***"}, "One.\n~~~\n***\n~~~\n***\nTwo.", True),
    ("two_responses", {}, "Goldie:\n```\n******\n```\nA fish.\n******\nBubbles", True),
]


@pytest.mark.parametrize("kind,args,response,expected", CODE_CASES)
def test_bullets_highlights_and_separators_inside_a_code_block_are_code(kind, args, response, expected):
    assert CHECKS[kind](response, **args) is expected


@pytest.mark.parametrize("response", [
    '````\n{"a": 1}\n````',
    '~~~\n{"a": 1}\n~~~',
    '~~~json\n{"a": 1}\n~~~',
    '````json\n{"a": [1]}\n````',
    '~~~~\n{"ok": true}\n~~~~',
    '``````\n["milk", "eggs"]\n``````',
])
def test_a_json_answer_in_any_code_fence_is_json(response):
    assert CHECKS["json"](response) is True


@pytest.mark.parametrize("response,n", [
    ("Dear [Recipient Name]:", 1),
    ("[name][date]", 2),
    ("Meet at [time]: bring [item].", 2),
    ("Signed: [First Name][Last Name]", 2),
    ("[Company]:\nWe are hiring a [role].", 2),
    ("To [Client]: your order [number] shipped.", 2),
    ("Dear [Name](required),", 1),
])
def test_a_bracketed_placeholder_counts_whatever_follows_it_unless_it_is_a_link(response, n):
    assert CHECKS["placeholders"](response, n=n) is True


@pytest.mark.parametrize("text,n", [
    ("state-of-the-art", 1),
    ("1,000", 1),
    ("3.14", 1),
    ("A well-known, long-term plan", 4),
    ("It cost 2,500 dollars", 4),
    ("Pi is 3.14159 roughly", 4),
    ("Version 1.2.3 shipped", 3),
    ("My mother-in-law's house", 3),
    ("The 1,000,000-strong crowd", 3),
    ("It opens 24/7 at 12:30", 5),
])
def test_a_hyphenated_compound_or_a_number_counts_as_one_word(text, n):
    assert count_words(text) == n


def test_a_compound_is_one_word_in_every_check_that_reads_words():
    assert CHECKS["max_words"]("A state-of-the-art, up-to-date plan.", max=4) is True
    assert CHECKS["capital_word_frequency"]("WORLD-CLASS SERVICE", relation="exactly", n=2) is True
    assert CHECKS["start_word"]("Well-known artists agree.", word="well") is False  # the first word is "Well-known"


# near misses of the classes above: they kept their verdict before the fix and must keep it after
NEAR_MISSES = [
    ("choice", {"options": YNS}, "Yes - no one argues with that.", True),
    ("choice", {"options": YNS}, "Yes; no one else asked.", True),
    ("choice", {"options": YNS}, "It is not a yes or no question. No.", True),
    ("choice", {"options": YNM}, "My answer is no (no doubt about it).", True),
    ("capital_word_frequency", {"relation": "exactly", "n": 0}, "Bring fruit, e.g apples, at 5 p.m", True),
    ("sentence_count", {"relation": "exactly", "n": 2}, "I met C. S. Lewis. He smiled.", True),
    ("sentence_count", {"relation": "exactly", "n": 2}, "John F. Kennedy spoke. We listened.", True),
    ("sentence_count", {"relation": "exactly", "n": 2}, "My answer is no. 3 people agreed.", True),
    ("json", {}, '```\n{"a": 1}\n~~~', False),  # a fence closes only with its own kind
    ("bullet_count", {"n": 2}, "Code:\n`- a`\n- b\n- c", True),  # inline code is no block
    ("placeholders", {"n": 1}, "Read [the guide][guide].\n\n[guide]: https://example.com/guide", False),
    ("placeholders", {"n": 1}, "Click [here][1].\n\n[1]: https://example.com", False),
    ("max_words", {"max": 5}, "sun-sun-sun-sun-sun-sun", False),  # a long chain is not a compound
    ("max_words", {"max": 2}, "1, 2, 3", False),
    ("repeat_prompt", {"prompt": "Name a well-known song."}, "Name a well known song. Yesterday.", True),
    ("sentence_count", {"relation": "exactly", "n": 2}, "Written by J. K. Rowling. It sold.", True),
    ("sentence_count", {"relation": "exactly", "n": 2}, "I moved to the U.S. It was cold.", True),
    ("placeholders", {"n": 1}, "See [the docs](https://example.com/docs).", False),
]


@pytest.mark.parametrize("kind,args,response,expected", NEAR_MISSES)
def test_near_misses_of_the_2026_12_07_classes_keep_their_verdict(kind, args, response, expected):
    assert CHECKS[kind](response, **args) is expected
