"""Prompt sources (built-in, local .json/.jsonl/.parquet, the real Alpaca file) and the prepare split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kdscale import paths
from kdscale.adherence import load_adherence
from kdscale.cli import main
from kdscale.jsonl import read_jsonl
from kdscale.prompts import prompt_id
from kdscale.sources import builtin_path, load_prompts

ALPACA_5000 = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca_5000.json"

ROWS = [
    {"instruction": "Name three primary colours.", "input": "", "output": "Red, blue and yellow."},
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
    {"instruction": "  Write a haiku about rain.  ", "input": None},  # no output: no reference
    {"instruction": "Translate to French.", "input": "good morning", "output": ""},
]


def write_source(folder: Path, suffix: str, rows: list[dict]) -> Path:
    path = folder / f"source{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    elif suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        import datasets

        datasets.Dataset.from_list(rows).to_parquet(str(path))
    return path


def numbered(n: int, start: int = 0) -> list[dict]:
    return [{"instruction": f"Write sentence number {i} about the sea.", "input": "", "output": f"Sea {i}."}
            for i in range(start, start + n)]


def write_params(folder: Path, **data) -> None:
    data = {"source": "builtin", "pool_size": 20, "heldout_size": 5, **data}
    params = {"data": data, "scaling": {"sizes": [5, 10]}}
    (folder / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")


def prepare(folder: Path, monkeypatch, **data) -> tuple[list[dict], list[dict], dict]:
    monkeypatch.chdir(folder)
    write_params(folder, **data)
    main(["prepare"])
    return (read_jsonl(folder / paths.POOL_PROMPTS), read_jsonl(folder / paths.HELDOUT_PROMPTS),
            json.loads((folder / paths.PREPARE_STATS).read_text()))


# -----------------------------------------------------------------------------
# sources


def test_builtin_source():
    records, duplicates = load_prompts("builtin")
    assert duplicates == 0
    assert len(records) >= 480  # the default pool (350) + held-out (40) with room to spare
    ids = [r["id"] for r in records]
    assert len(set(ids)) == len(ids)
    for r in records:
        assert set(r) <= {"id", "instruction", "input", "reference"}
        assert r["instruction"] and r["instruction"] == r["instruction"].strip()
        assert r["id"] == prompt_id(r["instruction"], r["input"])
    assert any(r["input"] for r in records) and any(not r["input"] for r in records)
    assert builtin_path().is_file()


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".parquet"])
def test_local_files(tmp_path, suffix):
    records, duplicates = load_prompts(str(write_source(tmp_path, suffix, ROWS)))
    assert duplicates == 0
    assert [r["instruction"] for r in records] == [
        "Name three primary colours.", "Add the numbers.", "Write a haiku about rain.", "Translate to French."]
    assert [r["input"] for r in records] == ["", "2 and 3", "", "good morning"]
    # reference only where the source has a non-empty output
    assert [r.get("reference") for r in records] == ["Red, blue and yellow.", "5", None, None]
    assert records[1]["id"] == prompt_id("Add the numbers.", "2 and 3")


def test_the_three_formats_give_the_same_records(tmp_path):
    loaded = []
    for suffix in [".json", ".jsonl", ".parquet"]:
        folder = tmp_path / suffix.strip(".")
        folder.mkdir()
        loaded.append(load_prompts(str(write_source(folder, suffix, ROWS)))[0])
    assert loaded[0] == loaded[1] == loaded[2]


def test_ids_are_stable():
    # hard-coded: an id must not change between machines, Python versions or releases
    assert prompt_id("Name a colour.") == "8f609c5d92f38efc"
    assert prompt_id("Add the numbers.", "2 and 3") == "f49a06413805e855"
    assert prompt_id("  Add the numbers.\n", " 2 and 3 ") == prompt_id("Add the numbers.", "2 and 3")
    assert prompt_id("Add the numbers.", "2 and 3") != prompt_id("Add the numbers.", "2 and 4")
    assert prompt_id("a", "b") != prompt_id("a b", "")


def test_duplicates_are_dropped_and_counted(tmp_path):
    rows = ROWS + [ROWS[0], {**ROWS[1], "output": "five"}, {"instruction": "Add the numbers. ", "input": " 2 and 3"}]
    records, duplicates = load_prompts(str(write_source(tmp_path, ".jsonl", rows)))
    assert duplicates == 3
    assert len(records) == len(ROWS)
    assert records[1]["reference"] == "5"  # the first of each is kept


def test_max_source_records(tmp_path):
    records, _ = load_prompts(str(write_source(tmp_path, ".jsonl", numbered(10))), max_records=4)
    assert len(records) == 4


def test_home_relative_path(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    write_source(tmp_path, ".jsonl", ROWS)
    assert len(load_prompts("~/source.jsonl")[0]) == len(ROWS)


@pytest.mark.skipif(not ALPACA_5000.is_file(), reason=f"{ALPACA_5000} not present (a fresh clone has no ../shared)")
def test_real_alpaca_file():
    rows = json.loads(ALPACA_5000.read_text(encoding="utf-8"))
    records, duplicates = load_prompts(str(ALPACA_5000))
    assert len(records) + duplicates == len(rows) == 5000
    assert len({r["id"] for r in records}) == len(records)
    distinct = {}
    for row in rows:
        distinct.setdefault(prompt_id(row["instruction"], row["input"]), row)
    assert len(distinct) == len(records)
    with_output = sum(bool(r["output"].strip()) for r in distinct.values())
    assert sum("reference" in r for r in records) == with_output > 4900
    assert sum(bool(r["input"]) for r in records) > 1000
    first = rows[0]
    assert records[0]["instruction"] == first["instruction"].strip()
    assert records[0]["reference"] == first["output"].strip()


# -----------------------------------------------------------------------------
# prepare: the split


def test_prepare_split_is_disjoint_deduplicated_and_sized(tmp_path, monkeypatch):
    pool, heldout, stats = prepare(tmp_path, monkeypatch)
    assert (len(pool), len(heldout)) == (20, 5)
    ids = [r["id"] for r in pool + heldout]
    assert len(set(ids)) == len(ids)  # disjoint and no duplicate inside either
    assert stats["pool"] == 20 and stats["heldout"] == 5 and stats["duplicates_dropped"] == 0
    assert stats["source"] == "builtin"


def test_prepare_is_seeded(tmp_path, monkeypatch):
    runs = {}
    for name, seed in [("a", 0), ("b", 0), ("c", 7)]:
        folder = tmp_path / name
        folder.mkdir()
        prepare(folder, monkeypatch, split_seed=seed)
        runs[name] = [(folder / p).read_bytes() for p in (paths.POOL_PROMPTS, paths.HELDOUT_PROMPTS)]
    assert runs["a"] == runs["b"]  # same seed: byte-identical files
    assert runs["a"][0] != runs["c"][0] and runs["a"][1] != runs["c"][1]


def test_prepare_pool_is_a_prefix_when_it_grows(tmp_path, monkeypatch):
    """Raising pool_size keeps the held-out set and extends the pool (the split does not depend on it)."""
    small = prepare(tmp_path, monkeypatch, pool_size=10)
    large = prepare(tmp_path, monkeypatch, pool_size=20)
    assert small[1] == large[1]
    assert large[0][:10] == small[0]


def test_prepare_deduplicates_a_local_source(tmp_path, monkeypatch, capsys):
    rows = numbered(30)
    write_source(tmp_path, ".jsonl", rows + rows[:4])
    pool, heldout, stats = prepare(tmp_path, monkeypatch, source="source.jsonl")
    assert stats["duplicates_dropped"] == 4 and stats["distinct_prompts"] == 30
    assert len({r["id"] for r in pool + heldout}) == 25
    assert stats["with_reference"] == 25
    assert "4 duplicate records" in capsys.readouterr().err


def test_prepare_excludes_adherence_prompts(tmp_path, monkeypatch):
    adherence_ids = {prompt_id(r["instruction"], r["input"]) for r in load_adherence()}
    pool, heldout, _ = prepare(tmp_path, monkeypatch, pool_size=400, heldout_size=40)
    assert not adherence_ids & {r["id"] for r in pool + heldout}

    # a source that contains an adherence prompt: it is left out of both sets
    custom = tmp_path / "adherence.jsonl"
    custom.write_text(json.dumps({"id": "adh-1", "instruction": "Write sentence number 3 about the sea.",
                                  "checks": [{"type": "lowercase"}]}) + "\n")
    write_source(tmp_path, ".jsonl", numbered(26))
    params = {"data": {"source": "source.jsonl", "pool_size": 20, "heldout_size": 5},
              "scaling": {"sizes": [5, 10]}, "eval": {"adherence_file": "adherence.jsonl"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    main(["prepare"])
    kept = read_jsonl(tmp_path / paths.POOL_PROMPTS) + read_jsonl(tmp_path / paths.HELDOUT_PROMPTS)
    assert len(kept) == 25
    assert "Write sentence number 3 about the sea." not in {r["instruction"] for r in kept}
