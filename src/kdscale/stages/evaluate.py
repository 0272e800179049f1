"""Stages `evaluate@STUDENT-N-SEED` and `evaluate_teacher`: perplexity, adherence, speed and size of one model.

Definitions are those of docs/design.md §5. A student is asked in the Alpaca template it was
trained on; the teacher in its own prompt format, the one that wrote its answers. The stage writes
files only: `kdscale sync` (the report's last step) puts them on the model's MLflow run.
"""

from __future__ import annotations

import argparse
import math
import platform
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from kdscale import paths
from kdscale.adherence import load_adherence
from kdscale.adherence.answers import answer_and_score
from kdscale.config import EvalParams, load_params
from kdscale.examples import answer_positions, CompletionCollator, tokenize_records
from kdscale.engines.generation import DecodeParams, generate_batch
from kdscale.jsonl import read_json, read_jsonl, write_json, write_jsonl
from kdscale.metrics import headline_keys
from kdscale.models import (add_model_arguments, chosen_model, count_non_embedding_parameters, count_parameters,
                            load_model, max_context, model_size_mb)
from kdscale.prompts import build_prompt
from kdscale.stats import bootstrap_perplexity
from kdscale.paths import TRAINING_LOG

BOOTSTRAP_RESAMPLES = 2000
WARMUP_TOKENS = 16  # the warm-up only has to touch every code path once


# -----------------------------------------------------------------------------
# perplexity

@torch.inference_mode()
def token_nll(model, examples: list[dict], pad_token_id: int, batch_size: int) -> tuple[list[float], list[int]]:
    """Per example: the sum of next-token NLL over its labelled positions, and their count (right padding).
    The LM head runs only where some row has a label, as in training."""
    collate = CompletionCollator(pad_token_id)
    sums, counts = [], []
    for start in range(0, len(examples), batch_size):
        batch = collate(examples[start : start + batch_size])
        batch = {k: v.to(model.device) for k, v in batch.items()}
        keep = answer_positions(batch["labels"])
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       logits_to_keep=keep).logits
        labels = batch["labels"][:, keep + 1]  # position t predicts token t + 1
        nll = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100,
                              reduction="none").view(labels.shape)
        sums += nll.sum(dim=1).tolist()
        counts += (labels != -100).sum(dim=1).tolist()
    return sums, counts


def answer_nll(model, tokenizer, records: list[dict], prompt_format: str, batch_size: int,
               response_key: str = "response") -> tuple[list[float], list[int]]:
    """Per answer: NLL sum and count over its response tokens and the EOS that ends it."""
    examples, _ = tokenize_records(tokenizer, records, max_context(model, tokenizer), "truncate",
                                   prompt_format, response_key)
    return token_nll(model, examples, tokenizer.pad_token_id, batch_size)


def pooled_perplexity(sums, counts) -> float:
    total, count = float(np.sum(sums)), int(np.sum(counts))
    return math.exp(total / count) if count else float("nan")


def perplexity(model, tokenizer, records: list[dict], prompt_format: str, batch_size: int,
               response_key: str = "response") -> float:
    """exp(sum NLL / tokens) over response tokens and the EOS that ends each response."""
    return pooled_perplexity(*answer_nll(model, tokenizer, records, prompt_format, batch_size, response_key))


# -----------------------------------------------------------------------------
# speed and memory

def speed(model, tokenizer, prompt: str, ev: EvalParams) -> dict:
    """Batch-1 greedy decoding of exactly `speed_new_tokens` tokens: one short warm-up, then K timed runs."""
    fixed = DecodeParams(max_new_tokens=ev.speed_new_tokens, min_new_tokens=ev.speed_new_tokens)

    def timed(decode: DecodeParams) -> float:
        start = time.perf_counter()
        (answer,) = generate_batch(model, tokenizer, [prompt], decode, seed=0)
        seconds = time.perf_counter() - start
        if answer.n_tokens != decode.max_new_tokens:  # the metric assumes exactly N tokens
            raise RuntimeError(f"speed: asked for exactly {decode.max_new_tokens} new tokens, got {answer.n_tokens}")
        return seconds

    timed(DecodeParams(max_new_tokens=WARMUP_TOKENS, min_new_tokens=WARMUP_TOKENS))  # first-call allocations
    latencies = [timed(fixed) for _ in range(ev.speed_runs)]
    mean = statistics.mean(latencies)
    return {
        "tokens_per_sec": ev.speed_new_tokens / mean,
        "tokens_per_sec_median": ev.speed_new_tokens / statistics.median(latencies),
        "latency_mean_s": mean,
        "speed_runs": ev.speed_runs,
        "speed_new_tokens": ev.speed_new_tokens,
    }


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak, so that the one reported is that of generation, not of loading or scoring."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: resets VmHWM to the current RSS
    except OSError:
        pass


