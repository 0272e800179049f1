"""Stage `train@STUDENT-N-SEED`: supervised fine-tuning of one student on N teacher answers.

Loss counts response tokens only (prompt and padding labels are -100) and the EOS
that ends each answer, so the student learns to stop. Batches group examples of
similar length and pad to the longest in the batch. Training goes through
transformers' Trainer, so it also runs under `torchrun --nproc_per_node=K -m
kdscale.stages.train --student S --size N`; checkpoints outside DVC's outputs let a killed run resume.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import Trainer, TrainerCallback, TrainingArguments

from kdscale import distill, paths, tracking
from kdscale.config import check_run, Params, StudentParams, load_params, to_dict
from kdscale.digest import data_md5
from kdscale.errors import UserError
from kdscale.jsonl import read_jsonl, write_json
from kdscale.paths import TRAINING_LOG
from kdscale.models import SCRATCH, count_parameters, load_model, load_tokenizer, max_context
from kdscale.examples import answer_positions, CompletionCollator, tokenize_records



# -----------------------------------------------------------------------------
# training

class MLflowLogger(TrainerCallback):
    """Loss, learning rate, gradient norm and tokens/s per logging step, on the model's own run.

    HF's MLflowCallback is disabled: it would open a second run and log every argument."""

    def __init__(self, collator: CompletionCollator):
        self.collator = collator
        self.last = (time.perf_counter(), 0)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        now, tokens = time.perf_counter(), self.collator.real_tokens
        metrics = {k: v for k, v in logs.items() if k in tracking.CURVES and isinstance(v, (int, float))}
        if "loss" in logs:  # a step's log; the end-of-training summary trains no tokens, so no rate of 0
            metrics["tokens_per_sec"] = (tokens - self.last[1]) / max(now - self.last[0], 1e-9)
            self.last = (now, tokens)
        if metrics:  # the end-of-training summary is the run's metrics (training_summary), not a curve point
            tracking.log_metrics({tracking.CURVES[k]: v for k, v in metrics.items()}, step=state.global_step)


class LengthGroupedSampler(torch.utils.data.Sampler):
    """Batches of similar length, in a random order that depends only on the seed and the epoch.

    Each epoch: a seeded permutation, cut into megabatches of up to 50 batches, each sorted by
    length and cut into batches; the full batches are shuffled, the longest goes first (an
    out-of-memory error shows on step 1) and a short last batch stays last, so batches stay
    aligned with the data loader's. transformers' own sampler makes each megabatch at most a
    quarter of the data, so below 8 batches (the study's 25-100 examples) it does not group at
    all. Embedded profile, padding share of the tokens at 25/50/100 examples: 31% each with
    transformers' sampler, 22/13/8% here (a batch of 16 from 25 examples cannot do better);
    on the full teacher pool 8.7% against 2.7% (benchmarks/train_throughput.py).
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, megabatch_batches: int = 50):
        self.lengths, self.batch_size, self.seed = list(lengths), batch_size, seed
        self.megabatch_size = batch_size * megabatch_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:  # Trainer calls it before each epoch
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        # One stream per (seed, epoch): seed + epoch gave seed 2's epoch 0 the order of seed 1's
        # epoch 1. Seed 0 keeps the order it always had, so committed seed-0 runs stay valid.
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        batches = []
        for start in range(0, len(order), self.megabatch_size):
            mega = sorted(order[start : start + self.megabatch_size], key=lambda i: -self.lengths[i])
            batches += [mega[i : i + self.batch_size] for i in range(0, len(mega), self.batch_size)]
        short = [batches.pop()] if len(batches[-1]) < self.batch_size else []
        if batches:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
            longest = max(range(len(batches)), key=lambda b: self.lengths[batches[b][0]])
            batches[0], batches[longest] = batches[longest], batches[0]
        return iter([i for batch in batches + short for i in batch])


def completion_loss(model, inputs: dict, kd: distill.KDConfig | None = None, num_items_in_batch=None):
    """(loss, outputs) of a batch with the LM head applied at answer positions only: the mean token NLL
    of the answers (sft), or kdscale.distill's KD loss when `kd` is given (kd | mixed)."""
    labels = inputs["labels"]
    keep = answer_positions(labels)
    outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], logits_to_keep=keep)
    targets = labels[:, keep + 1]  # position t predicts token t + 1
    count = num_items_in_batch if num_items_in_batch is not None else (targets != -100).sum()
    if kd is None:
        loss = F.cross_entropy(outputs.logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100,
                               reduction="sum") / count
    else:
        loss = distill.answer_loss(outputs.logits, targets, inputs["teacher_indices"][:, keep + 1],
                                   inputs["teacher_logprobs"][:, keep + 1], kd, count)
    return loss, outputs


