"""benchmarks/gpu_check.py: its CPU-only parts (synthetic data, model shapes, the arithmetic)."""

from __future__ import annotations

import importlib.util
import math
import sys

import pytest
import yaml

from conftest import REPO
from kdscale.config import parse_params
from kdscale.profile import profile_params

spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks/gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
sys.modules["gpu_check"] = gpu_check  # dataclasses look their module up there
spec.loader.exec_module(gpu_check)

PAPER = profile_params("paper")


def test_synthetic_records_are_alpaca_shaped_and_distinct():
    records = gpu_check.synthetic_records(500)
    assert records == gpu_check.synthetic_records(500)  # seeded
    assert all(set(r) == {"instruction", "input", "output"} for r in records)
    assert len({r["instruction"] for r in records}) == 500
    assert 0.3 < sum(bool(r["input"]) for r in records) / 500 < 0.5
    assert all(20 <= len(r["output"].split()) <= 160 for r in records)


def test_models_have_the_published_gpt2_sizes():
    assert gpu_check.count_parameters(gpu_check.gpt2_config("gpt2-xl")) == 1_557_611_200
    assert gpu_check.count_parameters(gpu_check.gpt2_config("gpt2")) == 124_439_808


def test_tokenizer_has_gpt2_vocabulary_size_and_decodes_every_id(tmp_path):
    tokenizer = gpu_check.make_tokenizer(tmp_path, gpu_check.synthetic_records(200), 3000)
    assert len(tokenizer) == 3000 and tokenizer.eos_token == gpu_check.EOS
    assert tokenizer.decode([2999]) == "filler2999"  # what a random model may pick still decodes
    model = gpu_check.build_model(tmp_path / "m", "tiny-student", tokenizer, "cpu", "float32")
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(model).config.vocab_size == 3000


def test_check_params_are_a_valid_paper_profile(tmp_path):
    params = parse_params(gpu_check.check_params(PAPER, tmp_path / "a.json", False, 768, 64, 64))
    assert (params.data.pool_size, params.scaling.sizes, params.teacher.batch_size) == (768, [768], 64)
    assert params.teacher.max_new_tokens == PAPER["teacher"]["max_new_tokens"] and params.train.max_length == 512
    assert not params.teacher.filters.repetition


@pytest.mark.parametrize("name, expected", [("NVIDIA H100 80GB HBM3", "H100"), ("NVIDIA H100 PCIe", "H100 PCIe"),
                                            ("NVIDIA H200", "H200"), ("NVIDIA A100-SXM4-80GB", "A100"),
                                            ("Tesla T4", None)])
def test_gpu_spec_by_device_name(name, expected):
    gpu = gpu_check.gpu_spec(name)
    assert (gpu.name if gpu else None) == expected


def test_decoding_roofline_is_memory_bound_at_batch_1_and_compute_bound_when_large():
    gpu = gpu_check.Gpu("test", bf16_flops=1e15, memory_bandwidth=2e12)
    config = gpu_check.gpt2_config("gpt2-xl")
    n = 1_557_611_200
    one = gpu_check.decode_roofline_tokens_per_sec(n, config, 1, 0, gpu)
    assert one == pytest.approx(2e12 / (2 * n))  # the weights read once per token
    huge = gpu_check.decode_roofline_tokens_per_sec(n, config, 100_000, 0, gpu)
    assert huge == pytest.approx(1e15 / (2 * n))  # 2 FLOPs per parameter per token


def test_projection_of_the_paper_study():
    p = gpu_check.project_study(PAPER, teacher_tok_s=16_500 * 256 / 600, train_tok_s=65_000 * 300 / 300,
                                tokens_per_example=300, student_eval_s=30, teacher_eval_s=60)
    assert p["teacher_tokens"] == 16_500 * 256  # pool 16,000 + held-out 500, max_new_tokens each
    assert p["train_tokens"] == 2 * 32_500 * 300  # 2 epochs over 500+2,000+5,000+10,000+15,000
    # Six students (the untrained one included) at 30 s and the teacher at 60 s.
    assert p["minutes"] == pytest.approx({"teacher": 10, "train": 5, "evaluate": 4, "total": 19})
    assert math.isclose(gpu_check.flops_share(1000, 2e9, gpu_check.Gpu("x", 4e12, 1)), 0.5)
    assert gpu_check.flops_share(1000, 2e9, None) is None


@pytest.mark.slow
def test_tiny_run_goes_through_every_stage(tmp_path):
    """`python benchmarks/gpu_check.py --tiny`, as docs/development.md runs it: the paper path end to end on a CPU."""
    import json
    import subprocess

    out = tmp_path / "gpu_check.json"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks/gpu_check.py"), "--tiny", "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert {"prepare", "teacher", "student_init", "train", "evaluate", "evaluate_teacher"} <= set(report["stage_seconds"])
    assert report["projection_hf"]
