"""GPU check: the paper profile's path on one GPU, with random weights and no hub.

Builds random-weight gpt2-xl (teacher) and gpt2 (student) from transformers' GPT2Config,
writes a few thousand synthetic Alpaca-shaped records, and runs the project's own stage
code (prepare, teacher, teacher_filter, subsets, train, evaluate) in a temporary project
folder with the paper profile's settings. It prints teacher tokens/s, student training
tokens/s, each one's share of the GPU's bf16 peak (and the teacher's share of the bf16
decoding roofline at its batch), and the whole paper study's projected time with the HF
engine and with vLLM (measured when vLLM is installed, a roofline bound otherwise).

    python benchmarks/gpu_check.py                 # one GPU; under 8 minutes on an H100
    python benchmarks/gpu_check.py --tiny          # CPU smoke run of the same path, tiny models

Random weights decode random text: answers run to teacher.max_new_tokens (the worst
case for time), and the filters are off (they would drop the babble). The figures are
throughput, not quality.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from kdscale.paths import TRAINING_LOG, Run, student_details, student_dir
from kdscale.profile import profile_params

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

# GPT-2 shapes (transformers' GPT2Config fields); vocab 50257 and 1024 positions for all.
SHAPES = {
    "gpt2-xl": {"n_embd": 1600, "n_layer": 48, "n_head": 25},
    "gpt2": {"n_embd": 768, "n_layer": 12, "n_head": 12},
    "tiny-teacher": {"n_embd": 64, "n_layer": 2, "n_head": 2},
    "tiny-student": {"n_embd": 32, "n_layer": 1, "n_head": 2},
}
GPT2_VOCAB = 50257
EOS = "<|endoftext|>"


@dataclass
class Gpu:
    name: str
    bf16_flops: float  # dense bf16 tensor-core peak, FLOP/s
    memory_bandwidth: float  # bytes/s


# Datasheet figures (dense, no sparsity). Matched by substring of torch.cuda.get_device_name().
GPUS = [
    Gpu("H200", 989e12, 4.8e12),
    Gpu("H100 PCIe", 756e12, 2.0e12),
    Gpu("H100", 989e12, 3.35e12),  # SXM
    Gpu("A100", 312e12, 2.0e12),
    Gpu("L40S", 362e12, 0.864e12),
]


def gpu_spec(device_name: str) -> Gpu | None:
    for gpu in GPUS:
        if all(part in device_name for part in gpu.name.split()):
            return gpu
    return None


# ----------------------------------------------------------------------------- synthetic data and models

WORDS = ("the a of to and in is it that for on with as by this be are from at or an which can your "
         "write list explain describe give name summarize compare create suggest find classify rewrite "
         "water energy city river market health music story science history computer language garden "
         "climate travel school money animal planet ocean forest light sound color friend family food "
         "simple quick important different common modern natural social better clear short long new").split()


def _words(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def synthetic_records(n: int, seed: int = 0) -> list[dict]:
    """Alpaca-shaped records (instruction, input, output) with Alpaca-like lengths; about 40%
    have an input, as in tatsu-lab/alpaca. Every instruction is distinct."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        instruction = f"{_words(rng, 6, 20).capitalize()} {i}."
        inp = _words(rng, 5, 40) if rng.random() < 0.4 else ""
        records.append({"instruction": instruction, "input": inp, "output": _words(rng, 20, 160) + "."})
    return records


