"""Teacher stage and generation engine: how answers end, batch planning, resume after a kill.

Tiny models only. Tiny models gain nothing from a second thread and lose a lot when the
cores are shared, so this file runs torch (and the stage subprocesses) on one thread.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import make_project, project_env, run
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

from kdscale.config import FilterParams, TeacherParams
from kdscale.distill import TopkStore
from kdscale.engines.generation import (Completion, DecodeParams, finish, generate, generate_batch, plan_batches,
                                 run_batches, vllm_completion)
from kdscale.jsonl import read_jsonl
from kdscale.prompts import ALPACA_STOP_STRINGS, alpaca_prompt
from kdscale.sources import load_prompts
from kdscale.stages import teacher as teacher_stage
from kdscale.stages.teacher import fingerprint, read_progress, run_generation
from kdscale.stages.teacher_filter import answer_records, generation_metrics


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer_dir):
    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


@pytest.fixture(scope="module")
def records():
    return load_prompts("builtin")[0][:10]


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False).input_ids


# ----------------------------------------------------------------------------- how an answer ends

def test_finish_eos_with_trailing_pads(tokenizer):
    assert tokenizer.pad_token_id == tokenizer.eos_token_id  # GPT-2 style, like the tiny teacher
    text = ids(tokenizer, "Green sea.")
    done = finish(tokenizer, text + [tokenizer.eos_token_id] * 3, ALPACA_STOP_STRINGS, 20)
    assert (done.text, done.finish_reason, done.n_tokens) == ("Green sea.", "eos", len(text) + 1)


def test_finish_length(tokenizer):
    text = ids(tokenizer, "The sea is large and deep")
    done = finish(tokenizer, text, ALPACA_STOP_STRINGS, len(text))
    assert (done.text, done.finish_reason, done.n_tokens) == ("The sea is large and deep", "length", len(text))


@pytest.mark.parametrize("stop", ALPACA_STOP_STRINGS)
def test_finish_stop_string(tokenizer, stop):
    text = ids(tokenizer, f"Blue sky.\n{stop}")
    done = finish(tokenizer, text + [tokenizer.pad_token_id] * 2, ALPACA_STOP_STRINGS, 30)
    assert (done.text, done.finish_reason, done.n_tokens) == ("Blue sky.", "stop", len(text))
    # Without stop strings the same row is an answer that ended at its EOS, marker and all.
    assert finish(tokenizer, text + [tokenizer.eos_token_id], [], 30).finish_reason == "eos"


class ScriptedGPT2(GPT2LMHeadModel):
    """A real tiny GPT-2 whose next-token logits follow a script per prompt.

    Everything else is the real thing: the engine's batching, left padding, the KV cache,
    EOS handling and the stop strings, so the engine's decoding path is what is tested.
    The engine drops ended rows, adds waiting prompts and computes the prompts' shared start
    once, so a prompt is recognised by how it ends, a row by its prompt's last key in the
    cache (the latest prompt key there), and its step by the number of cache columns after it.
    """

    scripts: dict[tuple[int, ...], list[int]] = {}  # prompt ids -> answer ids
    default: list[int] = []  # the answer of any other prompt

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        keys = cache.layers[-1].keys if cache.get_seq_length() else None
        out = super().forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        logits = torch.full_like(out.logits[:, -1:, :], -1e4)
        for row in range(input_ids.shape[0]):
            if input_ids.shape[1] > 1:  # a prompt pass: remember this prompt's last key and its script
                tail = input_ids[row, -int(attention_mask[row, -input_ids.shape[1]:].sum()):].tolist()
                script = next((s for p, s in self.scripts.items() if list(p[-len(tail):]) == tail), self.default)
                self.known.append((cache.layers[-1].keys[row, :, -1].clone(), script))
                step = 0
            else:
                script, column = max(((s, int(hit.nonzero()[-1])) for key, s in self.known
                                      if (hit := (keys[row] == key[:, None]).all(-1).all(0)).any()),
                                     key=lambda found: found[1])
                step = keys.shape[-2] - column
            if script:  # (the shared start of the prompts has none)
                logits[row, 0, script[min(step, len(script) - 1)]] = 0.0
        out.logits = logits
        return out


def scripted_model(tokenizer, scripts: list[int] | dict[str, list[int]]) -> ScriptedGPT2:
    """`scripts`: one answer for every prompt, or an answer per prompt text."""
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=512, n_embd=16, n_layer=2, n_head=2,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    model = ScriptedGPT2(config).eval()
    if isinstance(scripts, dict):
        model.scripts = {tuple(tokenizer(p).input_ids): answer for p, answer in scripts.items()}
    else:
        model.default = scripts
    model.known = []
    return model


def test_generate_batch_stops_at_stop_string_eos_and_length(tokenizer):
    eos = tokenizer.eos_token_id
    after = ids(tokenizer, " Name a colour.\n\n### Response:\nRed.") + [eos]
    stopping = ids(tokenizer, "Blue sky.\n### Instruction:")
    n = 48
    scripts = [
        stopping + after,  # a base model running on into the next example
        ids(tokenizer, "Green sea.") + [eos] + ids(tokenizer, " never seen"),
        ids(tokenizer, "The sea is wide and deep and old. " * 4),
        ids(tokenizer, "Red.\n### Response:") + after,
    ]
    assert len(stopping + after) <= n < len(scripts[2])
    prompts = [alpaca_prompt("Name a colour."), alpaca_prompt("Describe the sea in a few words, please."),
               alpaca_prompt("Describe the sea."), alpaca_prompt("Name a colour", "in one word")]
    model = scripted_model(tokenizer, dict(zip(prompts, scripts)))
    params = DecodeParams(max_new_tokens=n, stop_strings=ALPACA_STOP_STRINGS)
    got = generate_batch(model, tokenizer, prompts, params, seed=0)
    assert [(c.finish_reason, c.text) for c in got] == [
        ("stop", "Blue sky."), ("eos", "Green sea."), ("length", tokenizer.decode(scripts[2][:n]).strip()),
        ("stop", "Red.")]
    assert [c.n_tokens for c in got] == [len(stopping), len(ids(tokenizer, "Green sea.")) + 1, n,
                                         len(ids(tokenizer, "Red.\n### Response:"))]
    # The stop strings are what ended the first row: without them it runs on, marker and all, to its EOS.
    free = generate_batch(model, tokenizer, prompts[:1], DecodeParams(max_new_tokens=n), seed=0)[0]
    assert (free.finish_reason, free.text) == ("eos", tokenizer.decode(stopping + after[:-1]).strip())


def test_teacher_alpaca_format_records_stop(tokenizer, tiny_gpt2_dir, records, tmp_path, monkeypatch):
    """Through the stage: alpaca prompts get the alpaca stop strings, answers say `stop` and keep no marker."""
    model = scripted_model(tokenizer, ids(tokenizer, "Blue sky.\n### Instruction:") + [tokenizer.eos_token_id])
    monkeypatch.setattr(teacher_stage, "load_model", lambda *args, **kwargs: (model, tokenizer))
    teacher = TeacherParams(model=str(tiny_gpt2_dir), prompt_format="alpaca", max_new_tokens=32, batch_size=4)
    rows, _, _ = run_generation(records, teacher, tiny_gpt2_dir, tmp_path)
    assert {(r["response"], r["finish_reason"]) for r in rows} == {("Blue sky.", "stop")}
    answers = answer_records(records, rows, teacher.filters)
    assert not any(a["dropped"] for a in answers)


# ----------------------------------------------------------------------------- batch planning

def test_plan_batches_deterministic_and_length_sorted(tokenizer):
    texts = ["a b", "a much longer prompt than the others, by far", "a b", "medium sized prompt", "x",
             "medium sized prompt", "another fairly long prompt here", "b a"]
    lengths = [len(ids(tokenizer, t)) for t in texts]
    plan = plan_batches(tokenizer, texts, 3)
    assert plan == plan_batches(tokenizer, list(texts), 3)
    assert [len(b) for b in plan] == [3, 3, 2]
    order = [i for batch in plan for i in batch]
    assert sorted(order) == list(range(len(texts)))
    assert order == sorted(range(len(texts)), key=lambda i: (-lengths[i], i))  # longest first, ties by position
    assert all(lengths[a] >= lengths[b] for a, b in zip(order, order[1:]))


def test_generate_skips_done_batches_and_keeps_their_seeds(tiny_model, records):
    model, tokenizer = tiny_model
    prompts = [alpaca_prompt(r["instruction"], r["input"]) for r in records]
    params = DecodeParams(max_new_tokens=6, do_sample=True, temperature=1.0, top_p=1.0, seed=3)
    full = list(generate(model, tokenizer, prompts, params, 3))
    plan = plan_batches(tokenizer, prompts, 3)
    assert [b for b, _ in full] == plan
    done = set(plan[0]) | set(plan[2]) | {plan[1][0]}  # batch 1 only partly done (the pool grew)
    resumed = list(generate(model, tokenizer, prompts, params, 3, done=done))
    assert [b for b, _ in resumed] == [plan[1][1:], plan[3]]  # only the prompts not yet answered
    # Each batch samples with its own seed, so a resumed batch gives what the full run gave.
    assert resumed[1][1] == full[3][1]


# ----------------------------------------------------------------------------- resume

def teacher_params(teacher_dir: Path, **overrides) -> TeacherParams:
    return TeacherParams(**{"model": str(teacher_dir), "prompt_format": "alpaca", "max_new_tokens": 8,
                            "batch_size": 3, **overrides})


def answers_of(rows: list[dict]) -> list[tuple]:
    return [(r["id"], r["response"], r["finish_reason"], r["n_tokens"]) for r in rows]


def test_read_progress_cuts_a_torn_line(tmp_path):
    path = tmp_path / "p.jsonl"
    good = "".join(json.dumps({"id": f"p{i}", "response": f"r{i}"}) + "\n" for i in range(3))
    for torn in ['{"id": "p3", "resp', '{"id": "p3", "response": "r3"}']:  # cut mid-line, or before its newline
        path.write_text(good + torn)
        assert sorted(read_progress(path)) == ["p0", "p1", "p2"]
        assert path.read_text() == good
    assert read_progress(tmp_path / "missing.jsonl") == {}
    # Lines that say their place in an append: an append cut short by a kill goes whole.
    with open(path, "w") as f:
        teacher_stage.append_progress(f, [{"id": "p0"}, {"id": "p1"}])
        teacher_stage.append_progress(f, [{"id": "p2"}, {"id": "p3"}, {"id": "p4"}])
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:4]))
    assert read_progress(path) == {"p0": {"id": "p0"}, "p1": {"id": "p1"}}  # the place is not part of the row
    assert path.read_text() == "".join(lines[:2])


def test_torn_progress_regenerated_and_fingerprint_change_starts_afresh(tiny_gpt2_dir, records, tmp_path):
    teacher = teacher_params(tiny_gpt2_dir)
    reference, timing, progress = run_generation(records, teacher, tiny_gpt2_dir, tmp_path / "a")
    assert timing["resumed_answers"] == 0 and len(reference) == len(records)

    # A kill mid-write: four whole lines (batch 0 and part of batch 1) and half of the fifth. Batch 1
    # goes whole, to be decoded again beside the same rows.
    lines = progress.read_bytes().splitlines(keepends=True)
    torn = tmp_path / "b" / progress.name
    torn.parent.mkdir()
    torn.write_bytes(b"".join(lines[:4]) + lines[4][: len(lines[4]) // 2])
    rows, timing, again = run_generation(records, teacher, tiny_gpt2_dir, tmp_path / "b")
    assert again == torn and timing["resumed_answers"] == 3
    assert answers_of(rows) == answers_of(reference)
    written = [json.loads(line)["id"] for line in torn.read_text().splitlines()]
    assert sorted(written) == sorted(r["id"] for r in records)  # every answer once: none lost, none twice

    # Anything that shapes the answers changes the fingerprint: the old progress is not reused.
    shorter = teacher_params(tiny_gpt2_dir, max_new_tokens=5)
    rows, timing, fresh = run_generation(records, shorter, tiny_gpt2_dir, tmp_path / "a")
    assert fresh != progress and progress.exists()
    assert timing["resumed_answers"] == 0 and all(r["n_tokens"] <= 5 for r in rows)


def test_fingerprint_covers_weights_decoding_and_precision(tiny_gpt2_dir, tmp_path):
    base = fingerprint(tiny_gpt2_dir, teacher_params(tiny_gpt2_dir))
    assert base == fingerprint(tiny_gpt2_dir, teacher_params(tiny_gpt2_dir), "cpu", "float32")
    assert base != fingerprint(tiny_gpt2_dir, teacher_params(tiny_gpt2_dir, do_sample=True))
    assert base != fingerprint(tiny_gpt2_dir, teacher_params(tiny_gpt2_dir, max_new_tokens=9))
    assert base != fingerprint(tiny_gpt2_dir, teacher_params(tiny_gpt2_dir), "cuda", "bfloat16")
    assert base != fingerprint(tiny_gpt2_dir, teacher_params(tiny_gpt2_dir), topk=20)  # the progress holds them
    # Filters only mark answers afterwards: changing them must not throw generated answers away.
    assert base == fingerprint(tiny_gpt2_dir, teacher_params(tiny_gpt2_dir, filters=FilterParams(echo=False)))
    other = shutil.copytree(tiny_gpt2_dir, tmp_path / "other")
    model = GPT2LMHeadModel.from_pretrained(other)
    with torch.no_grad():
        model.lm_head.weight.mul_(2)
    model.save_pretrained(other)
    assert base != fingerprint(other, teacher_params(tiny_gpt2_dir))


def varied_lengths(model):
    """The tiny teacher with its EOS logit doubled, so that its answers end at many lengths: a random
    teacher runs every answer to the token limit, and an engine that decodes across batches would
    then never put rows of different batches side by side."""
    with torch.no_grad():
        model.get_output_embeddings().weight[model.config.eos_token_id] *= 2
    return model


@pytest.mark.parametrize("batches_per_run", [None, 2])  # None: this device's (one batch on a CPU)
def test_resumed_generation_repeats_the_full_runs_top_k_bit_for_bit(tiny_model, batches_per_run):
    """Rows that share a step change each other's float sums (padding, the shared start), so a resumed
    run must decode what is left beside the same rows as the uninterrupted run: the same runs."""
    model, tokenizer = tiny_model
    varied_lengths(model)
    prompts = [alpaca_prompt(r["instruction"], r["input"]) for r in load_prompts("builtin")[0][:30]]
    params = DecodeParams(max_new_tokens=24, topk=20)
    per_run = {} if batches_per_run is None else {"batches_per_run": batches_per_run}
    full = list(generate(model, tokenizer, prompts, params, 3, **per_run))
    plan = plan_batches(tokenizer, prompts, 3)
    step = batches_per_run or run_batches(model)
    assert [b for b, _ in full] == [sum(plan[n : n + step], []) for n in range(0, len(plan), step)]
    assert len({c.n_tokens for _, cs in full for c in cs}) > 5  # answers of many lengths
    # Killed after two runs: the rest are decoded again, beside the same rows.
    resumed = list(generate(model, tokenizer, prompts, params, 3, done=set(sum(plan[: 2 * step], [])), **per_run))
    assert [b for b, _ in resumed] == [b for b, _ in full[2:]]
    for (_, got), (_, want) in zip(resumed, full[2:]):
        for a, b in zip(got, want):
            assert a.token_ids == b.token_ids and torch.equal(a.topk_indices, b.topk_indices)
            assert torch.equal(a.topk_logprobs, b.topk_logprobs)  # fp32, not merely close


@pytest.fixture()
def one_thread_env(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # project_env() passes the environment on


def kill_midway(root: Path, total: int) -> int:
    """Start `kdscale teacher`, SIGKILL it once half the answers are on disk; returns how many."""
    proc = subprocess.Popen(["kdscale", "teacher"], cwd=root, env=project_env(root),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline, lines = time.monotonic() + 120, 0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            files = list((root / ".kdscale/progress").glob("teacher-*.jsonl"))
            lines = files[0].read_bytes().count(b"\n") if files else 0
            if lines >= total // 2:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"the stage ended before it could be killed:\n{err.decode()[-2000:]}"
    (progress,) = (root / ".kdscale/progress").glob("teacher-*.jsonl")
    done = progress.read_bytes().count(b"\n")
    assert 0 < done < total, done
    return done


@pytest.mark.slow
def test_killed_teacher_resumes_to_identical_outputs(tmp_path, tiny_gpt2_dir, one_thread_env):
    # Small batches and longer answers leave a wide window between the first batch and the last. Answers
    # of many lengths: an engine decoding across batches would decode the rest beside other rows.
    base = make_project(tmp_path / "a", tiny_gpt2_dir, teacher={"batch_size": 2, "max_new_tokens": 24})
    model = varied_lengths(GPT2LMHeadModel.from_pretrained(tiny_gpt2_dir))
    model.save_pretrained(base / "models/teacher")
    AutoTokenizer.from_pretrained(tiny_gpt2_dir).save_pretrained(base / "models/teacher")
    run(["kdscale", "prepare"], base)
    killed = tmp_path / "b"
    shutil.copytree(base, killed, symlinks=True)
    # The answers with their top-k: byte for byte, whichever run of batches each was decoded in.
    outputs = ["data/teacher/pool.jsonl", "data/teacher/heldout.jsonl", "data/teacher/raw.jsonl",
               "data/teacher/topk.safetensors"]

    total = sum(len(read_jsonl(base / name)) for name in ["data/prompts/pool.jsonl", "data/prompts/heldout.jsonl"])

    # The uninterrupted reference runs beside the run that gets killed (each on one thread).
    reference = subprocess.Popen(["kdscale", "teacher"], cwd=base, env=project_env(base),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        done = kill_midway(killed, total)
    finally:
        out, _ = reference.communicate(timeout=300)
    assert reference.returncode == 0, out.decode()[-3000:]
    assert not (killed / "data/teacher").exists()
    resumed = run(["kdscale", "teacher"], killed)
    assert f"reusing {done}/{total} answers" in resumed.stdout
    for root in (base, killed):
        run(["kdscale", "teacher_filter"], root)
    for name in outputs:
        assert (killed / name).read_bytes() == (base / name).read_bytes(), name
    ids_ = [a["id"] for name in outputs[:2] for a in read_jsonl(killed / name)]
    prompt_ids = [p["id"] for name in ["data/prompts/pool.jsonl", "data/prompts/heldout.jsonl"]
                  for p in read_jsonl(killed / name)]
    assert ids_ == prompt_ids and len(set(ids_)) == total  # none lost, none repeated
    kept = TopkStore.load(killed / "data/teacher/topk.safetensors")  # the top-k of every generated token
    assert sorted(kept.ids) == sorted(prompt_ids) and kept.k == 20
    assert len(kept.labels) == sum(r["n_tokens"] for r in read_jsonl(killed / "data/teacher/raw.jsonl"))
    metrics = json.loads((killed / "metrics/teacher_generation.json").read_text())
    assert metrics["resumed_answers"] == done and metrics["answers"] == total
    (progress,) = (killed / ".kdscale/progress").glob("*.jsonl")  # kept, for a pool that grows later
    assert progress.read_bytes().count(b"\n") == total


# ----------------------------------------------------------------------------- issue 14: whitespace, context, pool growth

class FakeVllmOutput:
    """The two fields of vllm.RequestOutput.outputs[0] the engine reads, and the one it counts."""

    def __init__(self, text, finish_reason, stop_reason, n):
        self.outputs = [type("CompletionOutput", (), {"text": text, "finish_reason": finish_reason,
                                                      "stop_reason": stop_reason, "token_ids": list(range(n))})]


def test_every_backend_and_finish_reason_strips_answers_alike(tokenizer):
    body = " \n Blue sky. "
    stop = finish(tokenizer, ids(tokenizer, body + "\n### Instruction:") + [tokenizer.eos_token_id], ALPACA_STOP_STRINGS, 40)
    eos = finish(tokenizer, ids(tokenizer, body) + [tokenizer.eos_token_id], ALPACA_STOP_STRINGS, 40)
    length = finish(tokenizer, ids(tokenizer, body), ALPACA_STOP_STRINGS, len(ids(tokenizer, body)))
    assert [(c.text, c.finish_reason) for c in (stop, eos, length)] == \
        [("Blue sky.", "stop"), ("Blue sky.", "eos"), ("Blue sky.", "length")]
    # vLLM drops the stop string itself and returns the rest, leading whitespace included.
    vllm = [vllm_completion(FakeVllmOutput(body, reason, stop_reason, 5))
            for reason, stop_reason in [("stop", "### Instruction:"), ("stop", None), ("length", None)]]
    assert vllm == [Completion("Blue sky.", "stop", 5), Completion("Blue sky.", "eos", 5),
                    Completion("Blue sky.", "length", 5)]


def test_vllm_answers_keep_their_top_k_without_a_second_pass():
    """vLLM's `logprobs`: per generated token a {token id: Logprob} dict of the top k, plus the sampled
    token where it is not among them; the answer keeps the k most likely, best first."""
    logprob = lambda x: type("Logprob", (), {"logprob": x, "rank": 0, "decoded_token": None})()  # noqa: E731
    output = FakeVllmOutput("Blue sky.", "length", None, 2)
    output.outputs[0].logprobs = [{7: logprob(-0.5), 3: logprob(-0.1), 0: logprob(-4.0)},  # 0: sampled, outside
                                  {1: logprob(-0.2), 9: logprob(-1.5)}]
    done = vllm_completion(output, topk=2)
    assert done.token_ids == [0, 1]
    assert done.topk_indices.tolist() == [[3, 7], [1, 9]] and done.topk_indices.dtype == torch.int32
    assert done.topk_logprobs.flatten().tolist() == pytest.approx([-0.1, -0.5, -0.2, -1.5])
    store = teacher_stage.generated_topk([teacher_stage.progress_row("p", done, 0.0)], 2)
    assert store.ids == ["p"] and store.labels.tolist() == [0, 1]


def test_prompt_longer_than_the_context_is_skipped_and_counted(tiny_gpt2_dir, records, tmp_path):
    long = {"id": "too-long", "instruction": "Describe the sea. " * 200, "input": ""}  # > 512 positions
    teacher = teacher_params(tiny_gpt2_dir)
    rows, timing, _ = run_generation(records[:3] + [long], teacher, tiny_gpt2_dir, tmp_path)
    assert timing["skipped_context"] == 1 and timing["generated_answers"] == 3
    assert rows[3] == {"id": "too-long", "response": "", "finish_reason": "context", "n_tokens": 0, "seconds": 0.0}
    assert all(r["finish_reason"] != "context" for r in rows[:3])
    answers = answer_records(records[:3] + [long], rows, FilterParams(empty=False))  # dropped whatever the filters
    assert [a["drop_reason"] for a in answers][3] == "context"
    assert generation_metrics(answers, rows, timing)["dropped_context"] == 1


def test_a_larger_pool_generates_only_the_new_prompts(tiny_gpt2_dir, tmp_path):
    pool = load_prompts("builtin")[0][:24]
    teacher = teacher_params(tiny_gpt2_dir, batch_size=4)
    small, timing, progress = run_generation(pool[:16], teacher, tiny_gpt2_dir, tmp_path)
    assert timing["generated_answers"] == 16
    grown, timing, again = run_generation(pool, teacher, tiny_gpt2_dir, tmp_path)
    assert again == progress
    assert (timing["resumed_answers"], timing["generated_answers"]) == (16, 8)
    assert progress.read_bytes().count(b"\n") == 24
    assert grown[:16] == small and [r["id"] for r in grown] == [p["id"] for p in pool]


def test_too_few_kept_answers_fail_every_subsets_stage_naming_the_pool():
    from kdscale.stages import subsets
    from kdscale.errors import UserError

    subsets.check_enough(kept=15000, answered=16000, largest=15000)  # enough: no error
    with pytest.raises(UserError) as error:
        subsets.check_enough(kept=14000, answered=16000, largest=15000)
    message = str(error.value)
    assert "only 14000 of 16000 teacher answers survived the filters" in message
    assert "raise data.pool_size to about 18858" in message and "\n" not in message  # 15000 / 0.875 x 1.1
