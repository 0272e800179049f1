"""Tests for the instruction-adherence checks, scoring and the adherence file loader."""

import inspect
import json
import pytest

from kdscale.checks import (
    CHECKS,
    REQUIRED_ARGS,
    count_words,
    evaluate_response,
    load_adherence,
    loose_variants,
    split_sentences,
    type_counts,
    wilson_interval,
)
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
    ("paragraph_count", {"n": 3, "separator": "blank_line"}, "", False),
    ("paragraph_first_word", {"n": 2, "nth": 2, "word": "Flowers"}, "Spring is here.\n\n**Flowers** bloom.", True),
    ("paragraph_first_word", {"n": 2, "nth": 2, "word": "Flowers"}, "Spring is here.\n\n\n\"Flowers,\" she said.", True),
    ("paragraph_first_word", {"n": 2, "nth": 2, "word": "Flowers"}, "Spring is here.\n\nBirds sing.", False),
    ("paragraph_first_word", {"n": 2, "nth": 2, "word": "Flowers"}, "Spring.\n\nFlowers bloom.\n\nBees hum.", False),
    ("paragraph_first_word", {"n": 2, "nth": 2, "word": "Flowers"}, "Spring. Flowers bloom.", False),
    ("paragraph_first_word", {"n": 2, "nth": 1, "word": "My"}, "", False),
    ("highlighted_sections", {"n": 2}, "Turn off the *tap* and fix **leaks** today.", True),
    ("highlighted_sections", {"n": 2}, "Use ***less*** water and *shorter* showers.", True),
    ("highlighted_sections", {"n": 2}, "* tap\n* leaks\n* showers", False),
    ("highlighted_sections", {"n": 2}, "Compute 2*3*4 and ** ** here.", False),
    ("highlighted_sections", {"n": 1}, "", False),
    ("section_count", {"marker": "SECTION", "n": 2}, "SECTION 1\nPack food.\nSECTION 2\nFind a park.", True),
    ("section_count", {"marker": "SECTION", "n": 2}, "## **Section 1**: food\n## Section 2: games", True),
    ("section_count", {"marker": "SECTION", "n": 2}, "SECTION 1\nPack food and find a park.", False),
    ("section_count", {"marker": "SECTION", "n": 2}, "SECTION 1 food\nSECTION 2 park\nSECTION 3 games", False),
    ("section_count", {"marker": "SECTION", "n": 2}, "Food, see section 1. Park, see section 2.", False),
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


@pytest.mark.parametrize(
    "k,n,lo,hi",
    [(10, 50, 0.1124, 0.3304), (7, 50, 0.0695, 0.2622), (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (25, 50, 0.3664, 0.6336)],
)
def test_wilson_interval(k, n, lo, hi):
    got = wilson_interval(k, n)
    assert got[0] == pytest.approx(lo, abs=1e-3)
    assert got[1] == pytest.approx(hi, abs=1e-3)


def test_wilson_interval_edges():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


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