def make_tokenizer(folder: Path, records: list[dict], vocab_size: int):
    """A byte-level BPE trained on the records, padded with filler tokens to `vocab_size` so the
    models have GPT-2's embedding and output shapes (their cost is part of what is measured)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from kdscale.prompts import alpaca_prompt

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=min(vocab_size, 2000), special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [alpaca_prompt(r["instruction"], r["input"]) + r["output"] for r in records[:2000]]
    bpe.train_from_iterator(corpus, trainer)
    # Filler entries in the BPE vocabulary itself (no merge produces them; they decode as text):
    # as added tokens, 48k of them would make every tokenizer load take tens of seconds.
    spec = json.loads(bpe.to_str())
    vocab = spec["model"]["vocab"]
    vocab.update({f"filler{i}": i for i in range(len(vocab), vocab_size)})
    bpe = Tokenizer.from_str(json.dumps(spec))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS, pad_token=EOS, bos_token=EOS,
                                        model_max_length=1024)
    tokenizer.save_pretrained(folder)
    return tokenizer


def gpt2_config(shape: str, vocab_size: int = GPT2_VOCAB, eos_token_id: int = 0):
    from transformers import GPT2Config

    return GPT2Config(vocab_size=vocab_size, n_positions=1024, bos_token_id=eos_token_id,
                      eos_token_id=eos_token_id, pad_token_id=eos_token_id, **SHAPES[shape])


def count_parameters(config) -> int:
    """Parameters of a GPT-2 of this config, counted on the meta device (nothing allocated)."""
    import torch
    from transformers import GPT2LMHeadModel

    with torch.device("meta"):
        return sum(p.numel() for p in GPT2LMHeadModel(config).parameters())


def build_model(folder: Path, shape: str, tokenizer, device: str, dtype: str, seed: int = 0) -> Path:
    """A random-weight GPT-2 of `shape`, initialised on `device` (seconds on a GPU, a minute on a CPU
    for gpt2-xl) and saved with the tokenizer, in `dtype`."""
    import torch
    from transformers import GPT2LMHeadModel

    torch.manual_seed(seed)
    with torch.device(device):
        model = GPT2LMHeadModel(gpt2_config(shape, len(tokenizer), tokenizer.eos_token_id))
    model.to(getattr(torch, dtype)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    return folder


# ----------------------------------------------------------------------------- arithmetic

def decode_roofline_tokens_per_sec(params: int, config, batch: int, context: int, gpu: Gpu,
                                   bytes_per_value: int = 2) -> float:
    """bf16 decoding roofline: each step reads the weights once and every row's KV cache, and
    does 2 FLOPs per parameter per row plus attention; tokens/s = batch / max(memory, compute) time."""
    kv_bytes = batch * context * 2 * config.n_layer * config.n_embd * bytes_per_value
    step_bytes = params * bytes_per_value + kv_bytes
    step_flops = batch * (2 * params + 4 * context * config.n_layer * config.n_embd)
    seconds = max(step_bytes / gpu.memory_bandwidth, step_flops / gpu.bf16_flops)
    return batch / seconds


def flops_share(tokens_per_sec: float, flops_per_token: float, gpu: Gpu | None) -> float | None:
    return tokens_per_sec * flops_per_token / gpu.bf16_flops if gpu else None


def project_study(paper: dict, teacher_tok_s: float, train_tok_s: float, tokens_per_example: float,
                  student_eval_s: float, teacher_eval_s: float) -> dict:
    """Minutes of the paper study from measured rates. The teacher writes max_new_tokens per
    answer (the worst case; a real gpt2-xl often stops earlier), every size trains `epochs`
    over its examples, and each of the students and the teacher is evaluated once."""
    answers = paper["data"]["pool_size"] + paper["data"]["heldout_size"]
    teacher_tokens = answers * paper["teacher"]["max_new_tokens"]
    train_tokens = paper["train"]["epochs"] * sum(paper["scaling"]["sizes"]) * tokens_per_example
    minutes = {
        "teacher": teacher_tokens / teacher_tok_s / 60,
        "train": train_tokens / train_tok_s / 60,
        "evaluate": (len(paper["scaling"]["sizes"]) * student_eval_s + teacher_eval_s) / 60,
    }
    minutes["total"] = sum(minutes.values())
    return {"teacher_tokens": teacher_tokens, "train_tokens": train_tokens, "minutes": minutes}


# ----------------------------------------------------------------------------- the run

STUDENT = "gpt2"  # the paper profile's student, at the shape this check builds

def check_params(paper: dict, source: Path, tiny: bool, n_pool: int, n_heldout: int, teacher_batch: int) -> dict:
    """The paper profile, pointed at the local random models and the synthetic source, on a
    pool small enough to finish in minutes, one size, filters off."""
    params = json.loads(json.dumps(paper))
    params["data"].update(source=str(source), pool_size=n_pool, heldout_size=n_heldout)
    params["teacher"].update(model="models/teacher", batch_size=teacher_batch)
    params["teacher"]["filters"].update(empty=False, echo=False, template_leak=False, repetition=False)
    params["students"] = {STUDENT: {**params["students"]["gpt2"], "model": "student-base"}}
    params["registered_name"] = "gpu-check-student"
    params["scaling"]["sizes"] = [n_pool]
    params["train"].update(logging_steps=10, save_steps=10_000)
    if tiny:
        params["teacher"]["max_new_tokens"] = 16
        params["train"].update(epochs=1, max_length=128)
        params["eval"].update(max_new_tokens=8, speed_runs=1, speed_new_tokens=4, batch_size=8)
    return params


def run_stage(stage: str, *args: str) -> float:
    import importlib

    import torch

    start = time.perf_counter()
    importlib.import_module(f"kdscale.stages.{stage}").main(list(args))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
    return time.perf_counter() - start


def vllm_rate(project: Path, teacher: dict, n: int) -> float | None:
    """Teacher tokens/s on vLLM over n pool prompts, or None where vLLM is not installed."""
    try:
        import vllm  # noqa: F401
    except ImportError:
        return None
    from kdscale.config import parse_params
    from kdscale.engines.generation import generate_vllm
    from kdscale.jsonl import read_jsonl
    from kdscale.models import load_tokenizer
    from kdscale.prompts import build_prompt
    from kdscale.stages.teacher import decode_params

    params = parse_params(yaml.safe_load((project / "params.yaml").read_text()))
    tokenizer = load_tokenizer(str(project / "models/teacher"), "teacher.model")
    records = read_jsonl(project / "data/prompts/pool.jsonl")[:n]
    prompts = [build_prompt(r, teacher["prompt_format"], tokenizer) for r in records]
    start, tokens = time.perf_counter(), 0
    for _, completions in generate_vllm(str(project / "models/teacher"), prompts, decode_params(params.teacher),
                                        1, dtype="bfloat16"):
        tokens += sum(c.n_tokens for c in completions)
    return tokens / (time.perf_counter() - start)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny models on the CPU: checks the path, not the speed")
    parser.add_argument("--records", type=int, default=3000, help="synthetic Alpaca records to write")
    parser.add_argument("--pool", type=int, default=768, help="prompts the teacher answers (and the size trained)")
    parser.add_argument("--heldout", type=int, default=64)
    parser.add_argument("--teacher-batch-size", type=int, default=0, help="0: the paper profile's teacher.batch_size")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    import torch

    if not args.tiny and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA GPU visible; run it on a GPU machine, or pass --tiny for a CPU smoke run")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    paper = profile_params("paper")
    if args.tiny:
        args.records, args.pool, args.heldout = min(args.records, 96), min(args.pool, 24), min(args.heldout, 8)
    teacher_shape, student_shape = ("tiny-teacher", "tiny-student") if args.tiny else ("gpt2-xl", "gpt2")
    vocab = 1000 if args.tiny else GPT2_VOCAB
    device = "cuda" if torch.cuda.is_available() else "cpu"
    gpu = gpu_spec(torch.cuda.get_device_name()) if device == "cuda" else None
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="kdscale-gpu-check-") as tmp:
        project = Path(tmp)
        os.chdir(project)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{project / 'mlflow.db'}"
        records = synthetic_records(args.records)
        source = project / "alpaca_data.json"
        source.write_text(json.dumps(records))
        tokenizer = make_tokenizer(project / "tokenizer", records, vocab)
        dtype = "bfloat16" if device == "cuda" else "float32"
        build_model(project / "models/teacher", teacher_shape, tokenizer, device, dtype)
        build_model(project / "student-base", student_shape, tokenizer, device, "float32")  # fp32 master weights
        params = check_params(paper, source, args.tiny, args.pool, args.heldout,
                              args.teacher_batch_size or paper["teacher"]["batch_size"])
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        setup_s = time.perf_counter() - started

        size = str(args.pool)
        seconds = run_pipeline(size, STUDENT)
        generation = json.loads((project / "metrics/teacher_generation.json").read_text())
        run = Run(STUDENT, args.pool, paper["seed"])
        training = json.loads((project / student_dir(run) / TRAINING_LOG).read_text())["summary"]
        student_eval = json.loads((project / student_details(run)).read_text())
        teacher_eval = json.loads((project / "metrics/details/teacher.json").read_text())  # eval_seconds
        vllm_tok_s = None if args.tiny else vllm_rate(project, params["teacher"], args.pool)

    figures = measured_figures(paper, params, (teacher_shape, student_shape), vocab, gpu, generation, training,
                               (student_eval["eval_seconds"], teacher_eval["eval_seconds"]), vllm_tok_s)
    figures["device"] = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    figures["stage_seconds"] = {"setup": setup_s, **seconds}
    figures["wall_seconds"] = time.perf_counter() - started
    print_figures(figures)
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


def run_pipeline(size: str, student: str) -> dict[str, float]:
    """Every stage for one student and size, in dvc.yaml's order, each timed."""
    stages = [("prepare",), ("teacher",), ("teacher_filter",),
              ("teacher_topk",),  # sft: an empty store, which subsets slices
              ("subsets", "--size", size), ("student_init", "--student", student),  # train starts here
              ("train", "--student", student, "--size", size), ("evaluate", "--student", student, "--size", size)]
    seconds = {stage: run_stage(stage, *args) for stage, *args in stages}
    seconds["evaluate_teacher"] = run_stage("evaluate", "--teacher")
    return seconds


