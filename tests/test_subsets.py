"""The order subsets are cut from: seeded, nested, and stable under a change of filters; replicate seeds."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import REPO
from kdscale import paths
from kdscale.errors import UserError
from kdscale.jsonl import read_jsonl
from kdscale.stages.subsets import main, nested_order


def pool(dropped: set[int]) -> list[dict]:
    return [{"id": f"a{i}", "dropped": i in dropped} for i in range(100)]


def ids(answers: list[dict]) -> list[str]:
    return [a["id"] for a in answers]


def test_order_is_seeded_and_skips_dropped_answers():
    order = ids(nested_order(pool({3, 7}), seed=0))
    assert order == ids(nested_order(pool({3, 7}), seed=0))
    assert order != ids(nested_order(pool({3, 7}), seed=1))
    assert sorted(order) == sorted(f"a{i}" for i in range(100) if i not in {3, 7})


def test_a_filter_change_moves_only_the_answers_it_drops():
    before = ids(nested_order(pool(set()), seed=0))
    after = ids(nested_order(pool({int(before[5][1:])}), seed=0))  # the filter now drops the 6th answer
    assert after == before[:5] + before[6:]


def stage_folder(tmp_path, monkeypatch, replicate_sizes, replicate_seeds):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["scaling"].update(sizes=[0, 10, 20], replicate_sizes=replicate_sizes, replicate_seeds=replicate_seeds)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "data/teacher").mkdir(parents=True)
    (tmp_path / "data/teacher/pool.jsonl").write_text("".join(json.dumps(a) + "\n" for a in pool({3})))
    monkeypatch.chdir(tmp_path)


def test_a_replicate_seed_writes_its_own_nested_subset(tmp_path, monkeypatch):
    stage_folder(tmp_path, monkeypatch, [10, 20], [1])
    for args in (["--size", "20"], ["--size", "10", "--seed", "1"], ["--size", "20", "--seed", "1"]):
        main(args)
    own, small, large = (ids(read_jsonl(p)) for p in (paths.subset_file(20), paths.subset_file(10, 1),
                                                         paths.subset_file(20, 1)))
    assert paths.subset_file(20, 1).name == "n20-seed1.jsonl"
    assert large == ids(nested_order(pool({3}), seed=1))[:20] != own  # seed 1's own draw of the pool...
    assert small == large[:10]  # ...nested like the study's


def test_a_seed_that_is_no_replicate_fails_before_writing(tmp_path, monkeypatch):
    stage_folder(tmp_path, monkeypatch, [20], [1])
    with pytest.raises(UserError, match=r"--size 10 --seed 1 is not a replicate"):
        main(["--size", "10", "--seed", "1"])
    assert not (tmp_path / "data/subsets").exists()
