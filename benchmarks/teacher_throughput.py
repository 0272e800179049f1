"""Teacher generation throughput: a naive one-prompt-at-a-time loop against the batched engine.

Both decode the same built-in prompts (the first --prompts of the pool, in the teacher's
chat template), greedily, with the same --max-new-tokens. Tokens are the answer tokens up
to and including the EOS that ends each answer, so both sides count the same useful work.
The engine's rate is also put against this machine's compute limit: 2 x parameters FLOPs
per generated token at the measured fp32 matrix-product FLOP/s.

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
from kdscale.generation import DecodeParams, generate_all, plan_batches
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


def engine(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int):
    params = DecodeParams(max_new_tokens=max_new_tokens)
    start, cpu = time.perf_counter(), time.process_time()
    completions = generate_all(model, tokenizer, prompts, params, batch_size)
    seconds = time.perf_counter() - start
    return sum(c.n_tokens for c in completions), seconds, time.process_time() - cpu, completions


def engine_positions(tokenizer, prompts: list[str], completions, batch_size: int) -> tuple[int, int]:
    """Token positions the engine pushed through the model: (prompts with padding, decoding steps).

    A batch is padded to its longest prompt, and decodes until its longest answer ends,
    rows that finished early included; the first new token comes out of the prompt pass.
    """
    lengths = [len(ids) for ids in tokenizer(prompts).input_ids]
    prefill = decode = 0
    for batch in plan_batches(tokenizer, prompts, batch_size):
        prefill += len(batch) * max(lengths[i] for i in batch)
        decode += len(batch) * (max(completions[i].n_tokens for i in batch) - 1)
    return prefill, decode


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

    e_tok, e_sec, e_cpu, completions = engine(model, tokenizer, prompts, args.max_new_tokens, args.batch_size)
    engine_texts = [c.text for c in completions]
    engine_rate = e_tok / e_sec
    print(f"engine      (generate_all, batch {args.batch_size}, {len(prompts)} prompts): {e_tok} tokens in "
          f"{e_sec:.1f}s = {engine_rate:.1f} tok/s  [{e_cpu / e_sec:.2f} cores busy]")
    if n_naive < len(prompts):
        print(f"(the naive loop ran on {n_naive} of the {len(prompts)} prompts to keep the benchmark short; "
              f"tokens/s is a rate, so the two compare fairly)")
    same = sum(a == b for a, b in zip(naive_texts, engine_texts))
    print(f"answers identical to the naive loop: {same}/{n_naive}")
    print(f"speedup {engine_rate / naive_rate:.2f}")

    flops = matmul_flops()
    limit = flops / (2 * n_params)
    print(f"matmul: {flops / 1e9:.1f} GFLOP/s (fp32 1024x1024, median of 7)")
    print(f"compute limit: 2 x params FLOPs/token -> {limit:.0f} tok/s; engine at {100 * engine_rate / limit:.1f}%")
    prefill, decode = engine_positions(tokenizer, prompts, completions, args.batch_size)
    rate = 2 * n_params * (prefill + decode) / e_sec
    print(f"where it goes: the engine ran {prefill + decode} token positions ({prefill} prompt incl. padding, "
          f"{decode} decoding incl. finished rows) for {e_tok} answer tokens "
          f"({100 * e_tok / (prefill + decode):.0f}% of them); at 2 x params FLOPs each that is "
          f"{rate / 1e9:.1f} GFLOP/s, {100 * rate / flops:.0f}% of the matmul rate")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    threads = torch.get_num_threads()
    if min(cpu / sec, e_cpu / e_sec) < 0.9 * min(threads, os.cpu_count() or threads):
        print(f"WARNING: a phase kept fewer than {threads} cores busy: other processes competed for the CPU, "
              f"which stalls torch's threads (10x or worse with 2 threads on 2 cores); rerun on an idle "
              f"machine, or with --threads 1")


if __name__ == "__main__":
    main()