def peak_memory_mb(device: torch.device) -> float:
    """Peak since reset_peak_memory: allocated GPU memory, or the process's resident set (VmHWM)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1024**2
    try:
        status = Path("/proc/self/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024
    except (OSError, StopIteration, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # lifetime peak; KiB on Linux


def architecture(model) -> str:
    """model type, layers, hidden size and vocabulary: models that share it share one speed term in the report."""
    c = model.config
    return f"{c.model_type}-{c.num_hidden_layers}L-{c.hidden_size}d-{c.vocab_size}v"


def evaluate_model(model_dir: Path, prompt_format: str, heldout: list[dict], ev: EvalParams,
                   trust_remote_code: bool = False, device: str = "auto", dtype: str = "auto") -> tuple[dict, list]:
    start = time.perf_counter()
    model, tokenizer = load_model(str(model_dir), "model", trust_remote_code=trust_remote_code,
                                  device=device, dtype=dtype)
    kept = [r for r in heldout if not r["dropped"]]
    sums, counts = answer_nll(model, tokenizer, kept, prompt_format, ev.batch_size)
    low, high = bootstrap_perplexity(sums, counts, BOOTSTRAP_RESAMPLES)
    metrics = {"perplexity": pooled_perplexity(sums, counts), "perplexity_ci_low": low, "perplexity_ci_high": high,
               "heldout_answers": len(kept),
               # per answer, so the report can resample the same answers for every model (paired intervals)
               "heldout_ids": [r["id"] for r in kept], "heldout_nll_sums": sums, "heldout_token_counts": counts}
    with_reference = [r for r in heldout if r.get("reference")]
    if with_reference:
        metrics["perplexity_reference"] = perplexity(model, tokenizer, with_reference, prompt_format,
                                                     ev.batch_size, response_key="reference")
    prompts = load_adherence(ev.adherence_file or None)
    reset_peak_memory(model.device)
    adherence_metrics, samples = answer_and_score(model, tokenizer, prompts, prompt_format, ev)
    metrics.update(adherence_metrics)
    metrics.update(speed(model, tokenizer, build_prompt(prompts[0], prompt_format, tokenizer), ev))
    metrics.update({
        "model_size_mb": model_size_mb(model),
        "architecture": architecture(model),
        "parameters": count_parameters(model),
        "non_embedding_parameters": count_non_embedding_parameters(model),
        "peak_memory_mb": peak_memory_mb(model.device),
        "device": str(model.device),
        "dtype": str(model.dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "eval_seconds": time.perf_counter() - start,
    })
    return metrics, samples


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="kdscale evaluate", description=__doc__)
    add_model_arguments(parser)
    args = parser.parse_args(argv)
    chosen, params = chosen_model(load_params(), args, "evaluate")
    heldout = read_jsonl(paths.TEACHER_HELDOUT)
    run, model_dir = chosen.run, chosen.folder
    if run is None:
        out_metrics, out_samples = paths.TEACHER_EVAL_METRICS, paths.TEACHER_SAMPLES
        out_details = paths.TEACHER_EVAL_DETAILS
    else:
        out_metrics, out_samples, out_details = (paths.student_metrics(run), paths.student_samples(run),
                                                 paths.student_details(run))
    metrics, samples = evaluate_model(model_dir, chosen.prompt_format, heldout, params.eval, chosen.trust_remote_code,
                                      params.device, params.dtype)
    if run is not None:
        log = read_json(model_dir / TRAINING_LOG)
        training = log["summary"]
        write_json(paths.loss_plot(run), [{"step": h["step"], "loss": h["loss"]}
                                          for h in log["log_history"] if "loss" in h])
        metrics = {"student": run.student, "size": run.size, "seed": run.seed, **metrics,
                   "train_seconds": training["train_seconds"],
                   "optimizer_steps": training["optimizer_steps"], "final_train_loss": training["final_loss"]}
    write_jsonl(out_samples, samples)
    write_json(out_details, metrics)
    write_json(out_metrics, {k: metrics[k] for k in headline_keys()})
    print(f"evaluate: {model_dir}: perplexity {metrics['perplexity']:.2f} [{metrics['perplexity_ci_low']:.2f}, "
          f"{metrics['perplexity_ci_high']:.2f}], pass rate {metrics['pass_rate']:.0%} "
          f"[{metrics['pass_rate_ci_low']:.0%}, {metrics['pass_rate_ci_high']:.0%}], "
          f"{metrics['degenerate_share']:.0%} degenerate, {metrics['tokens_per_sec']:.1f} tok/s, "
          f"{metrics['model_size_mb']:.1f} MiB")


if __name__ == "__main__":
    from kdscale.cli import run

    run(main)
