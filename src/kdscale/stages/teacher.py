"""Stage `teacher`: the teacher answers the pool and the held-out prompts.

Answers are appended as the engine yields them (a run of batches, a vLLM chunk, a served
answer) to a progress file outside DVC's outputs (flushed and fsynced), one line per prompt id
with its top-k, in a file named by a fingerprint of the teacher and the generation params.
Each append is whole or not there: a kill midway through writing one drops all its lines.
A run killed at any point resumes where it stopped and never decodes an answer on file again.
Batches are planned over all prompts up front, and the HF engine decodes them in runs that
share no step (kdscale.engines.generation.generate), so the rest repeat the uninterrupted run's
arithmetic: raw.jsonl and topk.safetensors come out byte-identical. (vLLM and a server decide
their own batches: their answers on file are kept, the rest are as deterministic as they are.)
The file is kept after the stage ends, so a larger `data.pool_size` generates only the new
prompts.

The teacher also keeps its top-k log-probs (`teacher_topk.k`) at every token it generates
(data/teacher/topk.safetensors, a few MB), so that white-box distillation mostly needs no
second pass of the teacher (stage `teacher_topk`).

The raw answers go to data/teacher/raw.jsonl; stage `teacher_filter`
(src/kdscale/stages/teacher_filter.py) marks bad ones with a reason instead of deleting them,
so editing `teacher.filters` re-filters without regenerating.

Pool slack: `data.pool_size` must cover the largest size after the filters. Set it to
largest size / (1 - drop rate) x 1.1, with the drop rate measured in
metrics/teacher_generation.json (`dropped` / `answers`) on a first run or a small
pool; raising it later costs only the new answers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from tqdm import tqdm

from kdscale import paths
from kdscale.engines import served
from kdscale.digest import data_md5
from kdscale.config import SERVING_KEYS, TeacherParams, load_params, to_dict
from kdscale.engines.generation import DecodeParams, generate, generate_vllm
from kdscale.jsonl import read_jsonl, write_json, write_jsonl
from kdscale.models import load_model, load_tokenizer, resolve_device
from kdscale.prompts import build_prompt, stop_strings
from kdscale.topk import TopkStore, build_store

# -----------------------------------------------------------------------------
# resumable generation

def fingerprint(teacher_dir: Path, teacher: TeacherParams, device: str = "cpu", dtype: str = "float32",
                topk: int = 0) -> str:
    """Changes when anything that shapes the answers changes: weights, decoding, device and dtype,
    and with the number of top-k log-probs kept per token (the progress file holds them).

    Prompts are not part of it: progress is keyed by prompt id, so a new pool reuses
    every answer the old one already has."""
    h = hashlib.sha256()
    for name in sorted(os.listdir(teacher_dir)):
        file = teacher_dir / name
        if file.is_file():
            h.update(name.encode())
            h.update(data_md5([file]).encode())
    decoding = {k: v for k, v in to_dict(teacher).items()
                if k not in {"filters", "trust_remote_code"} | SERVING_KEYS}
    key = {"decoding": decoding, "device": str(device), "dtype": str(dtype)} | ({"topk": topk} if topk else {})
    h.update(json.dumps(key, sort_keys=True).encode())
    return h.hexdigest()[:20]


LOCAL_ONLY_KEYS = {"batch_size", "tensor_parallel_size", "trust_remote_code", "filters"}


def served_fingerprint(identity: dict, teacher: TeacherParams, topk: int = 0) -> str:
    """The served teacher's counterpart of `fingerprint`: the server's URL, the model and what the server
    reports about it, and the decoding params; never the key, nor how requests are sent."""
    decoding = {k: v for k, v in to_dict(teacher).items() if k not in LOCAL_ONLY_KEYS | SERVING_KEYS}
    key = {"server": identity, "decoding": decoding} | ({"topk": topk} if topk else {})
    return "served-" + hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def read_progress(path: Path) -> dict[str, dict]:
    """Answers already generated, by prompt id. An append that a kill cut short (a torn line, or
    fewer lines than it had) is cut off whole: its answers are decoded again beside the same rows."""
    if not path.exists():
        return {}
    done, good_bytes, append, append_bytes = {}, 0, {}, 0
    with open(path, "rb") as f:
        for line in f:
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                break
            if not line.endswith(b"\n"):
                break
            place, size = row.pop("append", (0, 1))  # lines written before appends were numbered stand alone
            append[row["id"]], append_bytes = row, append_bytes + len(line)
            if place == size - 1:  # the append's last line: it is whole
                done.update(append)
                good_bytes, append, append_bytes = good_bytes + append_bytes, {}, 0
    with open(path, "r+b") as f:
        f.truncate(good_bytes)
    return done


def append_progress(f, rows: list[dict]) -> None:
    """Write `rows` as one append: each line says its place in it, so a reader knows when one is cut short."""
    f.write("".join(json.dumps({**r, "append": [place, len(rows)]}, ensure_ascii=False) + "\n"
                    for place, r in enumerate(rows)))
    f.flush()
    os.fsync(f.fileno())


def decode_params(teacher: TeacherParams, topk: int = 0) -> DecodeParams:
    return DecodeParams(max_new_tokens=teacher.max_new_tokens, do_sample=teacher.do_sample,
                        temperature=teacher.temperature, top_p=teacher.top_p,
                        stop_strings=stop_strings(teacher.prompt_format), seed=teacher.seed, topk=topk)


def progress_row(prompt_id: str, completion, seconds: float) -> dict:
    row = {"id": prompt_id, "response": completion.text, "finish_reason": completion.finish_reason,
           "n_tokens": completion.n_tokens, "seconds": seconds}
    if completion.topk_indices is not None:  # the store keeps float16: 4 decimals lose nothing
        row.update(token_ids=completion.token_ids, topk_indices=completion.topk_indices.tolist(),
                   topk_logprobs=[[round(x, 4) for x in token] for token in completion.topk_logprobs.tolist()])
    return row


def generated_topk(rows: list[dict], k: int) -> TopkStore:
    """The teacher's top-k at every token it generated, for the answers that have them (skipped prompts'
    and a served teacher's that returned no log-probs have none), as a store whose labels are the
    generated token ids."""
    have = [r for r in rows if r.get("topk_indices")]
    return build_store([r["id"] for r in have], [r["token_ids"] for r in have],
                       [(torch.tensor(r["topk_indices"], dtype=torch.int32), torch.tensor(r["topk_logprobs"]))
                        for r in have], k)


def context_size(teacher_dir: Path, tokenizer) -> int:
    """Positions the teacher can attend to, read from its config (no weights loaded)."""
    config = json.loads((teacher_dir / "config.json").read_text())
    n = config.get("max_position_embeddings") or config.get("n_positions") or config.get("n_ctx")
    return int(n or tokenizer.model_max_length)


def too_long(tokenizer, prompts: list[str], max_new_tokens: int, context: int) -> list[int]:
    """Prompts without max_new_tokens free positions: they would overrun the position table
    (a device-side assert on CUDA), so they are skipped and counted instead."""
    lengths = [len(ids) for ids in tokenizer(prompts).input_ids]
    return [i for i, n in enumerate(lengths) if n + max_new_tokens > context]


@dataclass
class Engine:
    """Where answers come from: the progress file's fingerprint, and `batches(done)` yielding
    (prompt indices, answers) for the prompts not done."""
    fingerprint: str
    batches: Callable[[set[int]], Iterator]
    info: dict  # backend, device, dtype: recorded with the timing
    stats: served.Stats | None = None


def local_engine(prompts: list[str], teacher: TeacherParams, teacher_dir: Path, device: str, dtype: str,
                 topk: int, tokenizer) -> Engine:
    """The teacher's weights in this process: the HF engine, or vLLM's own copy on the GPUs."""
    torch_device, torch_dtype = resolve_device(device, dtype)
    dtype_name = str(torch_dtype).removeprefix("torch.")
    params = decode_params(teacher, topk)
    if teacher.backend == "vllm":
        def batches(done):
            return generate_vllm(str(teacher_dir), prompts, params, teacher.tensor_parallel_size, done=done,
                                 dtype=dtype_name)
    else:
        model, _ = load_model(str(teacher_dir), "teacher.model", trust_remote_code=teacher.trust_remote_code,
                              device=str(torch_device), dtype=dtype_name)

        def batches(done):
            return generate(model, tokenizer, prompts, params, teacher.batch_size, done=done)
    return Engine(fingerprint(teacher_dir, teacher, torch_device.type, dtype_name, topk), batches,
                  {"backend": teacher.backend, "device": str(torch_device), "dtype": dtype_name})


def served_engine(records: list[dict], prompts: list[str], ids: list[str], teacher: TeacherParams, topk: int,
                  tokenizer) -> Engine:
    """The teacher behind an OpenAI-compatible server; checked before any prompt is sent."""
    client = served.make_client(teacher)
    identity = served.server_identity(teacher, served.preflight(client, teacher))
    params = decode_params(teacher, topk)
    requests = served.requests_for(records, prompts, ids, teacher, params)
    stats = served.Stats()
    vocab = served.TokenMap(tokenizer) if topk else None

    def batches(done):
        return served.generate_served(client, teacher, requests, ids, params, stats, done, vocab)
    return Engine(served_fingerprint(identity, teacher, topk), batches,
                  {"backend": "openai", "device": identity["base_url"], "dtype": "as served"}, stats)


def run_generation(records: list[dict], teacher: TeacherParams, teacher_dir: Path, progress_dir: Path,
                   device: str = "cpu", dtype: str = "float32", topk: int = 0) -> tuple[list[dict], dict, Path]:
    """Answer every record, resuming from the progress file; returns rows by position and timing.
    With `topk` (HF engine and servers that return log-probs), each row also keeps the teacher's
    top-k log-probs per generated token."""
    tokenizer = load_tokenizer(str(teacher_dir), "teacher.model", trust_remote_code=teacher.trust_remote_code)
    prompts = [build_prompt(r, teacher.prompt_format, tokenizer) for r in records]
    ids = [r["id"] for r in records]
    engine = served_engine(records, prompts, ids, teacher, topk, tokenizer) if teacher.backend == "openai" \
        else local_engine(prompts, teacher, teacher_dir, device, dtype, topk, tokenizer)
    progress = progress_dir / f"teacher-{engine.fingerprint}.jsonl"
    progress.parent.mkdir(parents=True, exist_ok=True)
    done = read_progress(progress)
    resumed = sum(i in done for i in ids)
    if resumed:
        print(f"teacher: reusing {resumed}/{len(prompts)} answers already in {progress}")
    skipped = [i for i in too_long(tokenizer, prompts, teacher.max_new_tokens, context_size(teacher_dir, tokenizer))
               if ids[i] not in done]
    for i in skipped:
        done[ids[i]] = {"id": ids[i], "response": "", "finish_reason": "context", "n_tokens": 0, "seconds": 0.0}
    if skipped:
        print(f"teacher: skipping {len(skipped)} prompts longer than the context minus teacher.max_new_tokens")
    todo_done = {i for i, prompt_id in enumerate(ids) if prompt_id in done}
    seconds, new_tokens = keep_answers(engine.batches(todo_done), ids, done, progress,
                                       len(prompts), len(todo_done))
    rows = [done[i] for i in ids]
    timing = {"resumed_answers": resumed, "generated_answers": len(prompts) - resumed - len(skipped),
              "skipped_context": len(skipped), "session_seconds": seconds, "session_tokens": new_tokens,
              "generation_seconds": sum(r["seconds"] for r in rows), **engine.info}
    if engine.stats is not None:
        timing.update(engine.stats.summary(seconds))
    return rows, timing, progress


def keep_answers(batches, ids: list[str], done: dict[str, dict], progress: Path, total: int,
                 initial: int) -> tuple[float, int]:
    """Append each run's answers to the progress file as it arrives (fsynced); returns seconds and tokens."""
    new_tokens, start = 0, time.perf_counter()
    bar = tqdm(total=total, initial=initial, desc="teacher", unit="answer", dynamic_ncols=True)
    with open(progress, "a", encoding="utf-8") as f:
        batch_start = time.perf_counter()
        for batch, completions in batches:
            seconds = (time.perf_counter() - batch_start) / len(batch)
            rows = [progress_row(ids[i], c, seconds) for i, c in zip(batch, completions) if ids[i] not in done]
            append_progress(f, rows)
            for row in rows:
                done[row["id"]] = row
            new_tokens += sum(r["n_tokens"] for r in rows)
            bar.update(len(rows))
            bar.set_postfix(tok_s=f"{new_tokens / (time.perf_counter() - start):.0f}")
            batch_start = time.perf_counter()
    bar.close()
    return time.perf_counter() - start, new_tokens


