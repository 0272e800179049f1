"""Instruction adherence: IFEval-style programmatic checks on a student's answers.

Each check type is one plain function `check_<type>(response, **args) -> bool`.
A prompt passes strictly if every check passes on the raw response, and loosely
if every check passes on at least one of IFEval's loose variants of it (first
or last line dropped, `*` removed), which forgives chatty preambles and markdown.

Conventions shared by all checks:
- words are `\\w+` runs, with inner apostrophes kept ("don't" is one word);
- sentences end at `.`, `!` or `?` followed by whitespace or the end of the text;
  pieces without any letter or digit are ignored;
- word, sentence and keyword checks read the text with markdown emphasis and
  heading marks (`*`, `_`, `` ` ``, `#`) removed, so "**bold**" is one word;
- a blank response (no letter or digit at all) fails every check, so an empty
  answer can never pass "no commas" or "at most 40 words" by saying nothing.
"""

import difflib
import json
import math
import re
from importlib import resources
from pathlib import Path

from kdscale.errors import UserError
from kdscale.jsonl import iter_jsonl

WORD_RE = re.compile(r"\w+(?:['’]\w+)*")
SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+")
MARKDOWN_RE = re.compile(r"[*_`#]+")
BULLET_RE = re.compile(r"^\s*[*-]\s+\S", re.MULTILINE)
TITLE_RE = re.compile(r"<<([^\n]+?)>>")
PLACEHOLDER_RE = re.compile(r"\[[^\[\]\n]*[^\W_][^\[\]\n]*\]")
JSON_FENCE_RE = re.compile(r"```(?:json)?\s*(.*?)\s*```", re.DOTALL | re.IGNORECASE)


# -----------------------------------------------------------------------------
# text helpers

def _blank(text):
    """True if the text has no letter or digit; such answers fail every check."""
    return re.search(r"[^\W_]", text) is None


def _plain(text):
    """The text with markdown emphasis/heading marks removed."""
    return MARKDOWN_RE.sub("", text)


def count_words(text):
    """Number of words (`\\w+` runs, apostrophes inside a word kept) after markdown is removed."""
    return len(WORD_RE.findall(_plain(text)))


def split_sentences(text):
    """Sentences: split after . ! ? when whitespace follows; pieces with no letter/digit are dropped."""
    pieces = SENTENCE_END_RE.split(_plain(text).strip())
    return [p for p in pieces if not _blank(p)]


def _has_phrase(text, phrase):
    """Case-insensitive whole-word search; lookarounds instead of \\b so phrases may end in punctuation."""
    pattern = r"(?<!\w)" + re.escape(phrase.strip()) + r"(?!\w)"
    return re.search(pattern, text, re.IGNORECASE) is not None


# -----------------------------------------------------------------------------
# the checks: one function per type, argument names match the adherence file

def check_max_words(response, max):
    """At most `max` words."""
    return not _blank(response) and count_words(response) <= max


def check_min_words(response, min):
    """At least `min` words."""
    return not _blank(response) and count_words(response) >= min


def check_sentence_count(response, relation, n):
    """Sentence count is at_most / at_least / exactly `n`."""
    if _blank(response):
        return False
    count = len(split_sentences(response))
    if relation == "at_most":
        return count <= n
    if relation == "at_least":
        return count >= n
    if relation == "exactly":
        return count == n
    raise ValueError(f"unknown sentence_count relation {relation!r}")


def check_lowercase(response):
    """No uppercase letters (and at least one lowercase one)."""
    return not _blank(response) and response.islower()


def check_uppercase(response):
    """No lowercase letters (and at least one uppercase one)."""
    return not _blank(response) and response.isupper()


def check_no_commas(response):
    """No commas, ASCII or full-width."""
    return not _blank(response) and "," not in response and "，" not in response


def check_end_phrase(response, phrase):
    """Ends with `phrase` (case-insensitive; trailing whitespace and double quotes ignored, as in IFEval)."""
    if _blank(response):
        return False
    return response.strip().strip('"').lower().endswith(phrase.strip().lower())


def check_quoted(response):
    """Whole answer is wrapped in double quotes (straight or curly)."""
    text = response.strip()
    if _blank(text) or len(text) < 2:
        return False
    return (text[0], text[-1]) in {('"', '"'), ("“", "”")}


