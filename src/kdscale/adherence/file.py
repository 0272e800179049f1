"""The adherence file: one prompt per JSONL line, `{"id", "instruction", "input", "checks": [{"type", ...args}]}`,
validated before any model runs, each error one line that names the line, the key and the fix."""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path

from kdscale.adherence.checks import CHECKS, REQUIRED_ARGS
from kdscale.adherence.language import LANGUAGES
from kdscale.adherence.text import WORD_RE, is_blank, normalize, reading_text, strip_markdown
from kdscale.errors import UserError
from kdscale.jsonl import iter_jsonl

RELATIONS = ("at_most", "at_least", "exactly")
SEPARATORS = ("***", "blank_line")
RECORD_KEYS = {"id", "instruction", "input", "checks"}


def _is_pos_int(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _is_text(v):
    return isinstance(v, str) and v.strip() != ""


def _is_text_list(v, min_len):
    return isinstance(v, list) and len(v) >= min_len and all(_is_text(x) for x in v)


def _is_keyword(v):
    # the answer is read with markdown edges removed, so a keyword that has them could never match
    return _is_text(v) and not is_blank(v) and strip_markdown(v).strip() == v.strip()


def _is_options(v):
    return (isinstance(v, list) and len(v) >= 2 and all(_is_keyword(x) for x in v)
            and len({normalize(x).strip().lower() for x in v}) == len(v))


# what each argument must look like, keyed by argument name (names mean the same in every type)
ARG_RULES = {
    "max": (_is_pos_int, "a positive integer"),
    "min": (_is_pos_int, "a positive integer"),
    "n": (_is_pos_int, "a positive integer"),
    "nth": (_is_pos_int, "a positive integer"),
    "relation": (lambda v: v in RELATIONS, 'one of "at_most", "at_least", "exactly"'),
    "phrase": (lambda v: _is_text(v) and not is_blank(v), "a non-empty string with a letter or digit"),
    "marker": (lambda v: _is_text(v) and not is_blank(v), "a non-empty string with a letter or digit"),
    "prompt": (lambda v: _is_text(v) and not is_blank(v), "the part of the instruction to repeat"),
    "words": (lambda v: isinstance(v, list) and len(v) >= 1 and all(_is_keyword(x) for x in v),
              "a non-empty list of words or phrases, each with a letter or digit and no markdown (* _ `) at its edges"),
    "options": (_is_options, "a list of at least 2 distinct options (ignoring case), each with a letter or digit "
                             "and no markdown (* _ `) at its edges"),
    "word": (lambda v: isinstance(v, str) and WORD_RE.fullmatch(v.strip()) is not None and _is_keyword(v),
             "a single word with no markdown (* _ `) at its edges"),
    "letter": (lambda v: isinstance(v, str) and len(v) == 1 and v.isalpha(), 'a single letter like "e"'),
    "separator": (lambda v: v in SEPARATORS, 'one of "***", "blank_line"'),
    "language": (lambda v: v in LANGUAGES, f"one of the ISO 639-1 codes {', '.join(LANGUAGES)}"),
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
    if kind == "paragraph_first_word" and check["nth"] > check["n"]:
        raise UserError(f"{at}: check {kind!r} arg 'nth' ({check['nth']}) must be at most 'n' ({check['n']}), "
                        "the number of paragraphs")


def _squash(text):
    return " ".join(reading_text(text).lower().split())


def load_adherence(path=None, builtin: str = "adherence.jsonl", key: str = "eval.adherence_file"):
    """Read and validate the adherence prompts of `path` (default: the packaged set `builtin`, the 50 prompts;
    `key`: the params key that names the file, for the error)."""
    if path is None:
        source = resources.files("kdscale") / "assets" / builtin
        name = builtin
    else:
        source = Path(path)
        name = str(path)
        if not source.is_file():
            raise UserError(
                f"adherence file not found: {path}; set {key} to an existing .jsonl "
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
                if check["type"] == "repeat_prompt" and _squash(check["prompt"]) not in _squash(rec["instruction"]):
                    raise UserError(f"{where}: checks[{i}]: repeat_prompt arg 'prompt' must be copied from the "
                                    f"instruction of {rid!r}, which it is not")
            records.append(rec)
    if not records:
        raise UserError(f"{name}: no prompts found; add one JSON object per line")
    return records
