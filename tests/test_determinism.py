"""The data stages are deterministic: a fresh project gives the prompts, answers and subsets of the
reproduced one (test_pipeline's), byte for byte.

The fresh project runs `dvc repro subsets` (prepare, teacher_model, teacher, subsets@N; no
training) with a fixed PYTHONHASHSEED, the reproduced one ran under random ones, so that
anything that depends on set or dict order across processes would show up as a difference.
"""

from __future__ import annotations

import hashlib

import pytest
from conftest import make_project, run
from test_pipeline import reproduced_project

from kdscale import paths

pytestmark = pytest.mark.slow

SIZES = [8, 16]
OUTPUTS = [paths.POOL_PROMPTS, paths.HELDOUT_PROMPTS, paths.PREPARE_STATS, paths.TEACHER_POOL,
           paths.TEACHER_HELDOUT] + [paths.subset_file(n) for n in SIZES]


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def digests(project) -> dict[str, str]:
    found = {str(p): sha256(project / p) for p in OUTPUTS}
    teacher_files = sorted(p for p in (project / paths.TEACHER_DIR).iterdir() if p.suffix == ".safetensors")
    assert teacher_files
    return found | {str(p.relative_to(project)): sha256(p) for p in teacher_files}


def test_data_stages_are_byte_identical(tmp_path, tmp_path_factory, tiny_gpt2_dir, monkeypatch):
    project = make_project(tmp_path / "project", tiny_gpt2_dir)
    monkeypatch.setenv("PYTHONHASHSEED", "2")
    run(["dvc", "repro", "subsets"], cwd=project)
    reproduced, _ = reproduced_project(tmp_path_factory, tiny_gpt2_dir)  # built meanwhile, or now
    assert digests(project) == digests(reproduced)

    # the subsets are nested and of the asked sizes
    small, large = ((project / paths.subset_file(n)).read_text().splitlines() for n in SIZES)
    assert (len(small), len(large)) == (8, 16) and large[:8] == small
