"""The decoding engine against `model.generate` one prompt at a time, on tiny random models.

The engine decodes with its own loop (ended rows leave the batch, waiting prompts take
their places, the prompts' shared start is computed once), so these tests pin what a
user relies on: greedy answers equal HF's, answers end for the same reasons, and sampling
is reproducible per batch seed, whatever else shares the batch, and the top-k log-probs kept
for distillation are the model's own. Stop strings are tested with a scripted model in
test_teacher.py.
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from kdscale.engines.generation import DecodeParams, GrowingLayer, decode, finish, generate, generate_all, plan_batches
from kdscale.prompts import alpaca_prompt
from kdscale.sources import load_prompts

N = 12  # max_new_tokens


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def prompts():
    return [alpaca_prompt(r["instruction"], r["input"]) for r in load_prompts("builtin")[0][:8]]


def eos_prone(model, tokenizer, factor: float):
    """A random model ends nowhere; a larger EOS row in the LM head makes answers end at varied lengths."""
    with torch.no_grad():
        model.get_output_embeddings().weight[tokenizer.eos_token_id] *= factor
    return model.eval(), tokenizer


@pytest.fixture(scope="module")
def gpt2(tiny_gpt2_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt2_dir)
    return eos_prone(GPT2LMHeadModel.from_pretrained(tiny_gpt2_dir), tokenizer, 2.5)


@pytest.fixture(scope="module")
def llama(tiny_gpt2_dir):
    """A random 2-layer Llama (rotary positions, grouped KV heads) with the tiny tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt2_dir)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    return eos_prone(LlamaForCausalLM(config), tokenizer, 7.0)


@torch.inference_mode()
def one_by_one(model, tokenizer, prompts: list[str], **kwargs) -> list[list[int]]:
    """What the engine must reproduce: greedy `model.generate` on each prompt alone, no padding."""
    rows = []
    for prompt in prompts:
        enc = tokenizer(prompt, return_tensors="pt")
        out = model.generate(**enc, max_new_tokens=N, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id, **kwargs)
        rows.append(out[0, enc["input_ids"].shape[1]:].tolist())
    return rows


@pytest.fixture(scope="module")
def expected(request, prompts):
    """HF's greedy answers per architecture, computed once."""
    return {arch: one_by_one(*request.getfixturevalue(arch), prompts) for arch in ("gpt2", "llama")}


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_greedy_equals_generate_one_prompt_at_a_time(request, expected, prompts, arch, batch_size):
    model, tokenizer = request.getfixturevalue(arch)
    got = generate_all(model, tokenizer, prompts, DecodeParams(max_new_tokens=N), batch_size)
    want = [finish(tokenizer, row, [], N) for row in expected[arch]]
    assert got == want
    # Answers end at different steps, so rows leave and join the batch while others decode.
    assert "eos" in {c.finish_reason for c in got} and len({c.n_tokens for c in got}) >= 3


def test_min_new_tokens_holds_back_eos(gpt2, prompts):
    model, tokenizer = gpt2
    got = generate_all(model, tokenizer, prompts, DecodeParams(max_new_tokens=N, min_new_tokens=6), 3)
    assert got == [finish(tokenizer, row, [], N) for row in one_by_one(model, tokenizer, prompts, min_new_tokens=6)]
    assert min(c.n_tokens for c in got) >= 6 and "eos" in {c.finish_reason for c in got}


def test_sampling_reproducible_per_batch_seed(gpt2, prompts):
    model, tokenizer = gpt2
    params = DecodeParams(max_new_tokens=N, do_sample=True, temperature=1.0, top_p=0.9, seed=3)
    full = list(generate(model, tokenizer, prompts, params, 3))
    plan = plan_batches(tokenizer, prompts, 3)
    assert [b for b, _ in full] == plan
    # A resumed run decodes batch 1 next to other rows than the full run did, and only its prompts
    # not yet done: the same answers.
    resumed = list(generate(model, tokenizer, prompts, params, 3, done=set(plan[0]) | {plan[1][0]}))
    assert resumed[0] == (plan[1][1:], full[1][1][1:])
    assert resumed[1:] == full[2:]
    assert list(generate(model, tokenizer, prompts, params, 3, done=set(range(len(prompts))))) == []  # all done
    other = list(generate(model, tokenizer, prompts, DecodeParams(**{**vars(params), "seed": 4}), 3))
    assert [c.text for _, cs in other for c in cs] != [c.text for _, cs in full for c in cs]


