"""Device and precision chosen once (params `device`/`dtype`), and one process per GPU in training."""

from __future__ import annotations

import pytest
import torch
import yaml
from transformers import TrainingArguments

from conftest import REPO
from kdscale.config import parse_params
from kdscale.errors import UserError
from kdscale.models import load_model, resolve_device
from kdscale.profile import profile_params
from kdscale.stages import train


def embedded(**top) -> dict:
    params = profile_params("embedded")
    return {**params, **top}


def test_auto_is_cpu_float32_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto", "auto") == (torch.device("cpu"), torch.float32)
    assert resolve_device("cpu", "bfloat16") == (torch.device("cpu"), torch.bfloat16)
    with pytest.raises(UserError, match="device: 'cuda' but no CUDA GPU is visible; set device: auto or cpu"):
        resolve_device("cuda", "auto")


@pytest.mark.parametrize("bf16, expected", [(True, torch.bfloat16), (False, torch.float16)])
def test_auto_is_cuda_bfloat16_on_a_gpu(monkeypatch, bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert resolve_device("auto", "auto") == (torch.device("cuda"), expected)
    assert resolve_device("auto", "float32") == (torch.device("cuda"), torch.float32)


def test_device_and_dtype_are_validated():
    assert parse_params(embedded()).device == "auto" and parse_params(embedded()).dtype == "auto"
    with pytest.raises(UserError, match="'device' must be one of \\['auto', 'cpu', 'cuda'\\], got 'gpu'"):
        parse_params(embedded(device="gpu"))
    with pytest.raises(UserError, match="'dtype' must be one of"):
        parse_params(embedded(dtype="fp8"))
    with pytest.raises(UserError, match="'dtype: float16' does not run on the CPU"):
        parse_params(embedded(device="cpu", dtype="float16"))


def test_load_model_puts_the_model_in_the_chosen_dtype(tiny_gpt2_dir):
    model, _ = load_model(str(tiny_gpt2_dir), "model", device="cpu", dtype="bfloat16")
    assert model.dtype == torch.bfloat16 and model.device.type == "cpu" and not model.training
    model, _ = load_model(str(tiny_gpt2_dir), "model")  # the default stays CPU float32
    assert model.dtype == torch.float32


def test_training_precision_follows_device_and_dtype(monkeypatch):
    assert train.precision_arguments(torch.device("cpu"), torch.float32) == {"use_cpu": True}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert train.precision_arguments(torch.device("cuda"), torch.bfloat16) == \
        {"use_cpu": False, "bf16": True, "fp16": False, "tf32": True}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))  # V100: no bf16/tf32
    assert train.precision_arguments(torch.device("cuda"), torch.float16) == \
        {"use_cpu": False, "bf16": False, "fp16": True, "tf32": False}


def test_plain_train_on_a_multi_gpu_host_uses_one_gpu(monkeypatch, capsys):
    world_size, note = train.process_count(4, env={})
    assert world_size == 1
    assert "4 GPUs visible but no launcher" in note and "torchrun --nproc_per_node=4 -m kdscale.stages.train" in note
    # Under torchrun / accelerate launch, every process is one of WORLD_SIZE, silently.
    assert train.process_count(4, env={"WORLD_SIZE": "4", "RANK": "0"}) == (4, None)
    assert train.process_count(1, env={}) == (1, None)
    assert train.process_count(0, env={}) == (1, None)


def test_trainer_never_falls_back_to_data_parallel(tmp_path, monkeypatch):
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=16, use_cpu=True,
                             report_to="none")
    _ = args.device
    args._n_gpu = 4  # what TrainingArguments finds on a 4-GPU host without a launcher
    assert args.train_batch_size == 64  # DataParallel: 4 x the batch, a quarter of the optimizer steps
    args = train.one_process_one_gpu(args)
    assert args.n_gpu == 1 and args.train_batch_size == 16
