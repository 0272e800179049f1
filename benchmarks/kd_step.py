"""The cost of white-box KD, measured side by side in one run:

  teacher   the teacher answers N pool prompts (kdscale.engines.generation, the teacher stage's decoding)
            without and with keeping its top-k log-probs at each generated token (alternating,
            --repeats times each), then the teacher_topk stage builds the store of those answers:
            reused where training's label tokens are the generated ids, a forward pass elsewhere.
            cost = (median generation with top-k - median without + store seconds)
            target  cost / median generation without < 20%
            (also printed: the forward pass over every answer, the stage's cost before it reused
            what generation kept)
  student   one optimizer step of the initial student (the study's first student, models/STUDENT/init, AdamW) on one batch of
            those answers, with training's SFT loss and its KD loss (both with the LM head at answer
            positions only), alternating, after a warm-up step of each:
            target  median kd step / median sft step < 1.3

    python benchmarks/kd_step.py [--teacher models/teacher] [--prompts 16] [--repeats 2] [--steps 5]

Run from the project root once the teacher and the initial student exist (`dvc repro
student_init`; exit 2 without them). Exit 1 when a ratio misses its target. Time it alone: other processes on
the same cores slow the two sides unevenly.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from kdscale import distill, paths
from kdscale.config import load_params
from kdscale.examples import CompletionCollator
from kdscale.engines.generation import generate_all
from kdscale.models import load_model
from kdscale.prompts import build_prompt
from kdscale.sources import load_prompts
from kdscale.stages.teacher import decode_params, generated_topk, progress_row
from kdscale.stages.teacher_topk import store_for
from kdscale.stages.train import completion_loss

MAX_TOPK_SHARE = 0.20
MAX_KD_RATIO = 1.3


def student_step(model, optimizer, batch: dict, kd: distill.KDConfig | None) -> float:
    """One optimizer step with training's loss (kdscale.stages.train.completion_loss: the LM head at answer
    positions only, then the token NLL for sft or distill.answer_loss for kd)."""
    start = time.perf_counter()
    loss, _ = completion_loss(model, batch, kd)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def timed_student_steps(params, student, tokenizer, examples: list[dict], store, steps: int) -> tuple[float, float]:
    """Median seconds of one optimizer step of the student on one batch, sft and kd (step 0 warms both up)."""
    if params.train.freeze_embeddings:  # as training does
        student.get_input_embeddings().weight.requires_grad_(False)
    student.train()
    width = min(params.train.max_length, max(len(e["input_ids"]) for e in examples))
    examples = [{**e, "input_ids": e["input_ids"][:width], "labels": e["labels"][:width]}
                for e in examples[: params.train.batch_size]]
    batch = distill.KDCollator(tokenizer.pad_token_id, store=store)(examples)
    optimizer = torch.optim.AdamW(student.parameters(), lr=params.train.learning_rate)
    kd = distill.KDConfig("kd", params.train.kd_temperature)
    times = {"sft": [], "kd": []}
    for step in range(steps + 1):
        for name, config in (("sft", None), ("kd", kd)):
            seconds = student_step(student, optimizer, batch, config)
            if step:
                times[name].append(seconds)
    sft, kd_s = statistics.median(times["sft"]), statistics.median(times["kd"])
    real = int(CompletionCollator(0)(examples)["attention_mask"].sum())
    print(f"student: batch {len(examples)} x {batch['input_ids'].shape[1]} ({real} real tokens), "
          f"median of {steps} steps: sft {sft:.3f}s, kd {kd_s:.3f}s -> {kd_s / sft:.2f}x (target < {MAX_KD_RATIO})")
    return sft, kd_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", type=Path, default=paths.TEACHER_DIR)
    parser.add_argument("--prompts", type=int, default=16, help="pool prompts the teacher answers (one batch)")
    parser.add_argument("--repeats", type=int, default=2, help="timed generations of each kind")
    parser.add_argument("--steps", type=int, default=5, help="timed steps of each loss")
    args = parser.parse_args()
    params = load_params()
    name = next(iter(params.students))  # the study's first student
    student_dir = paths.student_init_dir(name)
    if not (args.teacher / "config.json").exists() or not (student_dir / "config.json").exists():
        print(f"kd_step: needs {args.teacher} and {student_dir}; run `dvc repro student_init` first",
              file=sys.stderr)
        return 2
    print(f"load: {os.getloadavg()[0]:.2f} (1 min), torch threads {torch.get_num_threads()}")

    model, tokenizer = load_model(str(args.teacher), "teacher.model")
    records = load_prompts("builtin", args.prompts)[0]
    prompts = [build_prompt(r, params.teacher.prompt_format, tokenizer) for r in records]
    k = params.teacher_topk.k
    generation = {0: [], k: []}  # seconds, without and with keeping the top-k
    for _ in range(args.repeats):
        for topk in generation:
            start = time.perf_counter()
            completions = generate_all(model, tokenizer, prompts, decode_params(params.teacher, topk), len(prompts))
            generation[topk].append(time.perf_counter() - start)
    plain_s, kept_s = statistics.median(generation[0]), statistics.median(generation[k])
    answers = [{**r, "id": str(i), "response": c.text, "finish_reason": c.finish_reason}
               for i, (r, c) in enumerate(zip(records, completions))]
    generated = generated_topk([progress_row(a["id"], c, 0.0) for a, c in zip(answers, completions)], k)

    start = time.perf_counter()
    store, forward = store_for(answers, tokenizer, params.teacher.prompt_format, k, params.teacher_topk.batch_size,
                               generated, lambda: model)
    store_s = time.perf_counter() - start
    start = time.perf_counter()
    store_for(answers, tokenizer, params.teacher.prompt_format, k, params.teacher_topk.batch_size, None, lambda: model)
    forward_all_s = time.perf_counter() - start
    cost = kept_s - plain_s + store_s
    tokens = sum(c.n_tokens for c in completions)
    print(f"teacher: {len(prompts)} answers, {tokens} tokens; generation, median of {args.repeats}: "
          f"{plain_s:.1f}s, {kept_s:.1f}s keeping the top-{k} ({', '.join(f'{t:.1f}' for t in generation[0])} / "
          f"{', '.join(f'{t:.1f}' for t in generation[k])})")
    print(f"teacher_topk: {len(answers) - forward}/{len(answers)} answers reused, {forward} by a forward pass, "
          f"{store_s:.2f}s (the forward pass over all: {forward_all_s:.2f}s = {forward_all_s / plain_s:.1%})")
    print(f"top-{k} cost: {kept_s - plain_s:+.2f}s in generation + {store_s:.2f}s store = {cost / plain_s:.1%} of "
          f"generation (target < {MAX_TOPK_SHARE:.0%})")
    examples, _ = distill.tokenize_with_ids(tokenizer, answers, 1 << 30)
    del model

    student, student_tokenizer = load_model(str(student_dir), f"students.{name}.model")
    sft, kd_s = timed_student_steps(params, student, student_tokenizer, examples, store, args.steps)
    print(f"load: {os.getloadavg()[0]:.2f} (1 min)")
    return 0 if cost / plain_s < MAX_TOPK_SHARE and kd_s / sft < MAX_KD_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
