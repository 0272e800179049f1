"""Teacher generation throughput: a naive one-prompt-at-a-time loop, the old batched engine, the engine.

All decode the same built-in prompts (the first --prompts of the pool, in the teacher's
chat template), greedily, with the same --max-new-tokens. Tokens are the answer tokens up
to and including the EOS that ends each answer, so every side counts the same useful work.
The baseline is the engine as it was before continuous batching: `model.generate` on each
planned batch, rows decoded until the batch's longest answer ends. Both batched rates are
put against this machine's compute limit: 2 x parameters FLOPs per generated token at the
measured fp32 matrix-product FLOP/s.

    python benchmarks/teacher_throughput.py [--prompts 64] [--max-new-tokens 64]
        [--batch-size 32] [--naive-prompts 16] [--teacher models/teacher]

The teacher is models/teacher when the pipeline has written it, else the embedded GGUF
converted into a temporary folder (about 40 s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from kdscale import paths
from kdscale.engines.generation import DecodeParams, finish, generate_all, plan_batches
from kdscale.models import count_parameters, load_model, materialize
from kdscale.prompts import build_prompt
from kdscale.sources import load_prompts


def matmul_flops(n: int = 1024, repeats: int = 7) -> float:
    """Median fp32 FLOP/s of an n x n matrix product on this machine."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times)


def answer_tokens(row: list[int], eos: int) -> int:
    """New tokens of one answer, up to and including the EOS that ended it."""
    return row.index(eos) + 1 if eos in row else len(row)


@torch.inference_mode()
def naive(model, tokenizer, prompts: list[str], max_new_tokens: int) -> tuple[int, float, float, list[str]]:
    """`model.generate` on one prompt at a time: no padding, no batching.

    Returns (answer tokens, wall seconds, CPU seconds, answers)."""
    tokens, texts, start, cpu = 0, [], time.perf_counter(), time.process_time()
    for prompt in prompts:
        enc = tokenizer(prompt, return_tensors="pt")
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                             top_p=None, top_k=None, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id)
        row = out[0, enc["input_ids"].shape[1] :].tolist()
        n = answer_tokens(row, tokenizer.eos_token_id)
        tokens += n
        texts.append(tokenizer.decode(row[:n], skip_special_tokens=True).strip())
    return tokens, time.perf_counter() - start, time.process_time() - cpu, texts