def check_json(response):
    """Whole answer is valid JSON, optionally inside one ```json fenced block."""
    if _blank(response):
        return False
    text = response.strip()
    fenced = JSON_FENCE_RE.fullmatch(text)
    if fenced:
        text = fenced.group(1)
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def check_title(response):
    """Contains a title in double angular brackets, like <<my title>>."""
    if _blank(response):
        return False
    return any(not _blank(t) for t in TITLE_RE.findall(response))


def check_bullet_count(response, n):
    """Exactly `n` markdown bullets: lines starting with `* ` or `- `."""
    return not _blank(response) and len(BULLET_RE.findall(response)) == n


def check_postscript(response, marker):
    """A line starts with `marker` (e.g. P.S.), case-insensitive, bold/italic marks allowed before it."""
    if _blank(response):
        return False
    pattern = r"^\s*[*_]*" + re.escape(marker.strip())
    return re.search(pattern, response, re.IGNORECASE | re.MULTILINE) is not None


def check_keywords(response, words):
    """Every word in `words` appears as a whole word, case-insensitive."""
    if _blank(response):
        return False
    text = _plain(response)
    return all(_has_phrase(text, w) for w in words)


def check_forbidden_words(response, words):
    """None of `words` appears as a whole word, case-insensitive."""
    if _blank(response):
        return False
    text = _plain(response)
    return not any(_has_phrase(text, w) for w in words)


def check_placeholders(response, n):
    """At least `n` square-bracket placeholders like [name]."""
    return not _blank(response) and len(PLACEHOLDER_RE.findall(response)) >= n


def check_choice(response, options):
    """Exactly one of `options` appears (whole phrase, case-insensitive)."""
    if _blank(response):
        return False
    text = _plain(response)
    return sum(_has_phrase(text, o) for o in options) == 1


def check_start_word(response, word):
    """The first word (markdown and quotes ignored) is `word`, case-insensitive."""
    if _blank(response):
        return False
    first = WORD_RE.search(_plain(response))
    return first is not None and first.group(0).lower() == word.strip().lower()


CHECKS = {
    "max_words": check_max_words,
    "min_words": check_min_words,
    "sentence_count": check_sentence_count,
    "lowercase": check_lowercase,
    "uppercase": check_uppercase,
    "no_commas": check_no_commas,
    "end_phrase": check_end_phrase,
    "quoted": check_quoted,
    "json": check_json,
    "title": check_title,
    "bullet_count": check_bullet_count,
    "postscript": check_postscript,
    "keywords": check_keywords,
    "forbidden_words": check_forbidden_words,
    "placeholders": check_placeholders,
    "choice": check_choice,
    "start_word": check_start_word,
}

REQUIRED_ARGS = {
    "max_words": {"max"},
    "min_words": {"min"},
    "sentence_count": {"relation", "n"},
    "lowercase": set(),
    "uppercase": set(),
    "no_commas": set(),
    "end_phrase": {"phrase"},
    "quoted": set(),
    "json": set(),
    "title": set(),
    "bullet_count": {"n"},
    "postscript": {"marker"},
    "keywords": {"words"},
    "forbidden_words": {"words"},
    "placeholders": {"n"},
    "choice": {"options"},
    "start_word": {"word"},
}


# -----------------------------------------------------------------------------
# scoring

def loose_variants(response):
    """IFEval's loose variants: drop first line / last line / both, each also with `*` removed."""
    lines = response.split("\n")
    base = [
        response,
        "\n".join(lines[1:]).strip(),
        "\n".join(lines[:-1]).strip(),
        "\n".join(lines[1:-1]).strip(),
    ]
    variants = base + [v.replace("*", "") for v in base]
    return list(dict.fromkeys(variants))  # dedupe, keep order


def _run_check(check, response):
    args = {k: v for k, v in check.items() if k != "type"}
    return CHECKS[check["type"]](response, **args)


def evaluate_response(checks, response):
    """Score one response against a prompt's checks, strictly and loosely."""
    variants = loose_variants(response)
    results = []
    for check in checks:
        strict = _run_check(check, response)
        # the raw response is variants[0], so strict implies loose
        loose = strict or any(_run_check(check, v) for v in variants[1:])
        results.append({"type": check["type"], "strict": strict, "loose": loose})
    return {
        "strict": all(r["strict"] for r in results),
        "loose": all(r["loose"] for r in results),
        "checks": results,
    }


def wilson_interval(successes, n, z=1.959963984540054):
    """Wilson score interval for a binomial proportion (95% by default); n=0 gives (0, 1)."""
    if n == 0:
        return (0.0, 1.0)
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, center - half), min(1.0, center + half))


