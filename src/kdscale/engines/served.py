"""Backend `openai`: the teacher behind an OpenAI-compatible server (vLLM, SGLang, TGI,
`transformers serve`, a hosted API), for teachers too large for this process.

`teacher.concurrency` requests are in flight at once. A request that meets 429, 5xx, a timeout, a
dropped connection or a malformed body is retried with exponential backoff and jitter, honouring
`Retry-After`, up to `teacher.max_retries` times; past `teacher.max_total_retries` retries in all the
stage stops with one line, and every answer finished so far stays in the progress file. A bad key,
an unknown model or an unreachable host fails before any prompt is sent (`preflight`).

Prompts go to `/v1/completions` for `prompt_format: alpaca` and to `/v1/chat/completions` for
`chat` (the server applies its own chat template, with `teacher.system_prompt` as the system turn).
Answers are cut at the stop strings and stripped as the local engine's are. Where the server returns
token log-probs (vLLM, SGLang), each answer keeps its top-k, mapped to the teacher tokenizer's ids;
where it returns none (`transformers serve`, most hosted APIs), stage teacher_topk says so if kd needs them.

The API key is read from the environment variable named by `teacher.api_key_env`; it is never
written to params, logs, MLflow, progress files or error messages.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Iterator

import torch

from kdscale.config import TeacherParams
from kdscale.errors import UserError
from kdscale.engines.generation import Completion, DecodeParams, stop_cut
from kdscale.prompts import user_turn

PREFLIGHT_TIMEOUT_S = 10.0
BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.5, 30.0
RETRY_STATUS = {408, 409, 429}  # and every 5xx


@dataclass
class Stats:
    """What the server cost, for metrics/teacher_generation.json. Updated from the request threads."""
    requests: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    stopping: threading.Event = field(default_factory=threading.Event, repr=False)  # the stage is ending

    def add(self, latency: float, usage) -> None:
        with self.lock:
            self.requests += 1
            self.latencies.append(latency)
            if usage is not None:
                self.prompt_tokens += usage.prompt_tokens or 0
                self.completion_tokens += usage.completion_tokens or 0

    def retry(self, limit: int) -> None:
        with self.lock:
            self.retries += 1
            if self.retries > limit:
                raise UserError(f"teacher: the server failed {self.retries} times in all, past "
                                f"teacher.max_total_retries={limit}; the answers so far are kept, so fix the server "
                                "(or raise the limit) and run the stage again to resume")

    def summary(self, seconds: float) -> dict:
        quantiles = torch.tensor(self.latencies).quantile(torch.tensor([0.5, 0.95])).tolist() \
            if self.latencies else [0.0, 0.0]
        return {"requests": self.requests, "retries": self.retries, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "latency_p50_s": quantiles[0],
                "latency_p95_s": quantiles[1], "tokens_per_sec": self.completion_tokens / max(seconds, 1e-9)}


# -----------------------------------------------------------------------------
# the connection: a client, and one check before any prompt is sent

def make_client(teacher: TeacherParams):
    from openai import OpenAI

    # local servers take any key; the SDK insists on one
    key = os.environ.get(teacher.api_key_env) or "EMPTY"
    # max_retries=0: our own loop retries, because it must count retries across requests and also
    # retry a malformed 200 body, which the SDK does not
    return OpenAI(base_url=teacher.base_url, api_key=key, max_retries=0, timeout=teacher.request_timeout)


def preflight(client, teacher: TeacherParams) -> dict:
    """The served model's entry at /v1/models, or a one-line error that names the fix."""
    import openai

    where = f"teacher.base_url {teacher.base_url}"
    try:
        models = client.with_options(timeout=PREFLIGHT_TIMEOUT_S).models.list()
        entries = {m.id: m.model_dump() for m in models.data}
    except openai.AuthenticationError:
        raise UserError(f"teacher: {where} refused the API key (401); set the environment variable "
                        f"{teacher.api_key_env} to a valid key") from None
    except openai.PermissionDeniedError:
        raise UserError(f"teacher: {where} denied access (403); the key in {teacher.api_key_env} "
                        "lacks permission for this server") from None
    except openai.NotFoundError:
        raise UserError(f"teacher: {where} has no /models endpoint (404); point teacher.base_url at the "
                        "API root, usually ending in /v1") from None
    except openai.APIConnectionError:
        raise UserError(f"teacher: cannot reach {where}; start the server, or fix teacher.base_url") from None
    except (openai.APIError, ValueError) as e:
        raise UserError(f"teacher: {where} did not list its models ({type(e).__name__}); "
                        "is it an OpenAI-compatible server?") from None
    if teacher.served_model not in entries:
        raise UserError(f"teacher: {where} serves {sorted(entries)}, not teacher.served_model "
                        f"'{teacher.served_model}'; set it to one of them")
    return entries[teacher.served_model]


