"""The order subsets are cut from: the pool's, nested, stable under a change of filters and a larger pool."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import REPO
from kdscale import paths
from kdscale.errors import UserError
from kdscale.jsonl import read_jsonl
from kdscale.stages.subsets import main, nested_order
from kdscale.topk import TopkStore, build_store


def pool(dropped: set[int], size: int = 100) -> list[dict]:
    return [{"id": f"a{i}", "dropped": i in dropped} for i in range(size)]


def ids(answers: list[dict]) -> list[str]:
    return [a["id"] for a in answers]


def test_order_is_the_pools_without_dropped_answers():
    assert ids(nested_order(pool({3, 7}))) == [f"a{i}" for i in range(100) if i not in {3, 7}]


def test_a_filter_change_moves_only_the_answers_it_drops():
    before = ids(nested_order(pool(set())))
    after = ids(nested_order(pool({5})))  # the filter now drops the 6th answer
    assert after == before[:5] + before[6:]


def store(answers: list[dict]) -> TopkStore:
    """A top-k store with answer i's rows holding i (so a slice shows whose rows it took)."""
    import torch

    kept = [a for a in answers if not a["dropped"]]
    lengths = [1 + i % 3 for i in range(len(kept))]
    topk = [(torch.full((n, 2), i, dtype=torch.int32), torch.full((n, 2), -float(i))) for i, n in enumerate(lengths)]
    return build_store(ids(kept), [[i] * n for i, n in enumerate(lengths)], topk, 2)


def stage_folder(tmp_path, monkeypatch, answers: list[dict], sizes=(0, 10, 20)):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["scaling"].update(sizes=list(sizes))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "data/teacher").mkdir(parents=True, exist_ok=True)
    (tmp_path / "data/teacher/pool.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))
    store(answers).save(tmp_path / paths.TOPK_FILE)
    monkeypatch.chdir(tmp_path)


def test_a_grown_pool_leaves_every_subset_and_its_top_k_byte_identical(tmp_path, monkeypatch):
    """What lets `kdscale sweep` add sizes without retraining: the pool only grows at its end."""
    stage_folder(tmp_path, monkeypatch, pool({3}, 40))
    main(["--size", "20"])
    before = [(tmp_path / p).read_bytes() for p in (paths.subset_file(20), paths.subset_topk(20))]
    stage_folder(tmp_path, monkeypatch, pool({3, 55}, 100), sizes=(0, 10, 20, 80))
    main(["--size", "20"])
    assert [(tmp_path / p).read_bytes() for p in (paths.subset_file(20), paths.subset_topk(20))] == before
    main(["--size", "80"])
    assert ids(read_jsonl(paths.subset_file(80)))[:20] == ids(read_jsonl(paths.subset_file(20)))


def test_a_subsets_top_k_holds_exactly_its_answers_rows(tmp_path, monkeypatch):
    answers = pool({3}, 40)
    stage_folder(tmp_path, monkeypatch, answers)
    main(["--size", "10"])
    full, part = TopkStore.load(paths.TOPK_FILE), TopkStore.load(paths.subset_topk(10))
    assert part.ids == ids(read_jsonl(paths.subset_file(10)))
    for i in part.ids:
        n = int(full.offsets[full.row[i] + 1] - full.offsets[full.row[i]])
        assert part.indices[part.rows(i, n)].tolist() == full.indices[full.rows(i, n)].tolist()
        assert part.labels[part.rows(i, n)].tolist() == full.labels[full.rows(i, n)].tolist()
    assert len(part.labels) == sum(int(full.offsets[full.row[i] + 1] - full.offsets[full.row[i]]) for i in part.ids)


def test_a_size_outside_scaling_fails_before_writing(tmp_path, monkeypatch):
    stage_folder(tmp_path, monkeypatch, pool(set()))
    with pytest.raises(UserError, match=r"--size 15 is not in scaling.sizes"):
        main(["--size", "15"])
    assert not (tmp_path / "data/subsets").exists()
