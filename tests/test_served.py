"""The served teacher (teacher.backend: openai) against a real `transformers serve` on 127.0.0.1.

The server serves the tiny GPT-2 on a free port and stops at the end. A fault proxy in front of it
injects 429 (with Retry-After), 500, a stall past the timeout, a dropped connection and a malformed
body, and can demand an API key. Top-k parsing runs on responses in the documented OpenAI/vLLM shape,
since `transformers serve` returns no log-probs.
"""

from __future__ import annotations

import datetime
import email.utils
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from openai.types import Completion as OpenAICompletion
from openai.types.chat import ChatCompletion
from transformers import AutoTokenizer

from kdscale.engines import served
from kdscale.config import TeacherParams, parse_params
from kdscale.errors import UserError
from kdscale.engines.generation import DecodeParams
from kdscale.jsonl import read_jsonl
from kdscale.prompts import ALPACA_STOP_STRINGS
from kdscale.sources import load_prompts
from kdscale.stages.teacher import fingerprint, read_progress, run_generation

pytestmark = pytest.mark.usefixtures("one_thread")
KEY = "sk-test-secret-123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_dir: Path, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
    process = subprocess.Popen([str(Path(sys.executable).parent / "transformers"), "serve", str(model_dir),
                                "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                               stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2).read()
            return process
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"transformers serve exited: {log.read_text()[-2000:]}")
            time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"transformers serve did not start: {log.read_text()[-2000:]}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def server(tiny_gpt2_dir, tmp_path_factory):
    port = free_port()
    process = start_server(tiny_gpt2_dir, port, tmp_path_factory.mktemp("serve") / "serve.log")
    yield f"http://127.0.0.1:{port}/v1"
    stop(process)


CANNED = json.dumps({"id": "c", "object": "text_completion", "created": 0, "model": "m",
                     "choices": [{"index": 0, "text": " An answer.", "finish_reason": "stop", "logprobs": None}],
                     "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}}).encode()


class FaultProxy:
    """A proxy on 127.0.0.1 in front of the server that answers the first requests with the faults
    in `faults` (one per request, in order), then passes requests through; optionally demands a key.
    Without an upstream it answers every request past the faults with one canned completion.
    A fault "429" or "503" may carry its Retry-After value: "429:7", "503:<an HTTP date>"."""

    def __init__(self, upstream: str | None, faults: list[str] = (), key: str | None = None):
        self.upstream = upstream.removesuffix("/v1") if upstream else None
        self.faults, self.key = list(faults), key
        self.lock, self.seen = threading.Lock(), []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                proxy.handle(self, None)

            def do_POST(self):
                proxy.handle(self, self.rfile.read(int(self.headers.get("content-length", 0))))

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def reply(self, handler, status: int, body: bytes, headers: dict = {}):
        handler.send_response(status)
        for k, v in {"content-type": "application/json", "content-length": str(len(body)), **headers}.items():
            handler.send_header(k, v)
        handler.end_headers()
        handler.wfile.write(body)

    def handle(self, handler, body: bytes | None):
        with self.lock:
            self.seen.append((handler.command, handler.path, dict(handler.headers)))
            fault = self.faults.pop(0) if body is not None and self.faults else None
        if self.key is not None and handler.headers.get("authorization") != f"Bearer {self.key}":
            return self.reply(handler, 401, b'{"error": {"message": "Incorrect API key provided"}}')
        status, _, after = (fault or "").partition(":")
        if status in ("429", "503"):
            return self.reply(handler, int(status), b'{"error": {"message": "slow down"}}',
                              {"retry-after": after or "1"})
        if status in ("400", "500"):
            return self.reply(handler, int(status), b'{"error": {"message": "boom"}}')
        if fault == "stall":
            time.sleep(3)  # past the client's 1 s timeout
        if fault == "drop":
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "malformed":
            return self.reply(handler, 200, b'{"id": "x", "choices": [{"text": "cut sho')
        if self.upstream is None:
            return self.reply(handler, 200, CANNED if body is not None else b'{"object": "list", "data": []}')
        request = urllib.request.Request(self.upstream + handler.path, data=body, method=handler.command,
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as upstream:
            self.reply(handler, upstream.status, upstream.read())

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def records():
    return load_prompts("builtin")[0][:6]


def served_params(url: str, model: str, **overrides) -> TeacherParams:
    values = dict(backend="openai", base_url=url, served_model=model, prompt_format="alpaca", max_new_tokens=8,
                  concurrency=2, request_timeout=1.0, max_retries=3, api_key_env="KDSCALE_TEST_KEY")
    return TeacherParams(**{**values, **overrides})


# ----------------------------------------------------------------------------- against the real server

@pytest.mark.slow
def test_served_greedy_answers_match_the_in_process_engine(server, records, tiny_gpt2_dir, tmp_path):
    rows, timing, progress = run_generation(records, served_params(server, str(tiny_gpt2_dir)), tiny_gpt2_dir,
                                            tmp_path / "served")
    local, _, _ = run_generation(records, TeacherParams(prompt_format="alpaca", max_new_tokens=8, batch_size=1),
                                 tiny_gpt2_dir, tmp_path / "local")
    assert [r["response"] for r in rows] == [r["response"] for r in local]
    assert [r["finish_reason"] for r in rows] == [r["finish_reason"] for r in local]
    assert timing["requests"] == len(records) and timing["retries"] == 0
    assert timing["completion_tokens"] == sum(r["n_tokens"] for r in rows) > 0
    assert timing["latency_p95_s"] >= timing["latency_p50_s"] > 0 and timing["backend"] == "openai"
    assert progress.name.startswith("teacher-served-")


@pytest.mark.slow
def test_every_fault_is_retried_to_the_clean_runs_answers(server, records, tiny_gpt2_dir, tmp_path):
    clean, _, _ = run_generation(records, served_params(server, str(tiny_gpt2_dir)), tiny_gpt2_dir,
                                 tmp_path / "clean")
    proxy = FaultProxy(server, ["429", "500", "stall", "drop", "malformed"])
    try:
        start = time.perf_counter()
        rows, timing, _ = run_generation(records, served_params(proxy.url, str(tiny_gpt2_dir)), tiny_gpt2_dir,
                                         tmp_path / "faulty")
        assert time.perf_counter() - start >= 1.0  # the 429's Retry-After was waited out
    finally:
        proxy.close()
    assert [r["response"] for r in rows] == [r["response"] for r in clean]
    assert timing["retries"] == 5 and timing["requests"] == len(records)


@pytest.mark.slow
def test_retries_past_the_stage_limit_stop_it_and_keep_the_answers(server, records, tiny_gpt2_dir, tmp_path):
    proxy = FaultProxy(server, ["pass"] * 2 + ["500"] * 50)
    teacher = served_params(proxy.url, str(tiny_gpt2_dir), concurrency=1, max_total_retries=2)
    try:
        with pytest.raises(UserError, match="max_total_retries=2; the answers so far are kept"):
            run_generation(records, teacher, tiny_gpt2_dir, tmp_path)
        (progress,) = tmp_path.glob("teacher-served-*.jsonl")
        assert len(read_progress(progress)) == 2
        proxy.faults.clear()  # the server is fixed
        rows, timing, _ = run_generation(records, teacher, tiny_gpt2_dir, tmp_path)
    finally:
        proxy.close()
    assert timing["resumed_answers"] == 2 and timing["requests"] == len(records) - 2 and len(rows) == len(records)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["bad key", "unknown model", "closed port"])
def test_bad_server_settings_fail_in_seconds_before_any_prompt(server, records, tiny_gpt2_dir, tmp_path,
                                                              monkeypatch, case):
    monkeypatch.setenv("KDSCALE_TEST_KEY", KEY + "-wrong")
    proxy = FaultProxy(server, key=KEY)
    url, model = proxy.url, str(tiny_gpt2_dir)
    if case == "unknown model":
        monkeypatch.setenv("KDSCALE_TEST_KEY", KEY)
        model = "no-such-model"
    if case == "closed port":
        url = f"http://127.0.0.1:{free_port()}/v1"
    start = time.perf_counter()
    try:
        with pytest.raises(UserError) as error:
            run_generation(records, served_params(url, model), tiny_gpt2_dir, tmp_path)
    finally:
        proxy.close()
    message = str(error.value)
    assert time.perf_counter() - start < 10 and "\n" not in message and KEY not in message
    assert {"bad key": "KDSCALE_TEST_KEY", "unknown model": "teacher.served_model",
            "closed port": "cannot reach"}[case] in message
    assert not any(p for _, p, _ in proxy.seen if "completions" in p)  # not one prompt was sent
    assert not list(tmp_path.glob("teacher-*.jsonl"))


@pytest.mark.slow
def test_the_key_goes_only_in_the_authorization_header(server, records, tiny_gpt2_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("KDSCALE_TEST_KEY", KEY)
    proxy = FaultProxy(server, key=KEY)
    try:
        rows, timing, progress = run_generation(records, served_params(proxy.url, str(tiny_gpt2_dir)),
                                                tiny_gpt2_dir, tmp_path)
    finally:
        proxy.close()
    assert len(rows) == len(records)
    assert KEY not in progress.read_text() + json.dumps(timing) + progress.name


@pytest.mark.slow
def test_server_killed_mid_stage_and_restarted_resumes_without_loss_or_repeats(tiny_gpt2_dir, tmp_path, server):
    records = load_prompts("builtin")[0][:40]
    clean, _, _ = run_generation(records, served_params(server, str(tiny_gpt2_dir), max_new_tokens=24),
                                 tiny_gpt2_dir, tmp_path / "clean")
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    process = start_server(tiny_gpt2_dir, port, tmp_path / "serve.log")
    teacher = served_params(url, str(tiny_gpt2_dir), max_new_tokens=24, concurrency=1, max_retries=1)
    progress_dir = tmp_path / "progress"

    def kill_after_some_answers():
        while not list(progress_dir.glob("*.jsonl")) or len(next(progress_dir.glob("*.jsonl")).read_text().splitlines()) < 5:
            time.sleep(0.05)
        stop(process)

    killer = threading.Thread(target=kill_after_some_answers)
    killer.start()
    try:
        with pytest.raises(UserError, match="run the stage again to resume"):
            run_generation(records, teacher, tiny_gpt2_dir, progress_dir)
    finally:
        killer.join()
    (progress,) = progress_dir.glob("*.jsonl")
    kept = len(read_progress(progress))
    assert 5 <= kept < len(records)
    process = start_server(tiny_gpt2_dir, port, tmp_path / "serve2.log")
    try:
        rows, timing, _ = run_generation(records, teacher, tiny_gpt2_dir, progress_dir)
    finally:
        stop(process)
    assert timing["resumed_answers"] == kept and timing["requests"] == len(records) - kept
    assert [r["response"] for r in rows] == [r["response"] for r in clean]
    ids = [json.loads(line)["id"] for line in progress.read_text().splitlines()]
    assert sorted(ids) == sorted(r["id"] for r in records)  # each prompt answered exactly once


# ----------------------------------------------------------------------------- params, fingerprints

def test_served_params_are_checked_with_one_line_naming_the_key():
    with pytest.raises(UserError, match="needs 'teacher.base_url'"):
        parse_params({"teacher": {"backend": "openai", "served_model": "m"}})
    with pytest.raises(UserError, match="'teacher.base_url' must start with http"):
        parse_params({"teacher": {"backend": "openai", "served_model": "m", "base_url": "127.0.0.1:8000"}})
    with pytest.raises(UserError, match="'teacher.concurrency' must be positive"):
        parse_params({"teacher": {"concurrency": 0}})


def test_serving_keys_leave_the_local_fingerprint_alone(tiny_gpt2_dir):
    plain = fingerprint(tiny_gpt2_dir, TeacherParams())
    assert fingerprint(tiny_gpt2_dir, TeacherParams(base_url="http://x/v1", served_model="m", concurrency=3,
                                                    api_key_env="OTHER", max_retries=1)) == plain


def test_served_fingerprint_covers_server_and_decoding_but_not_the_key_or_manners():
    from kdscale.stages.teacher import served_fingerprint

    teacher = served_params("http://h:1/v1", "m")
    entry = {"id": "m", "object": "model", "created": 1, "owned_by": "vllm", "root": "/w/llama-70b"}
    base = served_fingerprint(served.server_identity(teacher, entry), teacher)
    assert base == served_fingerprint(served.server_identity(teacher, {**entry, "created": 2}), teacher)
    manners = served_params("http://h:1/v1", "m", concurrency=64, request_timeout=5.0, api_key_env="K")
    assert base == served_fingerprint(served.server_identity(manners, entry), manners)
    for changed in (served_params("http://h:2/v1", "m"), served_params("http://h:1/v1", "m", temperature=0.1)):
        assert base != served_fingerprint(served.server_identity(changed, entry), changed)
    assert base != served_fingerprint(served.server_identity(teacher, {**entry, "root": "/w/llama-8b"}), teacher)


# ----------------------------------------------------------------------------- responses in the documented shapes

def completion(text: str, finish: str, **extra) -> OpenAICompletion:
    choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": extra.pop("logprobs", None), **extra}
    return OpenAICompletion.model_validate({"id": "c", "object": "text_completion", "created": 0, "model": "m",
                                            "choices": [choice], "usage": {"prompt_tokens": 3,
                                                                           "completion_tokens": 4,
                                                                           "total_tokens": 7}})


@pytest.mark.parametrize("text, finish, extra, expected", [
    (" Green sea. ", "stop", {}, ("Green sea.", "eos")),
    ("Green sea.", "stop", {"stop_reason": "### Instruction:"}, ("Green sea.", "stop")),  # vLLM's field
    ("Green sea.", "stop", {"stop_reason": 0}, ("Green sea.", "eos")),  # vLLM: an EOS token id
    ("Green sea.\n### Input:\nmore", "length", {}, ("Green sea.", "stop")),  # a server that ignored `stop`
    ("Green sea and", "length", {}, ("Green sea and", "length")),
])
def test_answers_end_and_strip_like_the_local_engines(text, finish, extra, expected):
    response = completion(text, finish, **extra)
    done = served.answer(response.choices[0], response.usage, DecodeParams(stop_strings=ALPACA_STOP_STRINGS))
    assert (done.text, done.finish_reason, done.n_tokens) == (*expected, 4)


@pytest.fixture(scope="module")
def vocab(tiny_tokenizer_dir):
    return served.TokenMap(AutoTokenizer.from_pretrained(tiny_tokenizer_dir))


def test_topk_from_a_completions_response_maps_to_the_teacher_ids(vocab, tiny_tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    words = [tokenizer.decode([i]) for i in tokenizer(" the sea is", add_special_tokens=False).input_ids]
    top = [{w: -0.1, "token_id:7": -2.5, "e": -3.0} for w in words]
    response = completion("".join(words), "length", logprobs={"tokens": words, "token_logprobs": [-0.1] * len(words),
                                                              "top_logprobs": top, "text_offset": [0] * len(words)})
    done = served.answer(response.choices[0], response.usage, DecodeParams(topk=2), vocab)
    expected = tokenizer(" the sea is", add_special_tokens=False).input_ids
    assert done.token_ids == expected and done.n_tokens == len(expected) > 1
    assert done.topk_indices.tolist() == [[t, 7] for t in expected]
    assert done.topk_logprobs.flatten().tolist() == pytest.approx([-0.1, -2.5] * len(expected))


def test_topk_from_a_chat_response_reads_the_token_bytes(vocab, tiny_tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    sea = tokenizer(" sea", add_special_tokens=False).input_ids[0]
    piece = tokenizer.decode([sea]).encode()  # the token's bytes, as the chat shape gives them
    entry = {"token": piece.decode(), "bytes": list(piece), "logprob": -0.2,
             "top_logprobs": [{"token": "garbled", "bytes": list(piece), "logprob": -0.2},
                              {"token": "token_id:5", "bytes": None, "logprob": -1.9}]}
    response = ChatCompletion.model_validate({
        "id": "c", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": {"content": [entry]},
                     "message": {"role": "assistant", "content": piece.decode()}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
    done = served.answer(response.choices[0], response.usage, DecodeParams(topk=2), vocab)
    assert done.token_ids == [sea] and done.topk_indices.tolist() == [[sea, 5]]


def test_an_answer_without_logprobs_keeps_no_topk(vocab):
    response = completion("a sea", "length")
    done = served.answer(response.choices[0], response.usage, DecodeParams(topk=2), vocab)
    assert done.text == "a sea" and done.topk_indices is None and done.token_ids is None


@pytest.mark.parametrize("logprobs, message", [
    ({"tokens": ["a"], "token_logprobs": [-1.0], "top_logprobs": [{"a": -1.0}], "text_offset": [0]},
     "returned 1 log-probs per token, fewer than teacher_topk.k=2"),
    ({"tokens": ["\u2603zz"], "token_logprobs": [-1.0], "top_logprobs": [{"\u2603zz": -1.0, "a": -2.0}],
      "text_offset": [0]}, "not in the teacher tokenizer's vocabulary"),
])
def test_topk_that_cannot_serve_kd_is_refused_with_one_line(vocab, logprobs, message):
    response = completion("a", "length", logprobs=logprobs)
    with pytest.raises(UserError, match=message):
        served.answer(response.choices[0], response.usage, DecodeParams(topk=2), vocab)


@dataclass
class Sent:
    """One prompt sent through a proxy that answered with faults first."""
    waits: list[float]  # what the client slept between tries (recorded, not slept)
    posts: int  # the requests the proxy saw
    stats: served.Stats
    error: UserError | None


def send_through(faults: list[str], monkeypatch, **overrides) -> Sent:
    waits, error = [], None
    monkeypatch.setattr(served.time, "sleep", waits.append)
    proxy = FaultProxy(None, faults)
    teacher, stats = served_params(proxy.url, "m", **overrides), served.Stats()
    try:
        served.send(served.make_client(teacher), teacher, {"prompt": "Hi", "max_tokens": 4}, "p1",
                    DecodeParams(max_new_tokens=4), stats)
    except UserError as e:
        error = e
    finally:
        proxy.close()
    return Sent(waits, sum(s[0] == "POST" for s in proxy.seen), stats, error)


@pytest.mark.parametrize("status", ["429", "503"])
def test_a_server_that_says_when_to_retry_is_waited_exactly_that_long(status, monkeypatch):
    sent = send_through([f"{status}:7", f"{status}:0.25"], monkeypatch)
    assert sent.waits == [7.0, 0.25]  # the server's delays, not the client's own backoff
    assert sent.error is None and sent.posts == 3 and sent.stats.retries == 2 and sent.stats.requests == 1


def test_retry_after_as_an_http_date_is_waited_until_that_time(monkeypatch):
    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=40)
    sent = send_through([f"429:{email.utils.format_datetime(soon, usegmt=True)}"], monkeypatch)
    assert len(sent.waits) == 1 and 35 < sent.waits[0] <= 40


def test_without_retry_after_the_backoff_doubles_with_jitter_up_to_its_cap(monkeypatch):
    sent = send_through(["500"] * 9, monkeypatch, max_retries=9)
    first, cap = served.BACKOFF_FIRST_S, served.BACKOFF_MAX_S
    for attempt, wait in enumerate(sent.waits):
        full = min(first * 2 ** attempt, cap)
        assert full / 2 <= wait <= full  # jitter takes off at most half
    assert max(sent.waits) > cap / 2 and sent.posts == 10 and sent.error is None


def test_a_request_is_tried_max_retries_plus_one_times_then_stops_the_stage(monkeypatch):
    sent = send_through(["500"] * 5, monkeypatch, max_retries=2)
    assert sent.posts == 3 and len(sent.waits) == 2
    assert "prompt p1 failed 3 times" in str(sent.error) and "teacher.max_retries=2" in str(sent.error)


def test_a_request_the_server_rejects_is_not_retried(monkeypatch):
    sent = send_through(["400", "400"], monkeypatch)
    assert sent.posts == 1 and sent.waits == [] and "rejected prompt p1 (400" in str(sent.error)


def test_requests_carry_the_local_engines_decoding_and_a_seed_of_the_prompt_alone():
    records = [{"instruction": "Name a colour.", "input": ""}, {"instruction": "Sum these.", "input": "2 3"}]
    stops = ["### Instruction:", "### Input:", "### Response:", "\n\n\n", "<|endoftext|>"]
    greedy = DecodeParams(max_new_tokens=9, stop_strings=stops, topk=5)
    alpaca = served.requests_for(records, ["P0", "P1"], ["a", "b"], served_params("u", "m"), greedy)
    assert [r["prompt"] for r in alpaca] == ["P0", "P1"] and alpaca[0]["logprobs"] == 5
    assert alpaca[0]["temperature"] == 0.0 and alpaca[0]["top_p"] == 1.0 and alpaca[0]["max_tokens"] == 9
    assert alpaca[0]["stop"] == stops[:4]  # the API's limit; the fifth is cut client-side
    sampled = DecodeParams(do_sample=True, temperature=0.7, top_p=0.9, seed=3)
    chat = served.requests_for(records, ["P0", "P1"], ["a", "b"],
                               served_params("u", "m", prompt_format="chat", system_prompt="Be brief."), sampled)
    assert chat[1]["messages"] == [{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "Sum these.\n\n2 3"}]
    assert chat[1]["temperature"] == 0.7 and chat[1]["top_p"] == 0.9 and "stop" not in chat[1]
    # a prompt's seed is the same in any order and batch, so a resumed sampled stage asks for the same answer
    reordered = served.requests_for(records[::-1], ["P1", "P0"], ["b", "a"],
                                    served_params("u", "m", prompt_format="chat"), sampled)
    assert [r["seed"] for r in reordered] == [chat[1]["seed"], chat[0]["seed"]] and chat[0]["seed"] != chat[1]["seed"]
    assert chat[0]["seed"] != served.requests_for(records, ["P0", "P1"], ["a", "b"], served_params("u", "m"),
                                                  DecodeParams(seed=4))[0]["seed"]


def test_retry_after_reads_seconds_and_http_dates():
    assert served.retry_after({"retry-after": "3"}) == 3.0
    soon = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 < served.retry_after({"retry-after": soon}) <= 30
    assert served.retry_after({}) is None


@pytest.mark.slow
def test_the_embedded_teacher_served_answers_as_in_process(tmp_path_factory):
    """The real teacher behind `transformers serve`, chat format with the system turn, greedy."""
    from kdscale.models import materialize

    teacher_dir = tmp_path_factory.mktemp("embedded") / "teacher"
    system = TeacherParams().system_prompt
    materialize("embedded", "teacher.model", teacher_dir, system_prompt=system)
    records = load_prompts("builtin")[0][:4]
    port = free_port()
    process = start_server(teacher_dir, port, teacher_dir.parent / "serve.log")
    try:
        rows, timing, _ = run_generation(records, served_params(f"http://127.0.0.1:{port}/v1", str(teacher_dir),
                                                                prompt_format="chat", max_new_tokens=32,
                                                                request_timeout=120.0), teacher_dir,
                                         teacher_dir.parent / "served")
    finally:
        stop(process)
    local, _, _ = run_generation(records, TeacherParams(prompt_format="chat", max_new_tokens=32, batch_size=1),
                                 teacher_dir, teacher_dir.parent / "local")
    assert [r["response"] for r in rows] == [r["response"] for r in local]
    assert all(len(r["response"].split()) > 3 for r in rows)  # real answers, not babble cut short
    assert timing["retries"] == 0 and timing["completion_tokens"] > 0


@pytest.mark.slow
def test_a_served_teacher_study_runs_end_to_end_through_dvc_repro(server, tiny_gpt2_dir, tmp_path, monkeypatch):
    """prepare, the teacher over HTTP, filter, subsets, train, evaluate, report and sync: one `dvc repro`.
    The key travels in the environment only, never into params, outputs or MLflow."""
    from conftest import make_project
    from test_pipeline import RUNS, all_runs, commit_all, mlflow_client, sh, stage, stages_run

    proxy = FaultProxy(server, faults=["429", "500"], key=KEY)  # a key-checking server with two bad moments
    try:
        project = make_project(tmp_path / "served", tiny_gpt2_dir, teacher={
            "backend": "openai", "base_url": proxy.url, "served_model": str(tiny_gpt2_dir),
            "api_key_env": "KDSCALE_TEST_KEY", "concurrency": 2, "request_timeout": 60.0})
        commit_all(project, "a served teacher")
        repro = sh(["dvc", "repro"], project, env={"KDSCALE_TEST_KEY": KEY}, timeout=1800)
    finally:
        proxy.close()
    ran = stages_run(repro.stdout)
    assert {"prepare", "teacher", "teacher_filter", stage("train", RUNS[0]), stage("evaluate", RUNS[-1]),
            "evaluate_teacher", "report"} <= ran
    raw = read_jsonl(project / "data/teacher/raw.jsonl")
    assert len(raw) == 30 and len({r["id"] for r in raw}) == 30  # 24 pool + 6 held-out prompts, each once
    generation = json.loads((project / "data/teacher/generation.json").read_text())
    assert generation["backend"] == "openai" and generation["requests"] == 30 and generation["retries"] == 2
    assert generation["device"] == proxy.url
    assert "sync: report: run" in repro.stdout  # the report's last step filled MLflow
    runs = all_runs(mlflow_client(project / "mlflow.db"))
    teacher = next(r for r in runs if r.data.tags["kdscale.stage"] == "teacher")
    assert teacher.data.params["teacher.backend"] == "openai" and teacher.data.params["teacher.base_url"] == proxy.url
    written = [p for p in project.rglob("*") if p.is_file() and ".git" not in p.parts and p.suffix in
               {".json", ".jsonl", ".yaml", ".lock", ".md", ".db"}]
    assert not [p for p in written if KEY.encode() in p.read_bytes()]
    assert not [r for r in runs if KEY in json.dumps([r.data.params, r.data.tags])]
