"""Stage `teacher_filter`: the filters of `teacher.filters` over the saved raw answers.

Reads data/teacher/raw.jsonl (stage `teacher`), marks bad answers with a reason
instead of deleting them, and writes data/teacher/{pool,heldout}.jsonl and
metrics/teacher_generation.json. Editing a filter reruns this stage and what reads
its outputs, never the generation. It imports neither torch nor MLflow (`kdscale sync` logs its run),
so a rerun starts in seconds.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

from kdscale import paths
from kdscale.config import FilterParams, load_params
from kdscale.jsonl import read_json, read_jsonl, write_json, write_jsonl
from kdscale.records import dropped_flat, dropped_read
from kdscale.text import is_repetitive

TEMPLATE_MARKERS = ["### Instruction", "### Input", "### Response", "<|im_start|>", "<|im_end|>",
                    "<|endoftext|>", "<|user|>", "<|assistant|>"]
RAW_ONLY = ("split",)  # raw.jsonl fields the filtered files do not carry


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
# the stage

def answer_records(records: list[dict], rows: list[dict], filters: FilterParams) -> list[dict]:
    out = []
    for record, row in zip(records, rows):
        answer = {**{k: v for k, v in record.items() if k not in RAW_ONLY}, "response": row["response"],
                  "finish_reason": row["finish_reason"], "n_tokens": row["n_tokens"]}
        # A prompt the teacher's context could not fit has no answer, whatever the filters say.
        reason = "context" if row["finish_reason"] == "context" else drop_reason(answer, filters)
        out.append({**answer, "dropped": reason is not None, "drop_reason": reason})
    return out


def generation_metrics(answers: list[dict], rows: list[dict], timing: dict) -> dict:
    reasons = Counter(a["drop_reason"] for a in answers if a["dropped"])
    finishes = Counter(a["finish_reason"] for a in answers)
    # Every answer's seconds, resumed ones included; raw files written before generation.json had the
    # total kept them per answer.
    seconds = timing["generation_seconds"] if "generation_seconds" in timing else sum(r["seconds"] for r in rows)
    tokens = sum(a["n_tokens"] for a in answers)
    metrics = {
        "answers": len(answers),
        "kept": sum(not a["dropped"] for a in answers),
        "dropped": sum(a["dropped"] for a in answers),
        **dropped_flat(reasons),
        **{f"finish_{r}": finishes.get(r, 0) for r in ["eos", "stop", "length"]},
        "generated_tokens": tokens,
        "mean_answer_tokens": tokens / max(len(answers), 1),
        "generation_seconds": seconds,
        "tokens_per_sec": tokens / seconds if seconds else 0.0,
        "resumed_answers": timing["resumed_answers"],
    }
    for key in ("backend", "device", "dtype"):  # which hardware produced the answers
        if key in timing:
            metrics[key] = timing[key]
    return metrics


def main(argv=None) -> None:
    argparse.ArgumentParser(prog="kdscale teacher_filter", description=__doc__).parse_args(argv)
    params = load_params()
    raw, timing = read_jsonl(paths.TEACHER_RAW), read_json(paths.TEACHER_GENERATION)
    answers = answer_records(raw, raw, params.teacher.filters)
    metrics = generation_metrics(answers, raw, timing)
    write_jsonl(paths.TEACHER_POOL, [a for a, r in zip(answers, raw) if r["split"] == "pool"])
    write_jsonl(paths.TEACHER_HELDOUT, [a for a, r in zip(answers, raw) if r["split"] == "heldout"])
    write_json(paths.TEACHER_METRICS, metrics)
    print(f"teacher_filter: {metrics['answers']} answers, {metrics['kept']} kept, {metrics['dropped']} dropped "
          f"({', '.join(f'{k} {v}' for k, v in dropped_read(metrics).items() if v) or 'none'})")


if __name__ == "__main__":
    from kdscale.cli import run

    run(main)
