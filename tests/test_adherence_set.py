"""Stage adherence_set: the larger adherence set, answered by a student at one of eval.adherence_set_sizes or by
the teacher, scored as evaluate scores the 50 prompts; the packaged set covers every check type."""

from __future__ import annotations

import collections
import json
import shutil

import pytest
import yaml

from conftest import STUDENT, run_of, tiny_params
from kdscale import paths
from kdscale.adherence import load_adherence
from kdscale.adherence.checks import CHECKS
from kdscale.errors import UserError
from kdscale.stages import adherence_set


def test_the_packaged_set_holds_250_prompts_with_every_check_type_on_at_least_five():
    prompts = load_adherence(None, adherence_set.BUILTIN)
    counts = collections.Counter(c["type"] for p in prompts for c in p["checks"])
    assert len(prompts) == 250 and len({p["id"] for p in prompts}) == 250
    assert set(counts) == set(CHECKS) and min(counts.values()) >= 5, counts
    default = {p["instruction"] for p in load_adherence()}
    assert not default & {p["instruction"] for p in prompts}  # apart from the 50: those stay the seed's


@pytest.fixture()
def project(tmp_path, tiny_gpt2_dir, monkeypatch, one_thread):
    """A tiny project with the teacher and one trained student (the teacher's weights stand in for it), and a
    three-prompt set as eval.adherence_set."""
    few = tmp_path / "few.jsonl"
    few.write_text("".join(json.dumps(p) + "\n" for p in load_adherence(None, adherence_set.BUILTIN)[:3]))
    params = tiny_params(tiny_gpt2_dir, eval={"adherence_set": str(few), "adherence_set_sizes": [16]})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copytree(tiny_gpt2_dir, tmp_path / paths.TEACHER_DIR)
    shutil.copytree(tiny_gpt2_dir, tmp_path / paths.student_dir(run_of(16)))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_student_and_the_teacher_answer_the_set(project):
    adherence_set.main(["--student", STUDENT, "--size", "16"])
    adherence_set.main(["--teacher"])
    for run in (run_of(16), None):
        details = json.loads(paths.adherence_set_details(run).read_text())
        answers = [json.loads(line) for line in paths.adherence_set_samples(run).read_text().splitlines()]
        assert details["adherence_prompts"] == len(answers) == 3 and details["adherence_set"].endswith("few.jsonl")
        assert 0 <= details["pass_rate_ci_low"] <= details["pass_rate"] <= details["pass_rate_ci_high"] <= 1
        assert {a["id"] for a in answers} == {"ifv-001", "ifv-002", "ifv-003"}
    assert json.loads(paths.adherence_set_details(run_of(16)).read_text())["student"] == STUDENT


def test_a_size_outside_the_sets_sizes_is_refused(project):
    with pytest.raises(UserError, match=r"--size must be one of eval.adherence_set_sizes \[16\]; got 8"):
        adherence_set.main(["--student", STUDENT, "--size", "8"])
    assert not paths.adherence_set_details(run_of(8)).exists()
