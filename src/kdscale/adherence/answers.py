"""A model answering adherence prompts, scored: what stages evaluate (the 50 prompts) and adherence_set (the larger
set) measure alike."""

from __future__ import annotations

import time
from collections import defaultdict

from kdscale.adherence import evaluate_response, type_counts
from kdscale.engines.generation import DecodeParams, generate_all
from kdscale.prompts import build_prompt, stop_strings
from kdscale.records import TypeRates
from kdscale.stats import wilson_interval
from kdscale.text import is_degenerate


def answer_and_score(model, tokenizer, prompts: list[dict], prompt_format: str, ev) -> tuple[dict, list]:
    """A model's greedy answers to adherence prompts (eval.batch_size at a time, eval.max_new_tokens each), each
    scored by its checks: the pass rates with a Wilson interval, per type, the degenerate and EOS shares, and
    every answer with its verdicts."""
    texts = [build_prompt(p, prompt_format, tokenizer) for p in prompts]
    decode = DecodeParams(max_new_tokens=ev.max_new_tokens, stop_strings=stop_strings(prompt_format))
    start = time.perf_counter()
    answers = generate_all(model, tokenizer, texts, decode, ev.batch_size)
    seconds = time.perf_counter() - start
    samples, per_type = [], defaultdict(list)
    for prompt, answer in zip(prompts, answers):
        verdict = evaluate_response(prompt["checks"], answer.text)
        for check in verdict["checks"]:
            per_type[check["type"]].append(check["strict"])
        samples.append({"id": prompt["id"], "instruction": prompt["instruction"], "input": prompt.get("input", ""),
                        "response": answer.text, "finish_reason": answer.finish_reason, "n_tokens": answer.n_tokens,
                        "strict": verdict["strict"], "loose": verdict["loose"],
                        "degenerate": is_degenerate(answer.text), "checks": verdict["checks"]})
    n = len(samples)
    strict = sum(s["strict"] for s in samples)
    low, high = wilson_interval(strict, n)
    instructions = [c["strict"] for s in samples for c in s["checks"]]
    metrics = {
        "pass_rate": strict / n,
        "pass_rate_loose": sum(s["loose"] for s in samples) / n,
        "instruction_pass_rate": sum(instructions) / len(instructions),
        "pass_rate_ci_low": low,
        "pass_rate_ci_high": high,
        "adherence_prompts": n,
        "answers_ended_eos": sum(s["finish_reason"] == "eos" for s in samples) / n,
        "degenerate_share": sum(s["degenerate"] for s in samples) / n,
        # batched throughput of this greedy pass (eval.batch_size prompts at a time), beside batch-1 speed
        "batched_tokens_per_sec": sum(a.n_tokens for a in answers) / max(seconds, 1e-9),
        **TypeRates({t: sum(v) / len(v) for t, v in per_type.items()}, type_counts(prompts)).flat(),
    }
    return metrics, samples
