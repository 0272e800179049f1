"""Stage `teacher`: the teacher answers the pool and the held-out prompts.

Answers are appended, batch by batch, to a progress file outside DVC's outputs
(flushed and fsynced), keyed by a fingerprint of the prompts, the teacher and the
generation params. A run killed at any point resumes where it stopped, and because
batches are planned over all prompts up front, the result is the same as an
uninterrupted run. Filters mark bad answers with a reason instead of deleting them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import time
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from kdscale import paths, tracking
from kdscale.config import FilterParams, TeacherParams, load_params, to_dict
from kdscale.generation import DecodeParams, generate, generate_vllm
from kdscale.jsonl import read_jsonl, write_json, write_jsonl
from kdscale.models import load_model
from kdscale.prompts import build_prompt, stop_strings

TEMPLATE_MARKERS = ["### Instruction", "### Input", "### Response", "<|im_start|>", "<|im_end|>",
                    "<|endoftext|>", "<|user|>", "<|assistant|>"]


# -----------------------------------------------------------------------------
# filters: each returns True when the answer must be dropped

def _normalise(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def is_empty(response: str) -> bool:
    return not re.search(r"\w", response)


def is_echo(response: str, instruction: str) -> bool:
    """The answer restates the instruction instead of answering it."""
    answer, asked = _normalise(response), _normalise(instruction)
    return bool(asked) and (answer == asked or answer.startswith(asked))


def has_template_leak(response: str) -> bool:
    return any(marker in response for marker in TEMPLATE_MARKERS)


def is_repetitive(response: str, n: int, max_fraction: float) -> bool:
    """Stuck in a loop: too many of the answer's word n-grams are repeats."""
    words = _normalise(response).split()
    ngrams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if len(ngrams) < 2 * n:
        return False
    return 1 - len(set(ngrams)) / len(ngrams) > max_fraction


def drop_reason(record: dict, filters: FilterParams) -> str | None:
    response = record["response"]
    if filters.empty and is_empty(response):
        return "empty"
    if filters.echo and is_echo(response, record["instruction"]):
        return "echo"
    if filters.template_leak and has_template_leak(response):
        return "template_leak"
    if filters.repetition and is_repetitive(response, filters.repetition_ngram, filters.repetition_max_fraction):
        return "repetition"
    if filters.truncated == "drop" and record["finish_reason"] == "length":
        return "truncated"
    return None


# -----------------------------------------------------------------------------
# resumable generation

def fingerprint(prompts: list[str], teacher_dir: Path, teacher: TeacherParams) -> str:
    """Changes when anything that shapes the answers changes: prompts, weights, decoding."""
    h = hashlib.sha256()
    for name in sorted(os.listdir(teacher_dir)):
        file = teacher_dir / name
        if file.is_file():
            h.update(name.encode())
            h.update(tracking.data_md5([file]).encode())
    decoding = {k: v for k, v in to_dict(teacher).items() if k not in {"filters", "trust_remote_code"}}
    h.update(json.dumps({"decoding": decoding, "prompts": prompts}, sort_keys=True).encode())
    return h.hexdigest()[:20]


def read_progress(path: Path) -> dict[int, dict]:
    """Answers already generated; a line torn by a kill mid-write is cut off."""
    if not path.exists():
        return {}
    done, good_bytes = {}, 0
    with open(path, "rb") as f:
        for line in f:
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                break
            if not line.endswith(b"\n"):
                break
            done[row["index"]] = row
            good_bytes += len(line)
    with open(path, "r+b") as f:
        f.truncate(good_bytes)
    return done


def append_progress(f, rows: list[dict]) -> None:
    f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    f.flush()
    os.fsync(f.fileno())


def decode_params(teacher: TeacherParams) -> DecodeParams:
    return DecodeParams(max_new_tokens=teacher.max_new_tokens, do_sample=teacher.do_sample,
                        temperature=teacher.temperature, top_p=teacher.top_p,
                        stop_strings=stop_strings(teacher.prompt_format), seed=teacher.seed)