def measured_figures(paper: dict, params: dict, shapes: tuple[str, str], vocab: int, gpu, generation: dict,
                     training: dict, eval_seconds: tuple[float, float], vllm_tok_s: float | None) -> dict:
    """Throughput against the hardware's peaks, and the paper study projected from it (HF engine and vLLM)."""
    teacher_shape, student_shape = shapes
    teacher_cfg = gpt2_config(teacher_shape, vocab)
    student_cfg = gpt2_config(student_shape, vocab)
    teacher_n, student_n = count_parameters(teacher_cfg), count_parameters(student_cfg)
    teacher_tok_s = generation["tokens_per_sec"]
    train_tok_s = training["real_tokens_per_sec"]
    tokens_per_example = training["real_tokens"] / max(training["examples"] * params["train"]["epochs"], 1)
    batch = params["teacher"]["batch_size"]
    mean_context = 64 + params["teacher"]["max_new_tokens"] // 2  # an Alpaca prompt is about 64 tokens
    roofline = decode_roofline_tokens_per_sec(teacher_n, teacher_cfg, batch, mean_context, gpu) if gpu else None
    hf = project_study(paper, teacher_tok_s, train_tok_s, tokens_per_example, *eval_seconds)
    vllm_rate_used = vllm_tok_s or (decode_roofline_tokens_per_sec(teacher_n, teacher_cfg, 256, mean_context, gpu)
                                    if gpu else None)
    vllm = project_study(paper, vllm_rate_used, train_tok_s, tokens_per_example, *eval_seconds) if vllm_rate_used \
        else None
    return {
        "teacher": {"shape": teacher_shape, "parameters": teacher_n, "batch_size": batch,
                    "tokens_per_sec": teacher_tok_s, "device": generation.get("device"), "dtype": generation.get("dtype"),
                    "bf16_peak_share": flops_share(teacher_tok_s, 2 * teacher_n, gpu),
                    "roofline_tokens_per_sec": roofline,
                    "roofline_share": teacher_tok_s / roofline if roofline else None},
        "student": {"shape": student_shape, "parameters": student_n, "tokens_per_sec": train_tok_s,
                    "device": training.get("device"), "dtype": training.get("dtype"),
                    "mfu": flops_share(train_tok_s, 6 * student_n, gpu), "tokens_per_example": tokens_per_example},
        "projection_hf": hf,
        "projection_vllm": vllm, "vllm": "measured" if vllm_tok_s else "roofline bound at batch 256 (not installed)",
    }