class StudentTrainer(Trainer):
    """Trainer with the LengthGroupedSampler above and `completion_loss` (train.objective sft, or kd | mixed
    when `kd` is given)."""

    def __init__(self, *args, kd: distill.KDConfig | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.kd = kd

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = completion_loss(model, inputs, self.kd, num_items_in_batch)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes  # as Trainer does: DDP averages, the count was global
        return (loss, outputs) if return_outputs else loss

    def _get_train_sampler(self, train_dataset=None):
        dataset = self.train_dataset if train_dataset is None else train_dataset
        if self.args.train_sampling_strategy != "group_by_length":
            return super()._get_train_sampler(train_dataset)
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return LengthGroupedSampler([e["length"] for e in dataset], self.args.train_batch_size
                                    * self.args.gradient_accumulation_steps, seed)


def freeze_embeddings(model, params: Params, student: StudentParams) -> None:
    """A pretrained start keeps its (tied) embeddings and head: a few hundred answers would mostly nudge
    the rows of the tokens they happen to contain in a 49k-row table. A scratch student learns them."""
    if params.train.freeze_embeddings and student.model != SCRATCH:
        model.get_input_embeddings().weight.requires_grad_(False)


def optimizer_steps(params: Params, n_examples: int, world_size: int = 1) -> int:
    train = params.train
    if train.schedule == "steps":
        return train.max_steps
    per_epoch = math.ceil(n_examples / (train.batch_size * world_size))
    return math.ceil(per_epoch * train.epochs)


def precision_arguments(device: torch.device, dtype: torch.dtype) -> dict:
    """Mixed precision from params' device/dtype: bf16 or fp16 autocast over fp32 master weights
    on a GPU, and TF32 matmuls for what stays fp32 (Ampere and newer); plain fp32 on the CPU."""
    if device.type != "cuda":
        return {"use_cpu": True}
    tf32 = torch.cuda.get_device_capability(device)[0] >= 8
    return {"use_cpu": False, "bf16": dtype == torch.bfloat16, "fp16": dtype == torch.float16, "tf32": tf32}


def process_count(device_count: int, env=os.environ) -> tuple[int, str | None]:
    """World size of this training, and a note when GPUs go unused.

    Under torchrun or `accelerate launch` (WORLD_SIZE set) every process trains on its own
    GPU. A plain `kdscale train` on a host with several GPUs trains on one: Trainer would
    otherwise wrap the model in DataParallel, multiplying the batch (and dividing the
    optimizer steps) without saying so."""
    world_size = int(env.get("WORLD_SIZE", "1"))
    if world_size > 1 or device_count <= 1:
        return world_size, None
    return 1, (f"train: {device_count} GPUs visible but no launcher: training on one GPU; to train on all, "
               f"run torchrun --nproc_per_node={device_count} -m kdscale.stages.train --student S --size N")


def one_process_one_gpu(args: TrainingArguments) -> TrainingArguments:
    """Stop Trainer's DataParallel fallback (the same switch Trainer uses for model parallelism)."""
    if args.n_gpu > 1:
        args._n_gpu = 1
    return args


def training_arguments(params: Params, output_dir: Path, max_steps: int) -> TrainingArguments:
    from kdscale.models import resolve_device

    train = params.train
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=train.batch_size,
        learning_rate=train.learning_rate,
        weight_decay=train.weight_decay,
        lr_scheduler_type=train.lr_scheduler,
        warmup_steps=math.ceil(train.warmup_ratio * max_steps),
        max_steps=max_steps,  # both schedules become a step count, so a resumed run ends where a fresh one does
        train_sampling_strategy="group_by_length",
        remove_unused_columns=False,
        logging_steps=train.logging_steps,
        save_strategy="steps",
        # on a logging step: Trainer logs the mean loss since the last log, so a run resumed from a
        # checkpoint between two logs would log its first loss over fewer steps than a straight run
        save_steps=math.ceil(train.save_steps / train.logging_steps) * train.logging_steps,
        save_total_limit=1,
        seed=params.seed,
        data_seed=params.seed,
        report_to="none",
        disable_tqdm=False,
        dataloader_num_workers=0,
        **precision_arguments(*resolve_device(params.device, params.dtype)),
    )