def run_generation(records: list[dict], teacher: TeacherParams, teacher_dir: Path,
                   progress_dir: Path) -> tuple[list[dict], dict, Path]:
    """Answer every record, resuming from the progress file; returns rows by position and timing."""
    model, tokenizer = load_model(str(teacher_dir), "teacher.model", trust_remote_code=teacher.trust_remote_code)
    prompts = [build_prompt(r, teacher.prompt_format, tokenizer) for r in records]
    progress = progress_dir / f"teacher-{fingerprint(prompts, teacher_dir, teacher)}.jsonl"
    progress.parent.mkdir(parents=True, exist_ok=True)
    done = read_progress(progress)
    if done:
        print(f"teacher: resuming, {len(done)}/{len(prompts)} answers already in {progress}")
    params = decode_params(teacher)
    if teacher.backend == "vllm":
        del model  # vLLM loads its own copy onto the GPUs
        batches = generate_vllm(str(teacher_dir), prompts, params, teacher.tensor_parallel_size, done=set(done))
    else:
        batches = generate(model, tokenizer, prompts, params, teacher.batch_size, done=set(done))
    resumed, new_tokens, start = len(done), 0, time.perf_counter()
    bar = tqdm(total=len(prompts), initial=len(done), desc="teacher", unit="answer", dynamic_ncols=True)
    with open(progress, "a", encoding="utf-8") as f:
        batch_start = time.perf_counter()
        for batch, completions in batches:
            seconds = (time.perf_counter() - batch_start) / len(batch)
            rows = [{"index": i, "response": c.text, "finish_reason": c.finish_reason, "n_tokens": c.n_tokens,
                     "seconds": seconds} for i, c in zip(batch, completions) if i not in done]
            append_progress(f, rows)
            for row in rows:
                done[row["index"]] = row
            new_tokens += sum(r["n_tokens"] for r in rows)
            bar.update(len(rows))
            bar.set_postfix(tok_s=f"{new_tokens / (time.perf_counter() - start):.0f}")
            batch_start = time.perf_counter()
    bar.close()
    timing = {"resumed_answers": resumed, "session_seconds": time.perf_counter() - start,
              "session_tokens": new_tokens}
    return [done[i] for i in range(len(prompts))], timing, progress


def answer_records(records: list[dict], rows: list[dict], filters: FilterParams) -> list[dict]:
    out = []
    for record, row in zip(records, rows):
        answer = {**record, "response": row["response"], "finish_reason": row["finish_reason"],
                  "n_tokens": row["n_tokens"]}
        reason = drop_reason(answer, filters)
        out.append({**answer, "dropped": reason is not None, "drop_reason": reason})
    return out


def generation_metrics(answers: list[dict], rows: list[dict], timing: dict) -> dict:
    reasons = Counter(a["drop_reason"] for a in answers if a["dropped"])
    finishes = Counter(a["finish_reason"] for a in answers)
    seconds = sum(r["seconds"] for r in rows)
    tokens = sum(a["n_tokens"] for a in answers)
    metrics = {
        "answers": len(answers),
        "kept": sum(not a["dropped"] for a in answers),
        "dropped": sum(a["dropped"] for a in answers),
        **{f"dropped_{r}": reasons.get(r, 0) for r in ["empty", "echo", "template_leak", "repetition", "truncated"]},
        **{f"finish_{r}": finishes.get(r, 0) for r in ["eos", "stop", "length"]},
        "generated_tokens": tokens,
        "mean_answer_tokens": tokens / max(len(answers), 1),
        "generation_seconds": seconds,
        "tokens_per_sec": tokens / seconds if seconds else 0.0,
        "resumed_answers": timing["resumed_answers"],
    }
    return metrics


def main(argv=None) -> None:
    argparse.ArgumentParser(prog="kdscale teacher", description=__doc__).parse_args(argv)
    params = load_params()
    teacher = params.teacher
    pool, heldout = read_jsonl(paths.POOL_PROMPTS), read_jsonl(paths.HELDOUT_PROMPTS)
    tracking.setup()
    tags = tracking.common_tags("teacher", None, [paths.POOL_PROMPTS, paths.HELDOUT_PROMPTS, paths.TEACHER_DIR])
    with tracking.start_run("teacher", "teacher-generation", tags,
                            outputs=[paths.TEACHER_POOL, paths.TEACHER_HELDOUT, paths.TEACHER_METRICS]):
        tracking.log_params({"teacher": to_dict(teacher)})
        records = pool + heldout
        rows, timing, progress = run_generation(records, teacher, paths.TEACHER_DIR, paths.PROGRESS_DIR)
        answers = answer_records(records, rows, teacher.filters)
        metrics = generation_metrics(answers, rows, timing)
        write_jsonl(paths.TEACHER_POOL, answers[: len(pool)])
        write_jsonl(paths.TEACHER_HELDOUT, answers[len(pool) :])
        write_json(paths.TEACHER_METRICS, metrics)
        tracking.log_metrics(metrics)
        tracking.log_dict({"answers": answers[:25]}, "teacher_answers_sample.json")
    progress.unlink()  # the outputs now hold every answer
    print(f"teacher: {metrics['answers']} answers, {metrics['dropped']} dropped, "
          f"{metrics['tokens_per_sec']:.1f} tok/s over {metrics['generation_seconds']:.0f}s")


if __name__ == "__main__":
    from kdscale.cli import run

    run(main)