def server_identity(teacher: TeacherParams, entry: dict) -> dict:
    """What names the served weights in the progress fingerprint: the URL, the model and whatever the
    server reports about it, minus what changes per request (`created`) or per load (`status`)."""
    reported = {k: v for k, v in entry.items() if k not in {"created", "status"}}
    return {"base_url": teacher.base_url.rstrip("/"), "model": teacher.served_model, "reported": reported}


# -----------------------------------------------------------------------------
# one request, retried

def retry_delay(error: Exception, attempt: int) -> float | None:
    """Seconds to wait before retrying after `error`, or None when retrying cannot help."""
    import openai

    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        if status not in RETRY_STATUS and status < 500:
            return None
        after = retry_after(error.response.headers)
        if after is not None:
            return after
    elif not isinstance(error, (openai.APIConnectionError, openai.APIResponseValidationError, MalformedAnswer,
                                json.JSONDecodeError)):
        return None
    return min(BACKOFF_FIRST_S * 2 ** attempt, BACKOFF_MAX_S) * random.uniform(0.5, 1.0)


def retry_after(headers) -> float | None:
    """The wait a 429 or 503 asks for, in seconds (`Retry-After` as seconds or an HTTP date)."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value.strip() else None
        return None if when is None else max(0.0, when.timestamp() - time.time())


class MalformedAnswer(ValueError):
    """A 200 response without the fields an answer needs."""


def send(client, teacher: TeacherParams, request: dict, prompt_id: str, params: DecodeParams, stats: Stats,
         vocab: TokenMap | None = None) -> Completion | None:
    """One prompt's answer, after as many retries as the limits allow; None once the stage is ending."""
    import openai

    endpoint = client.chat.completions if "messages" in request else client.completions
    for attempt in range(teacher.max_retries + 1):
        if stats.stopping.is_set():
            return None
        start = time.perf_counter()
        try:
            response = endpoint.create(model=teacher.served_model, **request)
            if not getattr(response, "choices", None):
                raise MalformedAnswer("no choices")
            completion = answer(response.choices[0], response.usage, params, vocab)  # malformed: retried
            stats.add(time.perf_counter() - start, response.usage)
            return completion
        except UserError:
            raise
        except openai.BadRequestError as e:
            raise UserError(f"teacher: the server rejected prompt {prompt_id} (400: {short(e)}); "
                            "check teacher.max_new_tokens against the served context") from None
        except Exception as e:  # noqa: BLE001 - retry_delay decides what is worth another try
            wait = retry_delay(e, attempt)
            if wait is None:
                raise UserError(f"teacher: the server failed prompt {prompt_id} ({type(e).__name__}: "
                                f"{short(e)}); fix the server or teacher.served_model") from None
            if attempt == teacher.max_retries:
                raise UserError(f"teacher: prompt {prompt_id} failed {attempt + 1} times ({type(e).__name__}), "
                                f"teacher.max_retries={teacher.max_retries}; the answers so far are kept, run "
                                "the stage again to resume") from None
            stats.retry(teacher.max_total_retries)
            time.sleep(wait)


def short(error: Exception) -> str:
    """An error's message on one line, cut short (a server may echo the whole request)."""
    text = " ".join(str(getattr(error, "message", error)).split())
    return text[:160] + ("..." if len(text) > 160 else "")


# -----------------------------------------------------------------------------
# prompts in, answers out

def requests_for(records: list[dict], prompts: list[str], ids: list[str], teacher: TeacherParams,
                 params: DecodeParams) -> list[dict]:
    """The request body of each record, in the OpenAI shape with the local engine's decoding: its Alpaca
    prompt as built for the local engine (`prompts`), or for `chat` its turns, which the server templates."""
    decoding = {"max_tokens": params.max_new_tokens,
                "temperature": params.temperature if params.do_sample else 0.0,
                "top_p": params.top_p if params.do_sample else 1.0}
    if params.stop_strings:
        decoding["stop"] = params.stop_strings[:4]  # OpenAI's limit; the rest are cut here (`answer`)
    system = [{"role": "system", "content": teacher.system_prompt}] if teacher.system_prompt else []
    bodies = []
    for record, prompt, prompt_id in zip(records, prompts, ids):
        # greedy answers need no seed, but servers that honour one make sampled answers resume exactly
        body = {**decoding, "seed": sample_seed(params.seed, prompt_id)}
        if teacher.prompt_format == "chat":
            turn = {"role": "user", "content": user_turn(record["instruction"], record.get("input", ""))}
            body["messages"] = system + [turn]
            if params.topk:
                body.update(logprobs=True, top_logprobs=params.topk)
        else:
            body["prompt"] = prompt
            if params.topk:
                body["logprobs"] = params.topk
        bodies.append(body)
    return bodies


def sample_seed(seed: int, prompt_id: str) -> int:
    """A per-prompt seed that depends on nothing but the prompt, so any order of requests samples alike."""
    return (seed * 1_000_003 + int(hashlib.sha1(prompt_id.encode()).hexdigest()[:8], 16)) % 2**31


