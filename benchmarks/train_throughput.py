"""Student training throughput: padding every batch to the dataset's longest example against
the project's batching (length-grouped batches, each padded to its own longest example).

Both runs train the study's student (the student before training, models/STUDENT/init, prepared
as kdscale.stages.train prepares it) on the kept teacher answers of
data/teacher/pool.jsonl, with the same seed, initial weights, batch size, learning-rate
schedule and number of optimizer steps, through kdscale.stages.train's Trainer and arguments:

  padded   random batch order, every batch padded to the longest example of the dataset
  project  kdscale.stages.train exactly: train_sampling_strategy="group_by_length" (its
           LengthGroupedSampler) and CompletionCollator (each batch padded to its longest example)

Tokens are real (non-pad) tokens of the batches the optimizer stepped on; the padding
fraction is the share of pad positions in those batches.

    python benchmarks/train_throughput.py [--steps 20] [--data data/teacher/pool.jsonl]
        [--student models/pruned10/init] [--batch-size 16]

Run from the project root after `dvc repro student_init` (exit 2 when its outputs are missing).
Exit 1 when the project's batching misses its targets (speedup >= 1.5, padding < 15%).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import PrinterCallback, TrainerCallback

from kdscale import paths, tracking
from kdscale.config import load_params
from kdscale.examples import CompletionCollator, tokenize_records
from kdscale.jsonl import read_jsonl
from kdscale.models import count_parameters, load_model, max_context
from kdscale.stages.train import StudentTrainer, freeze_embeddings, training_arguments

MIN_SPEEDUP = 1.5
MAX_PADDING = 0.15


class PadToCollator(CompletionCollator):
    """CompletionCollator's batch, padded further to a fixed width (the dataset's longest example)."""

    def __init__(self, pad_token_id: int, width: int):
        super().__init__(pad_token_id)
        self.width = width

    def __call__(self, examples: list[dict]) -> dict:
        batch = super().__call__(examples)
        extra = self.width - batch["input_ids"].shape[1]
        self.padded_tokens += extra * len(examples)
        return {
            "input_ids": F.pad(batch["input_ids"], (0, extra), value=self.pad_token_id),
            "labels": F.pad(batch["labels"], (0, extra), value=-100),
            "attention_mask": F.pad(batch["attention_mask"], (0, extra), value=0),
        }


class Recorder:
    """Wraps a collator and keeps (real tokens, padded tokens) of every batch, in order.

    The data loader fetches one batch ahead, so the batches trained on are the first `steps`."""

    def __init__(self, collator):
        self.collator, self.batches = collator, []

    def __call__(self, examples):
        batch = self.collator(examples)
        self.batches.append((int(batch["attention_mask"].sum()), batch["input_ids"].numel()))
        return batch


class Clock(TrainerCallback):
    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_train_end(self, args, state, control, **kwargs):
        self.seconds = time.perf_counter() - self.start


def train_once(name: str, params, student: Path, examples: list[dict], collator, steps: int, **overrides):
    """Train a fresh student with kdscale.stages.train's Trainer and arguments, changed by `overrides`."""
    model, _ = load_model(str(student), "student")  # the same initial weights each time
    freeze_embeddings(model, params)
    recorder, clock = Recorder(collator), Clock()
    with tempfile.TemporaryDirectory(prefix="kdscale-bench-") as out:
        args = dataclasses.replace(training_arguments(params, Path(out), steps), save_strategy="no",
                                   disable_tqdm=True, logging_strategy="no", **overrides)
        trainer = StudentTrainer(model=model, args=args, train_dataset=Dataset.from_list(examples),
                                 data_collator=recorder, callbacks=[clock])
        trainer.remove_callback(PrinterCallback)
        result = trainer.train()
    assert trainer.state.global_step == steps, (trainer.state.global_step, steps)
    trained = recorder.batches[:steps]
    real, padded = sum(r for r, _ in trained), sum(p for _, p in trained)
    rate = real / clock.seconds
    print(f"{name:<8} {args.train_sampling_strategy:<16} {steps} steps in {clock.seconds:6.1f}s: {real} real tokens "
          f"of {padded} ({1 - real / padded:5.1%} padding) = {rate:7.1f} real tok/s, loss {result.training_loss:.3f}",
          flush=True)
    return rate, 1 - real / padded


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps of each run")
    parser.add_argument("--data", type=Path, default=paths.TEACHER_POOL, help="teacher answers (kept ones are used)")
    parser.add_argument("--student", type=Path, help="the student before training (default: the study's first)")
    parser.add_argument("--batch-size", type=int, default=0, help="per-step batch size (default: train.batch_size)")
    args = parser.parse_args(argv)

    params = load_params()
    name = next(iter(params.students))
    args.student = args.student or paths.student_init_dir(name)
    if args.batch_size:
        params.train.batch_size = args.batch_size
    for path, stage in [(args.student, "student_init"), (args.data, "teacher")]:
        if not path.exists():
            print(f"{path} not found: run `dvc repro {stage}` first (or pass --student / --data)", file=sys.stderr)
            return 2
    tracking.disable_hf_integrations()

    records = [r for r in read_jsonl(args.data) if not r.get("dropped")]
    model, tokenizer = load_model(str(args.student), "student")
    max_length = min(params.train.max_length, max_context(model, tokenizer))
    examples, counts = tokenize_records(tokenizer, records, max_length, params.train.overlong)
    lengths = [e["length"] for e in examples]
    width = max(lengths)
    print(f"student: {name} ({params.students[name].model}), {count_parameters(model) / 1e6:.1f}M parameters, "
          f"vocabulary {len(tokenizer)}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"device {'cuda' if torch.cuda.is_available() else 'cpu'}")
    print(f"data: {len(examples)} kept answers of {args.data} (truncated {counts['truncated']}, "
          f"dropped {counts['dropped']} at max_length {max_length}); tokens per example "
          f"min {min(lengths)} / median {statistics.median(lengths):.0f} / mean {statistics.mean(lengths):.1f} "
          f"/ max {width}")
    print(f"each run: {args.steps} optimizer steps, batch {params.train.batch_size}, seed {params.seed}, "
          f"lr {params.train.learning_rate} {params.train.lr_scheduler}")
    del model

    pad = tokenizer.pad_token_id
    padded_rate, padded_frac = train_once("padded", params, args.student, examples, PadToCollator(pad, width),
                                          args.steps, train_sampling_strategy="random")
    project_rate, project_frac = train_once("project", params, args.student, examples, CompletionCollator(pad),
                                            args.steps)
    speedup = project_rate / padded_rate
    print(f"padded:  {padded_rate:.1f} real tokens/s, padding fraction {padded_frac:.1%}")
    print(f"project: {project_rate:.1f} real tokens/s, padding fraction {project_frac:.1%}")
    print(f"speedup {speedup:.2f}")
    ok = speedup >= MIN_SPEEDUP and project_frac < MAX_PADDING
    print(f"targets (speedup >= {MIN_SPEEDUP}, project padding < {MAX_PADDING:.0%}): {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