def last_checkpoint(folder: Path) -> str | None:
    """The newest complete checkpoint. Trainer writes `checkpoint-N/` in place and its
    trainer_state.json last, so a run killed while saving leaves a newer, incomplete folder
    (and the previous one, not yet rotated away): resuming from that one would fail."""
    if not folder.is_dir():
        return None
    done = []
    for path in folder.glob("checkpoint-*"):
        try:
            step = int(path.name.removeprefix("checkpoint-"))
            json.loads((path / "trainer_state.json").read_text())
        except (ValueError, OSError):
            continue
        done.append((step, path))
    return str(max(done)[1]) if done else None


def run_fingerprint(params: Params, run: paths.Run) -> str:
    """Names the checkpoint folder: a changed recipe or subset never resumes an old run."""
    key = {"student": to_dict(params.students[run.student]), "train": to_dict(params.train), "seed": run.seed,
           "size": run.size, "subset": data_md5([paths.subset_file(run.size)])}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def training_data(params: Params, model, tokenizer, run: paths.Run):
    """The subset's tokenized examples, their counts, the collator and (kd | mixed) the KD settings."""
    size, name = run.size, run.name
    records = read_jsonl(paths.subset_file(size))
    max_length = min(params.train.max_length, max_context(model, tokenizer))
    if params.train.objective == "sft":
        examples, counts = tokenize_records(tokenizer, records, max_length, params.train.overlong)
        kd, collator = None, CompletionCollator(tokenizer.pad_token_id)
    else:
        teacher_tokenizer = load_tokenizer(str(paths.TEACHER_DIR), "teacher.model")
        distill.check_same_vocabulary(tokenizer, teacher_tokenizer, params.students[run.student].model)
        examples, counts = distill.tokenize_with_ids(tokenizer, records, max_length, params.train.overlong)
        store = distill.TopkStore.load(paths.subset_topk(size))
        store.check(examples, f"train {name}")
        kd = distill.KDConfig(params.train.objective, params.train.kd_temperature, params.train.kd_weight)
        collator = distill.KDCollator(tokenizer.pad_token_id, store=store)
    if not examples:
        raise UserError(f"train: every example of {name} is longer than train.max_length={max_length}; raise it")
    return examples, counts, collator, kd


def open_run(params: Params, run: paths.Run, checkpoints: Path, is_main: bool):
    """The student's MLflow run, reopened on resume (its id lies beside the checkpoints); rank 0 only."""
    if not is_main:
        return contextlib.nullcontext()
    tracking.setup()
    tags = tracking.common_tags("train", run, [paths.subset_file(run.size)])
    tags.update(tracking.recipe_tags(params))  # objective, schedule, lr, seed: the UI groups runs by them
    return tracking.start_run("train", run.name, tags, run_id=tracking.read_run_id(checkpoints),
                              outputs=[paths.student_dir(run)], student=run)