def raw_records(pool: list[dict], heldout: list[dict], rows: list[dict]) -> list[dict]:
    """The prompts with their unfiltered answers, each saying which split it belongs to. No timing: the
    file is a function of the answers alone, the same after a resume (generation.json has the seconds)."""
    splits = ["pool"] * len(pool) + ["heldout"] * len(heldout)
    return [{**record, "split": split, "response": row["response"], "finish_reason": row["finish_reason"],
             "n_tokens": row["n_tokens"]}
            for record, split, row in zip(pool + heldout, splits, rows)]


def main(argv=None) -> None:
    argparse.ArgumentParser(prog="kdscale teacher", description=__doc__).parse_args(argv)
    params = load_params()
    teacher = params.teacher
    pool, heldout = read_jsonl(paths.POOL_PROMPTS), read_jsonl(paths.HELDOUT_PROMPTS)
    rows, timing, progress = run_generation(pool + heldout, teacher, paths.TEACHER_DIR, paths.PROGRESS_DIR,
                                            params.device, params.dtype, params.teacher_topk.k)
    write_jsonl(paths.TEACHER_RAW, raw_records(pool, heldout, rows))
    generated_topk(rows, params.teacher_topk.k).save(paths.TEACHER_GENERATED_TOPK)
    write_json(paths.TEACHER_GENERATION, timing)
    print(f"teacher: {len(rows)} answers ({timing['generated_answers']} generated, {timing['resumed_answers']} "
          f"reused from {progress}, {timing['skipped_context']} skipped as too long) on "
          f"{timing['device']}/{timing['dtype']}; `kdscale teacher_filter` filters them")


if __name__ == "__main__":
    from kdscale.cli import run

    run(main)
