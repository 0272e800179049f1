"""Pilot for the embedded student: which layers to keep, and which learning rate.

For each `--config K:LR` (or `--config 0,1,20:LR` for an explicit layer list) it builds the pruned
student exactly as `kdscale student_init` does (block influence on the teacher's answers), trains it
with `kdscale train`'s Trainer, arguments and loss on the first N kept teacher answers of the study's
nested order, and measures what the study measures: held-out perplexity before and after, and on the
50 adherence prompts (greedy, eval.max_new_tokens) the share of answers that end at EOS. One markdown
row per config; the pilot table in docs/decisions.md comes from this script.

    python scripts/pilot_student.py --size 320 --config 10:1e-3 --config 10:3e-4 --config 6:1e-3

Run from the project root after `dvc repro teacher` (it reads data/teacher/ and models/teacher/).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch
from datasets import Dataset

from kdscale import paths, tracking
from kdscale.adherence import load_adherence
from kdscale.config import load_params
from kdscale.stages.evaluate import adherence, perplexity
from kdscale.examples import CompletionCollator, tokenize_records
from kdscale.jsonl import read_jsonl
from kdscale.models import max_context
from kdscale.stages.student_init import calibration_texts, initial_student
from kdscale.stages.subsets import nested_order
from kdscale.stages.train import StudentTrainer, freeze_embeddings, optimizer_steps, training_arguments


def parse_config(text: str) -> tuple[dict, float]:
    layers, lr = text.split(":")
    student = {"keep_layers": [int(i) for i in layers.split(",")]} if "," in layers else {"num_layers": int(layers)}
    return student, float(lr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=320, help="training answers (the study's largest size)")
    parser.add_argument("--config", action="append", required=True, help="K:LR or L1,L2,...:LR")
    parser.add_argument("--no-adherence", action="store_true", help="perplexity only (faster)")
    args = parser.parse_args()

    params = load_params()
    tracking.disable_hf_integrations()
    records = nested_order(read_jsonl(paths.TEACHER_POOL), params.seed)[: args.size]
    heldout = [r for r in read_jsonl(paths.TEACHER_HELDOUT) if not r["dropped"]]
    prompts = load_adherence(params.eval.adherence_file or None)
    calibration = calibration_texts()
    print(f"{len(records)} training answers, {len(heldout)} held-out answers, {torch.get_num_threads()} threads")
    print("| layers kept | lr | steps | train s | real tok/s | ppl before | ppl after | final loss | ended at EOS |")
    print("|---|---|---|---|---|---|---|---|---|")
    for text in args.config:
        overrides, lr = parse_config(text)
        student = next(iter(params.students.values())).model_copy(update={"model": "pruned", **overrides})
        run_params = params.model_copy(update={"train": params.train.model_copy(update={"learning_rate": lr})})
        model, tokenizer, source = initial_student(student, paths.TEACHER_DIR, params.seed, calibration)
        before = perplexity(model, tokenizer, heldout, "alpaca", params.eval.batch_size)
        freeze_embeddings(model, run_params, student)
        examples, _ = tokenize_records(tokenizer, records, min(params.train.max_length, max_context(model, tokenizer)),
                                       params.train.overlong)
        collator = CompletionCollator(tokenizer.pad_token_id)
        steps = optimizer_steps(run_params, len(examples))
        with tempfile.TemporaryDirectory(prefix="kdscale-pilot-") as out:
            train_args = dataclasses.replace(training_arguments(run_params, Path(out), steps), save_strategy="no",
                                             disable_tqdm=True)
            trainer = StudentTrainer(model=model, args=train_args, train_dataset=Dataset.from_list(examples),
                                     data_collator=collator)
            start = time.perf_counter()
            result = trainer.train()
            seconds = time.perf_counter() - start
        model.eval()
        after = perplexity(model, tokenizer, heldout, "alpaca", params.eval.batch_size)
        ended = "-"
        if not args.no_adherence:
            metrics, _ = adherence(model, tokenizer, prompts, "alpaca", params.eval)
            ended = f"{metrics['answers_ended_eos']:.0%}"
        print(f"| {source['keep_layers']} | {lr:g} | {steps} | {seconds:.0f} | {collator.real_tokens / seconds:.0f} | "
              f"{before:,.1f} | {after:,.2f} | {result.training_loss:.3f} | {ended} |", flush=True)


if __name__ == "__main__":
    main()