@torch.inference_mode()
def baseline_batch(model, tokenizer, prompts: list[str], params: DecodeParams):
    """The engine before continuous batching: one `model.generate` per batch, left-padded."""
    tokenizer.padding_side = "left"
    enc = tokenizer(prompts, return_tensors="pt", padding=True).to(model.device)
    out = model.generate(**enc, max_new_tokens=params.max_new_tokens, do_sample=False, temperature=None,
                         top_p=None, top_k=None, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    return [finish(tokenizer, row, [], params.max_new_tokens) for row in out[:, enc["input_ids"].shape[1]:].tolist()]


def baseline_all(model, tokenizer, prompts: list[str], params: DecodeParams, batch_size: int):
    answers = [None] * len(prompts)
    for batch in plan_batches(tokenizer, prompts, batch_size):
        for i, completion in zip(batch, baseline_batch(model, tokenizer, [prompts[i] for i in batch], params)):
            answers[i] = completion
    return answers


def timed(run, model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int):
    """(answer tokens, wall seconds, CPU seconds, answers, token positions the model computed)."""
    positions = []
    hook = model.register_forward_pre_hook(lambda _, args, kwargs: positions.append(kwargs["input_ids"].numel()),
                                           with_kwargs=True)
    params = DecodeParams(max_new_tokens=max_new_tokens)
    start, cpu = time.perf_counter(), time.process_time()
    try:
        completions = run(model, tokenizer, prompts, params, batch_size)
    finally:
        hook.remove()
    seconds = time.perf_counter() - start
    return sum(c.n_tokens for c in completions), seconds, time.process_time() - cpu, completions, sum(positions)


def load_teacher(folder: str | None):
    if folder:
        return load_model(folder, "teacher"), folder
    if paths.TEACHER_DIR.is_dir():
        return load_model(str(paths.TEACHER_DIR), "teacher"), str(paths.TEACHER_DIR)
    tmp = Path(tempfile.mkdtemp(prefix="kdscale-teacher-")) / "teacher"
    print(f"{paths.TEACHER_DIR} not found: converting the embedded GGUF into {tmp} (about 40 s)")
    materialize("embedded", "teacher.model", tmp)
    return load_model(str(tmp), "teacher"), f"embedded (converted to {tmp})"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=64, help="built-in prompts the engine answers")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32, help="the engine's batch size")
    parser.add_argument("--naive-prompts", type=int, default=16,
                        help="prompts for the naive loop (its first N of the same prompts; 0 = all)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--teacher", default=None, help="a model folder (default: models/teacher, else embedded)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    (model, tokenizer), source = load_teacher(args.teacher)
    records = load_prompts("builtin")[0][: args.prompts]
    prompts = [build_prompt(r, "chat", tokenizer) for r in records]
    n_naive = min(args.naive_prompts or len(prompts), len(prompts))
    n_params = count_parameters(model)
    print(f"teacher: {source}, {n_params / 1e6:.1f}M parameters, {next(model.parameters()).dtype}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {model.device}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"prompts: {len(prompts)} built-in (chat template), greedy, max_new_tokens {args.max_new_tokens}")

    naive(model, tokenizer, prompts[:1], 4)  # warm-up: first-call overheads count for neither side
    # CPU seconds per wall second shows contention: other work on the cores starves the threads.
    n_tok, sec, cpu, naive_texts = naive(model, tokenizer, prompts[:n_naive], args.max_new_tokens)
    naive_rate = n_tok / sec
    print(f"naive loop  (1 prompt per generate, first {n_naive} prompts): {n_tok} tokens in {sec:.1f}s "
          f"= {naive_rate:.1f} tok/s  [{cpu / sec:.2f} cores busy]")

    flops = matmul_flops()
    limit = flops / (2 * n_params)
    print(f"matmul: {flops / 1e9:.1f} GFLOP/s (fp32 1024x1024, median of 7); compute limit at 2 x params "
          f"FLOPs/token: {limit:.0f} tok/s")
    cores = [cpu / sec]
    for name, run in [("baseline", baseline_all), ("engine", generate_all)]:
        e_tok, e_sec, e_cpu, completions, positions = timed(run, model, tokenizer, prompts, args.max_new_tokens,
                                                             args.batch_size)
        cores.append(e_cpu / e_sec)
        rate = e_tok / e_sec
        same = sum(a == c.text for a, c in zip(naive_texts, completions))
        print(f"{name:<9} (batch {args.batch_size}, {len(prompts)} prompts): {e_tok} tokens in {e_sec:.1f}s = "
              f"{rate:.1f} tok/s  [{e_cpu / e_sec:.2f} cores busy], speedup {rate / naive_rate:.2f} over naive, "
              f"{100 * rate / limit:.1f}% of the compute limit")
        flop_rate = 2 * n_params * positions / e_sec
        print(f"          computed {positions} token positions (prompts, padding, decoding steps) for {e_tok} "
              f"answer tokens ({100 * e_tok / positions:.0f}%), {flop_rate / 1e9:.1f} GFLOP/s at 2 x params each "
              f"({100 * flop_rate / flops:.0f}% of the matmul rate); answers identical to the naive loop: "
              f"{same}/{n_naive}")
    if n_naive < len(prompts):
        print(f"(the naive loop ran on {n_naive} of the {len(prompts)} prompts to keep the benchmark short; "
              f"tokens/s is a rate, so they compare fairly)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    threads = torch.get_num_threads()
    if min(cores) < 0.9 * min(threads, os.cpu_count() or threads):
        print(f"WARNING: a phase kept fewer than {threads} cores busy: other processes competed for the CPU, "
              f"which stalls torch's threads (10x or worse with 2 threads on 2 cores); rerun on an idle "
              f"machine, or with --threads 1")


if __name__ == "__main__":
    main()