# -----------------------------------------------------------------------------
# the adherence file

RECORD_KEYS = {"id", "instruction", "input", "checks"}


def _is_pos_int(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _is_text(v):
    return isinstance(v, str) and v.strip() != ""


def _is_text_list(v, min_len):
    return isinstance(v, list) and len(v) >= min_len and all(_is_text(x) for x in v)


# what each argument must look like, keyed by argument name (names mean the same in every type)
ARG_RULES = {
    "max": (_is_pos_int, "a positive integer"),
    "min": (_is_pos_int, "a positive integer"),
    "n": (_is_pos_int, "a positive integer"),
    "relation": (lambda v: v in ("at_most", "at_least", "exactly"), 'one of "at_most", "at_least", "exactly"'),
    "phrase": (_is_text, "a non-empty string"),
    "marker": (_is_text, "a non-empty string"),
    "words": (lambda v: _is_text_list(v, 1), "a non-empty list of non-empty strings"),
    "options": (lambda v: _is_text_list(v, 2) and len(set(v)) == len(v), "a list of at least 2 distinct non-empty strings"),
    "word": (lambda v: isinstance(v, str) and WORD_RE.fullmatch(v.strip()) is not None, "a single word"),
}


def _validate_check(where, i, check):
    """Raise UserError unless `check` is a known type with exactly its required, well-formed args."""
    at = f"{where}: checks[{i}]"
    if not isinstance(check, dict) or "type" not in check:
        raise UserError(f'{at} must be an object with a "type" key, e.g. {{"type": "lowercase"}}')
    kind = check["type"]
    if kind not in CHECKS:
        close = difflib.get_close_matches(str(kind), list(CHECKS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"{where}: unknown check type {kind!r}{hint}; known types: {', '.join(sorted(CHECKS))}")
    required = REQUIRED_ARGS[kind]
    given = set(check) - {"type"}
    takes = ", ".join(sorted(required)) if required else "no args"
    missing, extra = sorted(required - given), sorted(given - required)
    if missing:
        raise UserError(f"{at}: check {kind!r} is missing arg {missing[0]!r}; it takes: {takes}")
    if extra:
        raise UserError(f"{at}: check {kind!r} got unexpected arg {extra[0]!r}; it takes: {takes}")
    for name in sorted(required):
        ok, want = ARG_RULES[name]
        if not ok(check[name]):
            raise UserError(f"{at}: check {kind!r} arg {name!r} must be {want}, got {check[name]!r}")


def load_adherence(path=None):
    """Read and validate the adherence prompts (default: the packaged 50-prompt set)."""
    if path is None:
        source = resources.files("kdscale") / "assets" / "adherence.jsonl"
        name = "adherence.jsonl"
    else:
        source = Path(path)
        name = str(path)
        if not source.is_file():
            raise UserError(
                f"adherence file not found: {path}; set eval.adherence_file to an existing .jsonl "
                "or leave it empty for the built-in set"
            )
    records, first_line_of = [], {}
    with resources.as_file(source) as file:
        for lineno, rec in iter_jsonl(file, name):
            where = f"{name}:{lineno}"
            extra = sorted(set(rec) - RECORD_KEYS)
            if extra:
                raise UserError(f"{where}: unexpected key {extra[0]!r}; allowed keys: {', '.join(sorted(RECORD_KEYS))}")
            rid = rec.get("id")
            if not _is_text(rid):
                raise UserError(f"{where}: missing or empty 'id'; give each prompt a unique string id like \"adh-001\"")
            if rid in first_line_of:
                raise UserError(f"{where}: duplicate id {rid!r} (first used on line {first_line_of[rid]}); ids must be unique")
            first_line_of[rid] = lineno
            if not _is_text(rec.get("instruction")):
                raise UserError(f"{where}: missing or empty 'instruction' in {rid!r}; give the instruction text the model should follow")
            rec.setdefault("input", "")
            if not isinstance(rec["input"], str):
                raise UserError(f"{where}: 'input' in {rid!r} must be a string (use \"\" for none)")
            checks = rec.get("checks")
            if not isinstance(checks, list) or not checks:
                raise UserError(f'{where}: \'checks\' in {rid!r} must be a non-empty list like [{{"type": "lowercase"}}]')
            for i, check in enumerate(checks):
                _validate_check(where, i, check)
            records.append(rec)
    if not records:
        raise UserError(f"{name}: no prompts found; add one JSON object per line")
    return records