def _pct(x: float | None) -> str:
    return f"{x:.0%}" if x is not None else "n/a"


def print_figures(f: dict) -> None:
    t, s = f["teacher"], f["student"]
    print(f"\ngpu_check on {f['device']} ({f['wall_seconds']:.0f} s)")
    print(f"  teacher {t['shape']} ({t['parameters'] / 1e6:.0f}M, {t['device']}/{t['dtype']}, batch {t['batch_size']}): "
          f"{t['tokens_per_sec']:,.0f} tok/s, {_pct(t['bf16_peak_share'])} of bf16 peak, "
          f"{_pct(t['roofline_share'])} of the decoding roofline"
          + (f" ({t['roofline_tokens_per_sec']:,.0f} tok/s)" if t["roofline_tokens_per_sec"] else ""))
    print(f"  student {s['shape']} ({s['parameters'] / 1e6:.0f}M, {s['device']}/{s['dtype']}) training: "
          f"{s['tokens_per_sec']:,.0f} tok/s, MFU {_pct(s['mfu'])}")
    print("  stage seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in f["stage_seconds"].items()))
    for name, key in [("HF engine", "projection_hf"), (f"vLLM, {f['vllm']}", "projection_vllm")]:
        p = f[key]
        if p:
            m = p["minutes"]
            print(f"  paper study projected ({name}): {m['total']:.0f} min = teacher {m['teacher']:.0f} + "
                  f"train {m['train']:.0f} + evaluate {m['evaluate']:.0f}")


if __name__ == "__main__":
    main()
