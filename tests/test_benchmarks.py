"""The benchmark scripts still import what they use: they run by hand, so nothing else would notice
a renamed function (kd_step.py once imported one that had gone)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from conftest import REPO

SCRIPTS = sorted((REPO / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_benchmark_imports(script):
    spec = importlib.util.spec_from_file_location(f"benchmark_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)  # top level only: every script runs under `if __name__ == "__main__"`
    assert callable(getattr(module, "main", None)), f"{script.name} has no main()"