def save_student(trainer: Trainer, tokenizer, tmp: Path, out: Path, summary: dict, run_id: str) -> None:
    """Beside the weights in `tmp`: the tokenizer, training log and run id; then `tmp` becomes `out` at once."""
    tokenizer.save_pretrained(tmp)
    write_json(tmp / TRAINING_LOG, {"summary": summary, "log_history": trainer.state.log_history})
    tracking.write_run_id(tmp, run_id)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def training_summary(trainer: Trainer, result, collator, seconds: float, world_size: int) -> dict:
    """What the run did: steps, seconds, losses, real tokens/s, padding, size, hardware."""
    args, history = trainer.args, trainer.state.log_history
    return {"optimizer_steps": trainer.state.global_step, "train_seconds": seconds,
            "train_loss": result.training_loss, "final_loss": _last_loss(history, result.training_loss),
            "real_tokens": collator.real_tokens, "real_tokens_per_sec": collator.real_tokens / seconds,
            "padding_fraction": collator.padding_fraction,
            "parameters": count_parameters(trainer.model), "world_size": world_size,
            "device": str(args.device), "dtype": "bfloat16" if args.bf16 else "float16" if args.fp16 else "float32"}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="kdscale train", description=__doc__)
    parser.add_argument("--student", required=True, help="a name in params.yaml `students`")
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--seed", type=int, help="`seed` (the default) or a replicate seed (scaling.replicate_seeds)")
    args = parser.parse_args(argv)
    run, params = check_run(load_params(), args.student, args.size, args.seed)
    size, student = run.size, params.students[run.student]
    tracking.disable_hf_integrations()
    world_size, note = process_count(torch.cuda.device_count())
    if note:
        print(note)
    is_main = int(os.environ.get("RANK", "0")) == 0

    model, tokenizer = load_model(str(paths.student_init_dir(run.student)), f"students.{run.student}.model",
                                  trust_remote_code=student.trust_remote_code)
    if size == 0:
        return save_untrained(params, run, model, tokenizer)
    freeze_embeddings(model, params, student)
    examples, counts, collator, kd = training_data(params, model, tokenizer, run)
    steps = optimizer_steps(params, len(examples), world_size)
    checkpoints = paths.CHECKPOINTS_DIR / f"{run.name}-{run_fingerprint(params, run)}"
    args = one_process_one_gpu(training_arguments(params, checkpoints, steps))
    trainer = StudentTrainer(model=model, args=args, train_dataset=examples, data_collator=collator,
                             callbacks=[MLflowLogger(collator)], kd=kd)
    resume = last_checkpoint(checkpoints)
    out = paths.student_dir(run)
    with open_run(params, run, checkpoints, is_main) as active:
        if is_main:
            checkpoints.mkdir(parents=True, exist_ok=True)
            tracking.write_run_id(checkpoints, active.info.run_id)
            tracking.log_dataset(paths.subset_file(size), "training")
            tracking.log_params({"size": size, "seed": run.seed, "student": to_dict(student),
                                 "train": to_dict(params.train), "optimizer_steps": steps,
                                 "world_size": world_size, "parameters": count_parameters(model)})
        if resume:
            print(f"train: resuming from {resume}")
        start = time.perf_counter()
        result = trainer.train(resume_from_checkpoint=resume)
        seconds = time.perf_counter() - start
        tmp = out.with_name(out.name + ".tmp")
        if is_main:
            shutil.rmtree(tmp, ignore_errors=True)
        trainer.accelerator.wait_for_everyone()
        trainer.save_model(str(tmp))  # on every rank (FSDP/DeepSpeed gather weights there); rank 0 writes
        if not is_main:
            return
        summary = {"size": size, "examples": len(examples), **{f"examples_{k}": v for k, v in counts.items()},
                   "resumed_from": resume, **training_summary(trainer, result, collator, seconds, world_size)}
        save_student(trainer, tokenizer, tmp, out, summary, active.info.run_id)
        tracking.log_metrics(tracking.training_metrics(summary))  # the rest is in training_log.json, with the model
        tracking.log_student_model(out, params.registered_name, run)
    shutil.rmtree(checkpoints, ignore_errors=True)  # the model is saved; the checkpoints served resume only
    print(f"train: {run.name}: {summary['optimizer_steps']} steps in {seconds:.0f}s, "
          f"loss {summary['final_loss']:.3f}, padding {summary['padding_fraction']:.1%} -> {out}")


def save_untrained(params: Params, run: paths.Run, model, tokenizer) -> None:
    """Size 0, the start of the curve: the initial student as it is, with a training log of no steps,
    registered like every other size."""
    out = paths.student_dir(run)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    summary = {"size": 0, "examples": 0, "optimizer_steps": 0, "train_seconds": 0.0, "resumed_from": None,
               "train_loss": None, "final_loss": None, "real_tokens": 0, "real_tokens_per_sec": 0.0,
               "padding_fraction": 0.0, "parameters": count_parameters(model), "world_size": 1}
    write_json(tmp / TRAINING_LOG, {"summary": summary, "log_history": []})
    tracking.setup()
    tags = (tracking.common_tags("train", run, [paths.subset_file(0), paths.student_init_dir(run.student)])
            | tracking.recipe_tags(params))
    with tracking.start_run("train", run.name, tags) as active:
        tracking.log_params({"size": 0, "seed": run.seed, "student": to_dict(params.students[run.student]),
                             "train": to_dict(params.train), "optimizer_steps": 0,
                             "parameters": count_parameters(model)})
        tracking.write_run_id(tmp, active.info.run_id)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        tracking.log_student_model(out, params.registered_name, run)
    print(f"train: {run.name}: the untrained student ({summary['parameters'] / 1e6:.1f}M parameters) -> {out}")


def _last_loss(history: list[dict], fallback: float) -> float:
    """The last logged loss; runs shorter than logging_steps log none, so the mean loss stands in."""
    losses = [h["loss"] for h in history if "loss" in h]
    return losses[-1] if losses else fallback


if __name__ == "__main__":
    from kdscale.cli import run

    run(main)