def answer(choice, usage, params: DecodeParams, vocab: TokenMap | None = None) -> Completion:
    """One choice as the local engine's Completion: cut at a stop string, stripped, with its finish reason."""
    message = getattr(choice, "message", None)
    text = message.content if message is not None else choice.text
    if text is None:
        raise MalformedAnswer("no text")
    n_tokens = usage.completion_tokens if usage is not None and usage.completion_tokens is not None else 0
    cut = stop_cut(text, params.stop_strings)
    stop_reason = (choice.model_extra or {}).get("stop_reason")  # vLLM and SGLang say what stopped the answer
    if cut is not None:  # a server that took only some of the stop strings ran on past one
        text, reason = text[:cut], "stop"
    elif choice.finish_reason == "length":
        reason = "length"
    else:
        reason = "stop" if isinstance(stop_reason, str) else "eos"
    completion = Completion(text.strip(), reason, n_tokens)
    if params.topk and getattr(choice, "logprobs", None) is not None:  # none: stage teacher_topk decides
        completion.token_ids, completion.topk_indices, completion.topk_logprobs = vocab.topk(choice, params.topk)
        completion.n_tokens = len(completion.token_ids)
    return completion


def generate_served(client, teacher: TeacherParams, requests: list[dict], ids: list[str], params: DecodeParams,
                    stats: Stats, done: set[int] = frozenset(), vocab: TokenMap | None = None
                    ) -> Iterator[tuple[list[int], list[Completion]]]:
    """The local engine's contract (yield prompt indices with their answers, skipping `done`), one answer
    at a time as requests finish, `teacher.concurrency` in flight."""
    if params.topk and vocab is None:
        raise ValueError("top-k answers need the teacher's vocabulary")
    todo = [i for i in range(len(requests)) if i not in done]
    pool = ThreadPoolExecutor(max_workers=teacher.concurrency, thread_name_prefix="teacher")
    try:
        futures = {pool.submit(send, client, teacher, requests[i], ids[i], params, stats, vocab): i for i in todo}
        for future in as_completed(futures):
            yield [futures[future]], [future.result()]
    finally:
        stats.stopping.set()  # on an error, no request is sent or retried again
        pool.shutdown(wait=False, cancel_futures=True)


# -----------------------------------------------------------------------------
# white-box from a served teacher: its top-k log-probs, in the teacher tokenizer's ids

class TokenMap:
    """Turns the tokens a server returns into the teacher tokenizer's ids: `token_id:N` (vLLM's
    --return-tokens-as-token-ids) as given, and, for byte-level BPE vocabularies (GPT-2, Llama 3, Qwen,
    SmolLM), a token's bytes (or its text) through the byte-to-character table the vocabulary is written in."""

    def __init__(self, tokenizer):
        from transformers.convert_slow_tokenizer import bytes_to_unicode

        self.vocab = tokenizer.get_vocab()
        self.byte_chars = bytes_to_unicode()
        self.byte_level = all(c in self.vocab for c in self.byte_chars.values())

    def id(self, token: str, raw: list[int] | None = None) -> int:
        if token.startswith("token_id:") and token[9:].isdigit():
            return int(token[9:])
        if self.byte_level:
            piece = "".join(self.byte_chars[b] for b in (raw if raw is not None else token.encode("utf-8")))
            if piece in self.vocab:
                return self.vocab[piece]
        raise UserError(f"teacher: the server's token {token!r} is not in the teacher tokenizer's vocabulary; "
                        "serve the model whose tokenizer is models/teacher, or start vLLM with "
                        "--return-tokens-as-token-ids")

    def topk(self, choice, k: int) -> tuple[list[int], torch.Tensor, torch.Tensor]:
        """(generated ids, top-k ids [n, k], their log-probs [n, k]) from a choice's `logprobs`, in the
        completions shape (tokens, top_logprobs dicts) or the chat shape (content entries)."""
        logprobs = choice.logprobs
        if getattr(logprobs, "content", None) is not None:  # chat
            steps = [(t.token, t.bytes, [(o.token, o.bytes, o.logprob) for o in t.top_logprobs])
                     for t in logprobs.content]
        else:  # completions
            steps = [(token, None, [(t, None, lp) for t, lp in (top or {}).items()])
                     for token, top in zip(logprobs.tokens or [], logprobs.top_logprobs or [])]
        ids, indices, values = [], [], []
        for token, raw, top in steps:
            if len(top) < k:
                raise UserError(f"teacher: the server returned {len(top)} log-probs per token, fewer than "
                                f"teacher_topk.k={k}; lower teacher_topk.k or raise the server's limit "
                                "(vLLM: --max-logprobs)")
            top = sorted(top, key=lambda t: -t[2])[:k]
            ids.append(self.id(token, raw))
            indices.append([self.id(t, b) for t, b, _ in top])
            values.append([lp for _, _, lp in top])
        shape = (len(steps), k)
        return (ids, torch.tensor(indices, dtype=torch.int32).reshape(shape),
                torch.tensor(values, dtype=torch.float32).reshape(shape))
