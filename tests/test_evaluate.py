"""Evaluation (docs/design.md §5) on tiny random models: perplexity by hand, speed, size, adherence metrics."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

from kdscale.adherence import answers, load_adherence
from kdscale.config import EvalParams
from kdscale.engines.generation import Completion, DecodeParams, generate_batch
from kdscale.prompts import ALPACA_STOP_STRINGS, alpaca_prompt
import kdscale.stages.evaluate as ev_mod

RECORDS = [
    {"instruction": "Describe the sea.", "input": "", "response": "The sea is wide and blue."},
    {"instruction": "Name a colour.", "input": "Pick a warm one.", "response": "Red, like a fire at night."},
    {"instruction": "Say hi.", "input": "", "response": "Hi."},
    {"instruction": "Write two words.", "input": "", "response": "Blue water"},
    {"instruction": "List three animals.", "input": "", "response": "- cat\n- dog\n- horse"},
    {"instruction": "What is the capital of France?", "input": "", "response": "Paris is the capital of France, "
                                                                             "a city on the river Seine."},
    {"instruction": "Count to five.", "input": "", "response": "1, 2, 3, 4, 5"},
    {"instruction": "Give an empty answer.", "input": "", "response": ""},
    {"instruction": "Translate the word.", "input": "chat (French)", "response": "Cat."},
    {"instruction": "Explain rain in one long sentence.", "input": "",
     "response": "Rain falls when water vapour in clouds condenses into drops that grow heavy enough to fall."},
]


def hand_nll(model, tokenizer, prompt: str, response: str) -> tuple[float, int]:
    """Batch 1, no padding: -log p of every response token and the EOS after it, given everything before."""
    prompt_ids = tokenizer(prompt).input_ids
    full_ids = tokenizer(prompt + response).input_ids
    assert full_ids[: len(prompt_ids)] == prompt_ids  # the chosen texts tokenize at the boundary cleanly
    ids = full_ids + [tokenizer.eos_token_id]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    logp = torch.log_softmax(logits.double(), dim=-1)
    nll = 0.0
    for pos in range(len(prompt_ids), len(ids)):  # target ids[pos] is predicted from position pos - 1
        nll -= float(logp[pos - 1, ids[pos]])
    return nll, len(ids) - len(prompt_ids)


def test_perplexity_matches_hand_computation(tiny_model):
    model, tokenizer = tiny_model
    records = RECORDS[:2]
    total, count = 0.0, 0
    for r in records:
        nll, n = hand_nll(model, tokenizer, alpaca_prompt(r["instruction"], r["input"]), r["response"])
        total, count = total + nll, count + n
    expected = math.exp(total / count)
    got = ev_mod.perplexity(model, tokenizer, records, "alpaca", batch_size=1)
    assert got == pytest.approx(expected, rel=1e-5)
    # The same with both examples in one batch (the shorter one right-padded).
    assert ev_mod.perplexity(model, tokenizer, records, "alpaca", batch_size=2) == pytest.approx(expected, rel=1e-5)


def test_perplexity_is_batch_size_independent(tiny_model):
    model, tokenizer = tiny_model
    lengths = {len(tokenizer(r["response"]).input_ids) for r in RECORDS}
    assert len(lengths) > 5  # padding is exercised
    by_batch = {b: ev_mod.perplexity(model, tokenizer, RECORDS, "alpaca", batch_size=b) for b in (1, 8)}
    assert by_batch[8] == pytest.approx(by_batch[1], rel=1e-4)


def test_token_nll_counts_response_tokens_and_eos_only(tiny_model):
    from kdscale.examples import tokenize_records

    model, tokenizer = tiny_model
    examples, _ = tokenize_records(tokenizer, RECORDS, 512)
    sums, counts = ev_mod.token_nll(model, examples, tokenizer.pad_token_id, batch_size=4)
    assert counts == [len(tokenizer(r["response"]).input_ids) + 1 for r in RECORDS]  # + EOS, per answer
    assert len(sums) == len(RECORDS) and all(s > 0 for s in sums)
    # Each answer's sum is that of the answer scored alone.
    alone, _ = ev_mod.token_nll(model, examples[4:5], tokenizer.pad_token_id, batch_size=1)
    assert sums[4] == pytest.approx(alone[0], rel=1e-5)


def test_perplexity_reference_scores_the_reference_text(tiny_model):
    model, tokenizer = tiny_model
    records = [{"instruction": r["instruction"], "input": r["input"], "response": "Something else entirely.",
                "reference": r["response"]} for r in RECORDS[:4]]
    as_response = [{**r, "response": r["reference"]} for r in records]
    ref = ev_mod.perplexity(model, tokenizer, records, "alpaca", 2, response_key="reference")
    assert ref == pytest.approx(ev_mod.perplexity(model, tokenizer, as_response, "alpaca", 2), rel=1e-6)
    assert ref != pytest.approx(ev_mod.perplexity(model, tokenizer, records, "alpaca", 2), rel=1e-3)


# -----------------------------------------------------------------------------
# speed and size

@pytest.fixture()
def eos_biased(tiny_model):
    """The tiny model with +100 on the EOS logit: it ends every answer at once unless told not to."""
    model, tokenizer = tiny_model
    eos = tokenizer.eos_token_id

    def bias(module, inputs, output):
        output[..., eos] += 100.0
        return output

    handle = model.lm_head.register_forward_hook(bias)
    yield model, tokenizer
    handle.remove()


def test_min_new_tokens_forces_exact_length_even_when_eos_is_likely(eos_biased):
    model, tokenizer = eos_biased
    prompt = alpaca_prompt("Describe the sea.")
    free = generate_batch(model, tokenizer, [prompt], DecodeParams(max_new_tokens=6), seed=0)[0]
    assert (free.finish_reason, free.n_tokens) == ("eos", 1)  # the bias works
    fixed = DecodeParams(max_new_tokens=6, min_new_tokens=6)
    for c in generate_batch(model, tokenizer, [prompt, alpaca_prompt("Hi.")], fixed, seed=0):
        assert (c.finish_reason, c.n_tokens) == ("length", 6)


def test_speed_generates_exactly_speed_new_tokens(eos_biased, monkeypatch):
    model, tokenizer = eos_biased
    calls = []

    def spy(model, tokenizer, prompts, params, seed):
        out = generate_batch(model, tokenizer, prompts, params, seed)
        calls.append((len(prompts), params, out))
        return out

    monkeypatch.setattr(ev_mod, "generate_batch", spy)
    ev = EvalParams(batch_size=3, speed_runs=2, speed_new_tokens=5)
    m = ev_mod.speed(model, tokenizer, alpaca_prompt("Describe the sea."), ev)
    assert [n for n, _, _ in calls] == [1, 1, 1]  # a short warm-up, then 2 timed runs, all at batch 1
    warmup, *timed = calls
    assert warmup[1].min_new_tokens == warmup[1].max_new_tokens == ev_mod.WARMUP_TOKENS
    for _, params, out in timed:
        assert params.min_new_tokens == params.max_new_tokens == 5
        assert not params.do_sample
        assert all(c.n_tokens == 5 for c in out)
    assert m["tokens_per_sec"] == pytest.approx(5 / m["latency_mean_s"])
    assert m["tokens_per_sec_median"] > 0
    assert (m["speed_runs"], m["speed_new_tokens"]) == (2, 5)


def test_model_size_counts_tied_weights_once(tiny_tokenizer_dir):
    from transformers import GPT2Config, GPT2LMHeadModel

    def build(tied: bool):
        config = GPT2Config(vocab_size=600, n_positions=64, n_embd=32, n_layer=1, n_head=2,
                            tie_word_embeddings=tied)
        return GPT2LMHeadModel(config)

    tied, untied = build(True), build(False)
    assert tied.lm_head.weight.data_ptr() == tied.transformer.wte.weight.data_ptr()
    unique = sum(p.numel() for p in tied.parameters())  # parameters() yields a shared tensor once
    assert ev_mod.model_size_mb(tied) == pytest.approx(unique * 4 / 1024**2)
    assert ev_mod.model_size_mb(untied) - ev_mod.model_size_mb(tied) == pytest.approx(600 * 32 * 4 / 1024**2)
    assert ev_mod.model_size_mb(tied.half()) == pytest.approx(unique * 2 / 1024**2)


# -----------------------------------------------------------------------------
# adherence metrics

CANNED = {  # id -> response; every other prompt gets an empty answer, which fails every check
    "adh-001": "the sea is calm today.",  # max_words 40 + lowercase: pass
    "adh-002": "<<Spring>>\nBirds sing.",  # title: pass
    "adh-005": "No commas here at all.",  # no_commas: pass
    "adh-006": '{"colour": "blue"}',  # json: pass
    "adh-013": "ALL IN CAPITALS.",  # uppercase: pass
    "adh-018": "<<A Title>>\nWith Capitals.",  # title passes, lowercase fails: the prompt fails
    "adh-012": "Sure.\nIs there anything else I can help with?\n**Note**",  # end_phrase: loose only
}


def test_adherence_metrics_from_canned_answers(monkeypatch):
    prompts = load_adherence()
    assert len(prompts) == 50
    seen = {}

    def fake_generate_all(model, tokenizer, texts, decode, batch_size):
        seen.update(texts=texts, decode=decode, batch_size=batch_size)
        return [Completion(CANNED.get(p["id"], ""), "eos" if p["id"] in CANNED else "length",
                           3 if p["id"] in CANNED else 8) for p in prompts]

    monkeypatch.setattr(answers, "generate_all", fake_generate_all)
    ev = EvalParams(max_new_tokens=8, batch_size=4)
    metrics, samples = answers.answer_and_score(None, None, prompts, "alpaca", ev)

    assert seen["texts"] == [alpaca_prompt(p["instruction"], p["input"]) for p in prompts]
    assert seen["decode"].max_new_tokens == 8 and not seen["decode"].do_sample
    assert seen["decode"].stop_strings == ALPACA_STOP_STRINGS and seen["batch_size"] == 4

    n_instructions = sum(len(p["checks"]) for p in prompts)
    assert metrics["pass_rate"] == pytest.approx(5 / 50)
    assert metrics["pass_rate_loose"] == pytest.approx(6 / 50)
    assert metrics["instruction_pass_rate"] == pytest.approx(7 / n_instructions)
    assert metrics["adherence_prompts"] == 50
    assert metrics["answers_ended_eos"] == pytest.approx(len(CANNED) / 50)
    assert metrics["batched_tokens_per_sec"] > 0
    # Degenerate (no two different words between sentence ends): the 43 empty answers; every canned answer,
    # the two-word lines of adh-002 and adh-018 and the JSON of adh-006 included, holds a sentence.
    assert metrics["degenerate_share"] == pytest.approx(43 / 50)
    # 95% Wilson interval for 5 of 50, by its formula
    z, p, n = 1.959963984540054, 0.1, 50
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert metrics["pass_rate_ci_low"] == pytest.approx(centre - half)
    assert metrics["pass_rate_ci_high"] == pytest.approx(centre + half)
    assert metrics["pass_rate_ci_low"] < metrics["pass_rate"] < metrics["pass_rate_ci_high"]

    types = {c["type"] for p in prompts for c in p["checks"]}
    assert {k for k in metrics if k.startswith("type_pass_rate.")} == {f"type_pass_rate.{t}" for t in types}
    for t in types:  # prompts that carry the type, each counted once
        assert metrics[f"type_prompts.{t}"] == sum(any(c["type"] == t for c in p["checks"]) for p in prompts)
    assert sum(metrics[f"type_prompts.{t}"] for t in types) >= 50

    def count(t):
        return sum(c["type"] == t for p in prompts for c in p["checks"])

    assert metrics["type_pass_rate.title"] == pytest.approx(2 / count("title"))
    assert metrics["type_pass_rate.lowercase"] == pytest.approx(1 / count("lowercase"))
    assert metrics["type_pass_rate.json"] == pytest.approx(1 / count("json"))
    assert metrics["type_pass_rate.end_phrase"] == 0.0  # strict rates per type
    assert metrics["type_pass_rate.keywords"] == 0.0

    by_id = {s["id"]: s for s in samples}
    assert [s["id"] for s in samples] == [p["id"] for p in prompts]
    assert by_id["adh-001"]["strict"] and by_id["adh-001"]["loose"]
    assert by_id["adh-001"]["response"] == CANNED["adh-001"] and by_id["adh-001"]["finish_reason"] == "eos"
    assert not by_id["adh-018"]["strict"]
    assert not by_id["adh-001"]["degenerate"] and not by_id["adh-006"]["degenerate"]
    assert by_id["adh-050"]["degenerate"]  # empty
    assert [(c["type"], c["strict"]) for c in by_id["adh-018"]["checks"]] == [("title", True), ("lowercase", False)]
    assert not by_id["adh-012"]["strict"] and by_id["adh-012"]["loose"]
    assert not by_id["adh-050"]["strict"] and not by_id["adh-050"]["loose"]
    assert by_id["adh-050"]["n_tokens"] == 8
    json.dumps(samples)  # samples are written as JSON Lines


# -----------------------------------------------------------------------------
# the whole model

# The per-model keys docs/design.md §5 defines.
DESIGN_KEYS = {"perplexity", "pass_rate", "pass_rate_loose", "instruction_pass_rate", "pass_rate_ci_low",
               "pass_rate_ci_high", "tokens_per_sec", "model_size_mb", "peak_memory_mb", "device", "dtype",
               "threads", "perplexity_ci_low", "perplexity_ci_high", "degenerate_share", "answers_ended_eos"}


def test_evaluate_model_returns_every_design_key(tiny_gpt2_dir):
    heldout = [{**r, "id": f"h{i}", "dropped": i == 1, "reference": "An answer from the source."}
               for i, r in enumerate(RECORDS[:5])]
    ev = EvalParams(max_new_tokens=4, batch_size=16, speed_runs=1, speed_new_tokens=4)
    metrics, samples = ev_mod.evaluate_model(tiny_gpt2_dir, "alpaca", heldout, ev)
    assert DESIGN_KEYS <= set(metrics)
    assert "perplexity_reference" in metrics
    assert metrics["heldout_answers"] == 4  # the dropped answer is not scored
    # per answer, in the held-out file's order, so that the report can pair models answer by answer
    assert metrics["heldout_ids"] == [r["id"] for r in heldout if not r["dropped"]]
    assert len(metrics["heldout_nll_sums"]) == len(metrics["heldout_token_counts"]) == 4
    assert math.exp(sum(metrics["heldout_nll_sums"]) / sum(metrics["heldout_token_counts"])) == \
        pytest.approx(metrics["perplexity"])
    assert metrics["perplexity_ci_low"] < metrics["perplexity"] < metrics["perplexity_ci_high"]
    assert 0 <= metrics["degenerate_share"] <= 1
    assert metrics["perplexity"] > 1 and metrics["perplexity_reference"] > 1
    assert 0 <= metrics["pass_rate_ci_low"] <= metrics["pass_rate"] <= metrics["pass_rate_ci_high"] <= 1
    assert metrics["tokens_per_sec"] > 0 and metrics["model_size_mb"] > 0 and metrics["peak_memory_mb"] > 0
    assert metrics["device"] == "cpu" and metrics["dtype"] == "float32"
    assert metrics["threads"] == torch.get_num_threads()
    assert len(samples) == 50 and all(s["n_tokens"] <= 4 for s in samples)
    json.dumps(metrics)

    # The numbers are those of perplexity() on the kept answers, and on every reference.
    from kdscale.models import load_model

    model, tokenizer = load_model(str(tiny_gpt2_dir), "model")
    assert metrics["architecture"] == f"gpt2-2L-32d-{model.config.vocab_size}v"
    kept = [r for r in heldout if not r["dropped"]]
    assert metrics["perplexity"] == pytest.approx(ev_mod.perplexity(model, tokenizer, kept, "alpaca", 1), rel=1e-4)
    refs = [{**r, "response": r["reference"]} for r in heldout]
    assert metrics["perplexity_reference"] == pytest.approx(
        ev_mod.perplexity(model, tokenizer, refs, "alpaca", 1), rel=1e-4)


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_peak_memory_is_that_since_the_reset():
    cpu = torch.device("cpu")
    big = torch.ones(128 * 1024**2 // 4)  # 128 MiB, touched
    before = ev_mod.peak_memory_mb(cpu)
    del big
    ev_mod.reset_peak_memory(cpu)
    assert ev_mod.peak_memory_mb(cpu) < before - 64
