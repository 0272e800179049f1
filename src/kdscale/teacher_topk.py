"""Stage `teacher_topk`: the teacher's top-k log-probs at every token of its kept pool answers.

For `train.objective: kd | mixed`; under `sft` (the default) nothing reads them, so the stage
writes an empty store without loading the teacher, and reruns when the objective changes.
One forward pass of the teacher over its own prompt (`teacher.prompt_format`) + each
answer's label tokens, which come from the same function training uses (so the EOS label is
there exactly where training has it). Writes
`data/topk/pool.safetensors` (see kdscale.distill.TopkStore) and `data/topk/stats.json`.
"""

from __future__ import annotations

import argparse
import time

from kdscale import paths
from kdscale.config import load_params
from kdscale.distill import answer_labels, build_store, teacher_topk, tokenize_with_ids
from kdscale.jsonl import read_jsonl, write_json
from kdscale.models import load_model
from kdscale.prompts import build_prompt

NO_LIMIT = 1 << 30  # the whole answer: a training run with a shorter max_length uses the first rows


def store_for(records: list[dict], model, tokenizer, prompt_format: str, k: int, batch_size: int):
    """The top-k store of `records` (the teacher's kept answers)."""
    examples, _ = tokenize_with_ids(tokenizer, records, NO_LIMIT)
    answers = [answer_labels(e) for e in examples]
    prompts = [tokenizer(build_prompt(r, prompt_format, tokenizer)).input_ids for r in records]
    topk = teacher_topk(model, tokenizer, prompts, answers, k, batch_size)
    return build_store([e["id"] for e in examples], answers, topk, k)


def main(argv=None) -> None:
    argparse.ArgumentParser(prog="kdscale teacher_topk", description=__doc__).parse_args(argv)
    params = load_params()
    start = time.perf_counter()
    if params.train.objective == "sft":
        # An sft student never reads the store: skip the teacher's forward pass (minutes) and say so.
        store = build_store([], [], [], params.teacher_topk.k)
        print("teacher_topk: train.objective is sft, so no top-k log-probs are needed; wrote an empty store")
    else:
        records = [r for r in read_jsonl(paths.TEACHER_POOL) if not r["dropped"]]
        model, tokenizer = load_model(str(paths.TEACHER_DIR), "teacher.model",
                                      trust_remote_code=params.teacher.trust_remote_code)
        store = store_for(records, model, tokenizer, params.teacher.prompt_format, params.teacher_topk.k,
                          params.teacher_topk.batch_size)
    seconds = time.perf_counter() - start
    store.save(paths.TOPK_FILE)
    stats = {"answers": len(store.ids), "answer_tokens": len(store.labels), "k": store.k, "seconds": seconds,
             "tokens_per_sec": len(store.labels) / seconds if seconds else 0.0,
             "file_mb": paths.TOPK_FILE.stat().st_size / 1024**2}
    write_json(paths.TOPK_STATS, {"objective": params.train.objective, **stats})
    print(f"teacher_topk: {stats['answers']} answers, {stats['answer_tokens']} tokens, top-{store.k} in "
          f"{seconds:.0f}s -> {paths.TOPK_FILE} ({stats['file_mb']:.1f} MB)")


if __name__ == "__main__":
    from kdscale.cli import run

    run(main)
