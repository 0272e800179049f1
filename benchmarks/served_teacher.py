"""The in-process teacher engine against the same teacher behind `transformers serve`, side by side:

  in-process  kdscale.engines.generation (the teacher stage's engine: batches of --batch-size, KV cache,
              rows leave and waiting prompts join) on N pool prompts, greedy
  served      the same prompts through teacher.backend openai (kdscale.engines.served, --concurrency requests
              in flight) against `transformers serve --continuous-batching` on 127.0.0.1
  prints      tokens/s of each (the answers' own tokens over wall time), their ratio, and how many
              answers are identical; where they differ, the first differing pair

    python benchmarks/served_teacher.py [--teacher models/teacher] [--prompts 32] [--concurrency 8]

Run from the project root once `dvc repro teacher_model` has made models/teacher (exit 2 without it).
The server's load and start-up are not timed; each side generates once after a one-prompt warm-up.
Time it alone: other processes on the same cores slow the two sides unevenly.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from kdscale.config import load_params
from kdscale.engines.generation import generate_all
from kdscale.models import load_model, load_tokenizer
from kdscale.prompts import build_prompt
from kdscale.engines.served import Stats, generate_served, make_client, preflight, requests_for
from kdscale.sources import load_prompts
from kdscale.stages.teacher import decode_params


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(teacher: Path, port: int, log) -> subprocess.Popen:
    command = [str(Path(sys.executable).parent / "transformers"), "serve", str(teacher), "--host", "127.0.0.1",
               "--port", str(port), "--device", "cpu", "--continuous-batching"]
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2).read()
            return server
        except OSError:
            if server.poll() is not None:
                sys.exit(f"transformers serve exited; see {log.name}")
            time.sleep(0.5)
    sys.exit("transformers serve did not start in 5 minutes")


def in_process(teacher_dir: Path, prompts: list[str], params, batch_size: int) -> tuple[list, float]:
    model, tokenizer = load_model(str(teacher_dir), "teacher.model")
    generate_all(model, tokenizer, prompts[:1], params, batch_size)  # warm-up
    start = time.perf_counter()
    answers = generate_all(model, tokenizer, prompts, params, batch_size)
    return answers, time.perf_counter() - start


def served(teacher, records: list[dict], prompts: list[str], params) -> tuple[list, float]:
    client = make_client(teacher)
    preflight(client, teacher)
    ids = [r["id"] for r in records]
    requests = requests_for(records, prompts, ids, teacher, params)
    list(generate_served(client, teacher, requests[:1], ids[:1], params, Stats()))  # warm-up
    answers = [None] * len(records)
    start = time.perf_counter()
    for (i,), (completion,) in generate_served(client, teacher, requests, ids, params, Stats()):
        answers[i] = completion
    return answers, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", type=Path, default=Path("models/teacher"))
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    if not (args.teacher / "config.json").exists():
        print(f"{args.teacher}: no teacher; run `dvc repro teacher_model` first", file=sys.stderr)
        return 2
    params = load_params()
    records = load_prompts("builtin")[0][:args.prompts]
    decoding = decode_params(params.teacher)
    tokenizer = load_tokenizer(str(args.teacher), "teacher.model")
    prompts = [build_prompt(r, params.teacher.prompt_format, tokenizer) for r in records]
    local, local_s = in_process(args.teacher, prompts, decoding, params.teacher.batch_size)

    port = free_port()
    teacher = params.teacher.model_copy(update=dict(backend="openai", base_url=f"http://127.0.0.1:{port}/v1",
        served_model=str(args.teacher), concurrency=args.concurrency, request_timeout=600.0))
    with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as log:
        server = start_server(args.teacher, port, log)
        try:
            remote, remote_s = served(teacher, records, prompts, decoding)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)

    local_tokens, remote_tokens = sum(a.n_tokens for a in local), sum(a.n_tokens for a in remote)
    same = sum(a.text == b.text for a, b in zip(local, remote))
    print(f"{len(records)} prompts, greedy, max_new_tokens {decoding.max_new_tokens}, "
          f"prompt_format {params.teacher.prompt_format}, {os.cpu_count()} CPUs")
    print(f"in-process  batch {params.teacher.batch_size:3d}    {local_tokens:6d} tokens in {local_s:7.1f} s  "
          f"{local_tokens / local_s:7.1f} tok/s")
    print(f"served      {args.concurrency:3d} in flight  {remote_tokens:6d} tokens in {remote_s:7.1f} s  "
          f"{remote_tokens / remote_s:7.1f} tok/s")
    print(f"served / in-process tok/s: {(remote_tokens / remote_s) / (local_tokens / local_s):.2f}x")
    print(f"identical answers: {same}/{len(records)}")
    for a, b in zip(local, remote):
        if a.text != b.text:
            print(f"first difference:\n  in-process: {a.text[:200]!r}\n  served:     {b.text[:200]!r}")
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