def test_each_row_samples_from_its_own_seed_whatever_shares_the_batch(gpt2, prompts):
    model, tokenizer = gpt2
    params = DecodeParams(max_new_tokens=N, do_sample=True, temperature=1.5)
    seeds = list(range(100, 100 + len(prompts)))
    alone = sorted(decode(model, tokenizer, prompts, params, seeds, slots=1))
    assert sorted(decode(model, tokenizer, prompts, params, seeds, slots=3)) == alone
    # A nucleus so small it holds only the most likely token is greedy decoding.
    greedy = generate_all(model, tokenizer, prompts, DecodeParams(max_new_tokens=N), 3)
    nucleus = generate_all(model, tokenizer, prompts, DecodeParams(max_new_tokens=N, do_sample=True, top_p=1e-6), 3)
    assert nucleus == greedy


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_topk_is_the_models_own_next_token_distribution(request, prompts, arch):
    """With DecodeParams.topk each answer keeps, at every generated token, the top-k log-probs that a
    plain forward pass over prompt + the tokens before it gives; keeping them changes no answer."""
    model, tokenizer = request.getfixturevalue(arch)
    plain = generate_all(model, tokenizer, prompts, DecodeParams(max_new_tokens=N), 3)
    kept = generate_all(model, tokenizer, prompts, DecodeParams(max_new_tokens=N, topk=5), 3)
    assert [(c.text, c.finish_reason, c.n_tokens) for c in kept] == [(c.text, c.finish_reason, c.n_tokens)
                                                                     for c in plain]
    assert plain[0].topk_indices is None
    for prompt, c in zip(prompts, kept):
        assert len(c.token_ids) == c.n_tokens and c.topk_indices.shape == c.topk_logprobs.shape == (c.n_tokens, 5)
        ids = tokenizer(prompt).input_ids
        with torch.no_grad():
            logprobs = torch.log_softmax(model(torch.tensor([ids + c.token_ids])).logits[0, len(ids) - 1 : -1], -1)
        torch.testing.assert_close(logprobs.gather(-1, c.topk_indices.long()), c.topk_logprobs, atol=1e-4, rtol=0)
        assert (c.topk_logprobs[:, -1] >= logprobs.topk(5, -1).values[:, -1] - 1e-4).all()  # the 5 largest
        assert c.topk_indices[:, 0].tolist() == c.token_ids  # greedy: each token is the most likely one


def test_growing_layer_appends_in_place_and_survives_replaced_tensors():
    layer, reference = GrowingLayer(), []
    torch.manual_seed(0)
    for width in (5, 1, 1, 70, 1):  # the 70 overruns the first buffer's room
        keys = torch.randn(2, 3, width, 4)
        before = layer.keys.data_ptr() if layer.is_initialized else None
        out, _ = layer.update(keys, -keys)
        reference.append(keys)
        assert torch.equal(out, torch.cat(reference, dim=2)) and torch.equal(layer.values, -out)
        if width == 1:
            assert out.data_ptr() == before  # written into the room left after the keys
    layer.batch_select_indices(torch.tensor([1]))  # rows leave: the tensors are replaced
    out, _ = layer.update(torch.ones(1, 3, 1, 4), torch.ones(1, 3, 1, 4))
    assert torch.equal(out, torch.cat([torch.cat(reference, dim=2)[1:], torch.ones(1, 3, 1, 4)], dim=2))


def test_every_forward_of_a_decode_runs_without_autograd(gpt2, prompts):
    """An autograd graph kept across decoding steps grows with every token: the embedded teacher's 390
    answers ran out of memory that way. Every admission and step must run in inference mode."""
    model, tokenizer = gpt2
    modes = []
    hook = model.register_forward_pre_hook(lambda module, args: modes.append(torch.is_inference_mode_enabled()))
    try:
        got = generate_all(model, tokenizer, prompts[:5], DecodeParams(max_new_tokens=N), batch_size=2)
    finally:
        hook.remove()
    assert len(got) == 5 and len(modes) > 5 and all(modes), modes
