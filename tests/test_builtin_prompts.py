"""Checks on the packaged built-in prompt pool (src/kdscale/assets/builtin_prompts.jsonl).

The file is the prompts' one source: edit it directly (docs/decisions.md, "Built-in prompts")."""

from __future__ import annotations

import json
import re
from collections import Counter
from importlib.resources import files

import pytest

CATEGORIES = {
    "open_qa", "brainstorm", "classification", "rewrite", "extraction", "summarize",
    "transform", "math", "code", "creative", "advice", "definition",
}
KEYS = {"category", "instruction", "input"}


def _resource():
    return files("kdscale") / "assets" / "builtin_prompts.jsonl"


@pytest.fixture(scope="module")
def raw_bytes() -> bytes:
    return _resource().read_bytes()


@pytest.fixture(scope="module")
def records(raw_bytes) -> list[dict]:
    return [json.loads(line) for line in raw_bytes.decode("utf-8").splitlines()]


def _normalise(r: dict) -> str:
    return re.sub(r"\s+", " ", (r["instruction"] + " " + r["input"]).lower()).strip()


def test_every_line_is_utf8_json_object(raw_bytes):
    lines = raw_bytes.split(b"\n")
    assert lines[-1] == b"", "file must end with a newline"
    for i, line in enumerate(lines[:-1], 1):
        obj = json.loads(line.decode("utf-8"))  # raises on bad UTF-8 or JSON
        assert isinstance(obj, dict), f"line {i} is not a JSON object"


def test_record_count(records):
    assert len(records) >= 1000


def test_keys_and_types(records):
    for r in records:
        assert set(r) == KEYS, r
        assert all(isinstance(r[k], str) for k in KEYS), r


def test_instructions_non_empty(records):
    assert all(r["instruction"].strip() for r in records)


def test_records_distinct_after_normalisation(records):
    dupes = [k for k, n in Counter(_normalise(r) for r in records).items() if n > 1]
    assert not dupes, dupes[:5]


def test_enough_records_with_input(records):
    with_input = sum(1 for r in records if r["input"])
    assert with_input >= len(records) / 3


def test_categories_present_and_balanced(records):
    counts = Counter(r["category"] for r in records)
    assert set(counts) == CATEGORIES
    for cat in CATEGORIES:
        assert counts[cat] >= 60, (cat, counts[cat])
