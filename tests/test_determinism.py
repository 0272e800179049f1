"""The data stages are deterministic: two fresh projects give byte-identical prompts, answers and subsets.

Each project runs `dvc repro subsets` (prepare, teacher_model, teacher, subsets@N; no
training) in its own processes with a different PYTHONHASHSEED, so that anything
that depends on set or dict order across processes would show up as a difference.
"""

from __future__ import annotations

import hashlib

import pytest
from conftest import make_project, run

from kdscale import paths

pytestmark = pytest.mark.slow

SIZES = [8, 16]
OUTPUTS = [paths.POOL_PROMPTS, paths.HELDOUT_PROMPTS, paths.PREPARE_STATS, paths.TEACHER_POOL,
           paths.TEACHER_HELDOUT] + [paths.subset_file(n) for n in SIZES]


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_data_stages_are_byte_identical(tmp_path, tiny_gpt2_dir, monkeypatch):
    digests = []
    for name, hash_seed in [("a", "1"), ("b", "2")]:
        (tmp_path / name).mkdir()
        project = make_project(tmp_path / name / "project", tiny_gpt2_dir)
        monkeypatch.setenv("PYTHONHASHSEED", hash_seed)
        run(["dvc", "repro", "subsets"], cwd=project)
        digests.append({str(p): sha256(project / p) for p in OUTPUTS})
        teacher_files = sorted(p for p in (project / paths.TEACHER_DIR).iterdir() if p.suffix == ".safetensors")
        assert teacher_files
        digests[-1].update({str(p.relative_to(project)): sha256(p) for p in teacher_files})
    assert digests[0] == digests[1]

    # the subsets are nested and of the asked sizes
    small, large = ((tmp_path / "b" / "project" / paths.subset_file(n)).read_text().splitlines() for n in SIZES)
    assert (len(small), len(large)) == (8, 16) and large[:8] == small
