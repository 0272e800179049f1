"""Tiny random models and a tiny tokenizer, built offline, shared by the tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from kdscale import paths
from kdscale.profile import profile_params

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["HF_HUB_OFFLINE"] = "1"  # tests never touch the network

REPO = Path(__file__).resolve().parents[1]
EOS = "<|endoftext|>"
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def make_tokenizer(folder: Path):
    """A byte-level BPE of a few hundred tokens, trained on the project's own prompts; pad = eos like GPT-2."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from kdscale.prompts import alpaca_prompt
    from kdscale.sources import builtin_path

    corpus = [alpaca_prompt("Describe the sea.", "")] + builtin_path().read_text(encoding="utf-8").splitlines()
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=[EOS, "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS, pad_token=EOS, bos_token=EOS)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    return tokenizer


def make_gpt2(folder: Path, tokenizer, seed: int = 0) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=512, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def pytest_collection_modifyitems(config, items):
    """Slow tests first, those on the reproduced study (tests/test_pipeline.py) first of all.

    `make test` runs two workers under `--dist worksteal`: each starts on one half of this list,
    and a worker that runs out takes the second half of the other's queue. So one worker starts
    building the reproduced study at once while the other runs quick tests, and the slow tests
    spread over both as they steal. (Fresh-clone runs of this order took 596-778 s of pytest here,
    and of one with the other slow tests last 775 s: within this machine's run-to-run spread.)"""
    def rank(item) -> int:
        if item.get_closest_marker("slow") is None:
            return 2
        return 0 if "reproduced" in item.fixturenames else 1

    items.sort(key=rank)  # stable: file order within a rank


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models on one thread: a second one only spins, and slows a busy 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tokenizer")
    make_tokenizer(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    """A random 2-layer GPT-2 with the tiny tokenizer: the tests' teacher and pretrained student."""
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("tiny-gpt2")
    return make_gpt2(folder, AutoTokenizer.from_pretrained(tiny_tokenizer_dir))


@pytest.fixture()
def tiny_model(tiny_gpt2_dir):
    from kdscale.models import load_model

    return load_model(str(tiny_gpt2_dir), "model")


STUDENT = "pruned1"  # the tiny project's student (tiny_params)


def run_of(size: int, seed: int = 0, student: str = STUDENT) -> paths.Run:
    """A run of the tiny project: its student at `size` with `seed` (the project's own seed is 0)."""
    return paths.Run(student, size, seed)


def tiny_params(teacher_dir: Path, **overrides) -> dict:
    """The embedded profile shrunk to seconds: tiny models, 2 sizes, short answers."""
    params = profile_params("embedded")
    params["data"].update(pool_size=24, heldout_size=6)
    params["teacher"].update(model=str(teacher_dir), prompt_format="alpaca", max_new_tokens=12, batch_size=8)
    params["teacher"]["filters"].update(empty=False, repetition=False, echo=False)  # a random teacher babbles
    # One student, pruned from the teacher: one of the tiny GPT-2's two layers.
    params["students"] = {STUDENT: dict(params["students"]["pruned10"], model="pruned", num_layers=1, hidden_size=32,
                                        num_heads=2, intermediate_size=64, max_position_embeddings=512)}
    params["scaling"]["sizes"] = [8, 16]
    params["train"].update(max_length=128, logging_steps=1, save_steps=2)
    params["eval"].update(max_new_tokens=8, batch_size=16, speed_runs=1, speed_new_tokens=4)
    for section, values in overrides.items():
        if isinstance(values, dict):
            params[section].update(values)
        else:
            params[section] = values
    return params


STUDY_OUTPUTS = ("metrics/", "plots/", "reports/", "samples/", "studies/")  # studies/: other pipelines


def make_project(dest: Path, teacher_dir: Path, **overrides) -> Path:
    """A copy of the project's tracked files with tiny params, its own git repo and DVC."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        # The study's results (lock, metrics, plots) belong to its params, not the tiny ones; the empty sweep
        # record is an input (the report reads it).
        if name == "dvc.lock" or (name.startswith(STUDY_OUTPUTS) and name != str(paths.SWEEP)):
            continue
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    (dest / "params.yaml").write_text(yaml.safe_dump(tiny_params(teacher_dir, **overrides), sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    if not (dest / ".dvc").is_dir():
        subprocess.run(["dvc", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["dvc", "remote", "add", "-f", "-d", "local", str(dest.parent / "remote")], cwd=dest, check=True)
    return dest


def project_env(root: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in {"MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_EXP_NAME"}}
    env["PATH"] = f"{Path(os.sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run(cmd: list[str], cwd: Path, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=project_env(cwd), capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result
