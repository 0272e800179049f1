"""Stage `teacher_topk`: the teacher's top-k log-probs at every token of its kept pool answers.

For `train.objective: kd | mixed`; under `sft` (the default) nothing reads them, so the stage
writes an empty store without loading the teacher, and reruns when the objective changes.
The row of each answer token comes from the same function training uses (so the EOS label is
there exactly where training has it). The teacher stage kept its top-k at every token it
generated (data/teacher/topk.safetensors); an answer whose label tokens are exactly those
generated ids reuses them. The others (an answer whose text tokenizes differently from how it
was generated: trailing whitespace stripped, a stop string, a rare non-canonical split; and a
served teacher's that returned no log-probs) get one forward pass of the teacher over its own prompt
(`teacher.prompt_format`) + the label tokens. Writes `data/topk/pool.safetensors` (see
kdscale.topk.TopkStore) and `data/topk/stats.json`.
"""

from __future__ import annotations

import argparse
import time

from kdscale import paths
from kdscale.config import load_params
from kdscale.distill import TopkStore, answer_labels, build_store, teacher_topk, tokenize_with_ids
from kdscale.errors import UserError
from kdscale.jsonl import read_jsonl, write_json
from kdscale.models import load_model, load_tokenizer
from kdscale.prompts import build_prompt

NO_LIMIT = 1 << 30  # the whole answer: a training run with a shorter max_length uses the first rows


def reuse(generated: TopkStore | None, record_id: str, labels: list[int], k: int):
    """(indices, log-probs) of an answer from the generation's store, when it holds these exact tokens
    with at least k log-probs each (the first k of a sorted top-k are the top-k); else None."""
    if generated is None or generated.k < k or record_id not in generated.row:
        return None
    row = generated.row[record_id]
    rows = slice(int(generated.offsets[row]), int(generated.offsets[row + 1]))
    if generated.labels[rows].tolist() != labels:  # also when the lengths differ
        return None
    return generated.indices[rows, :k], generated.logprobs[rows, :k].float()


def store_for(records: list[dict], tokenizer, prompt_format: str, k: int, batch_size: int,
              generated: TopkStore | None = None, load_teacher=None) -> tuple[TopkStore, int]:
    """The top-k store of `records` (the teacher's kept answers), and how many answers needed the
    teacher's forward pass; `load_teacher()` gives the model, called only when one does."""
    examples, _ = tokenize_with_ids(tokenizer, records, NO_LIMIT)
    answers = [answer_labels(e) for e in examples]
    topk = [reuse(generated, e["id"], labels, k) for e, labels in zip(examples, answers)]
    missing = [i for i, t in enumerate(topk) if t is None]
    if missing:
        model = load_teacher()
        by_id = {r["id"]: r for r in records}
        prompts = [tokenizer(build_prompt(by_id[examples[i]["id"]], prompt_format, tokenizer)).input_ids
                   for i in missing]
        for i, t in zip(missing, teacher_topk(model, tokenizer, prompts, [answers[i] for i in missing], k,
                                              batch_size)):
            topk[i] = t
    return build_store([e["id"] for e in examples], answers, topk, k), len(missing)


def main(argv=None) -> None:
    argparse.ArgumentParser(prog="kdscale teacher_topk", description=__doc__).parse_args(argv)
    params = load_params()
    start = time.perf_counter()
    forward = 0
    if params.train.objective == "sft":
        # An sft student never reads the store: skip the teacher (and its forward passes) and say so.
        store = build_store([], [], [], params.teacher_topk.k)
        print("teacher_topk: train.objective is sft, so no top-k log-probs are needed; wrote an empty store")
    else:
        records = [r for r in read_jsonl(paths.TEACHER_POOL) if not r["dropped"]]
        generated = TopkStore.load(paths.TEACHER_GENERATED_TOPK) if paths.TEACHER_GENERATED_TOPK.exists() else None
        tokenizer = load_tokenizer(str(paths.TEACHER_DIR), "teacher.model",
                                   trust_remote_code=params.teacher.trust_remote_code)

        def load_teacher():
            if params.teacher.backend == "openai" and not any(paths.TEACHER_DIR.glob("*.safetensors")):
                raise UserError(f"teacher_topk: train.objective {params.train.objective} needs the teacher's "
                                "top-k log-probs, and the served teacher returned none for some answers (or they "
                                "tokenize differently) while models/teacher has no weights for a local pass; serve "
                                "it with vLLM or SGLang, which return log-probs, or use train.objective: sft")
            return load_model(str(paths.TEACHER_DIR), "teacher.model", trust_remote_code=params.teacher.trust_remote_code,
                              device=params.device, dtype=params.dtype)[0]  # on the GPU where there is one

        store, forward = store_for(records, tokenizer, params.teacher.prompt_format, params.teacher_topk.k,
                                   params.teacher_topk.batch_size, generated, load_teacher)
    seconds = time.perf_counter() - start
    store.save(paths.TOPK_FILE)
    stats = {"answers": len(store.ids), "answer_tokens": len(store.labels), "k": store.k,
             "from_generation": len(store.ids) - forward, "forward_pass": forward, "seconds": seconds,
             "file_mb": paths.TOPK_FILE.stat().st_size / 1024**2}
    write_json(paths.TOPK_STATS, {"objective": params.train.objective, **stats})
    print(f"teacher_topk: {stats['answers']} answers ({stats['from_generation']} from the teacher's generation, "
          f"{forward} by a forward pass), {stats['answer_tokens']} tokens, top-{store.k} in {seconds:.0f}s "
          f"-> {paths.TOPK_FILE} ({stats['file_mb']:.1f} MB)")


if __name__ == "__main__":
    from kdscale.cli import run

    run(main)
