"""The generation engine shared by teacher generation and evaluation.

Prompts are sorted by length into fixed batches (little padding, and the same batches
on every run, so a resumed run gives the same answers), left-padded with an attention
mask, and decoded with `model.generate`. Each answer ends at EOS, at a stop string
(base models run on into the next `### Instruction:`), or at the length limit, and
says which in `finish_reason`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import torch

from kdscale.errors import UserError


@dataclass
class DecodeParams:
    max_new_tokens: int = 128
    min_new_tokens: int = 0
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    stop_strings: list[str] = field(default_factory=list)
    seed: int = 0


@dataclass
class Completion:
    text: str
    finish_reason: str  # eos | stop | length
    n_tokens: int  # generated tokens, up to and including the one that ended the answer


def plan_batches(tokenizer, prompts: list[str], batch_size: int) -> list[list[int]]:
    """Indices of `prompts` in batches of similar length, longest first, ties by position."""
    lengths = [len(ids) for ids in tokenizer(prompts).input_ids]
    order = sorted(range(len(prompts)), key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def finish(tokenizer, token_ids: list[int], stop_strings: list[str], max_new_tokens: int) -> Completion:
    """Turn one row of generated ids into an answer with its finish reason."""
    eos = tokenizer.eos_token_id
    end = token_ids.index(eos) if eos in token_ids else len(token_ids)
    text = tokenizer.decode(token_ids[:end], skip_special_tokens=True)
    cuts = [text.find(s) for s in stop_strings if s in text]
    if cuts:
        # Generation halted on the token that completed the stop string; rows are padded after it.
        pad = tokenizer.pad_token_id
        n = next((i for i, t in enumerate(token_ids) if t in (eos, pad)), len(token_ids))
        return Completion(text[: min(cuts)].strip(), "stop", n)  # stripped like every other answer
    if end < len(token_ids):
        return Completion(text.strip(), "eos", end + 1)
    return Completion(text.strip(), "length", len(token_ids))


@torch.inference_mode()
def generate_batch(model, tokenizer, prompts: list[str], params: DecodeParams, seed: int) -> list[Completion]:
    tokenizer.padding_side = "left"
    enc = tokenizer(prompts, return_tensors="pt", padding=True).to(model.device)
    torch.manual_seed(seed)  # per batch, so a resumed run samples what the full run would have
    sampling = {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p} \
        if params.do_sample else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    out = model.generate(
        **enc,
        max_new_tokens=params.max_new_tokens,
        min_new_tokens=params.min_new_tokens or None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        stop_strings=params.stop_strings or None,
        tokenizer=tokenizer if params.stop_strings else None,
        **sampling,
    )
    new_tokens = out[:, enc["input_ids"].shape[1] :].tolist()
    return [finish(tokenizer, row, params.stop_strings, params.max_new_tokens) for row in new_tokens]


def generate(model, tokenizer, prompts: list[str], params: DecodeParams, batch_size: int,
             done: set[int] = frozenset()) -> Iterator[tuple[list[int], list[Completion]]]:
    """Yield (prompt indices, answers) batch by batch, for the prompts not in `done`.

    Batches are planned over all prompts, so a run resumed after a kill (whose batches are
    all done or not started) gives the answers of an uninterrupted run; a batch that is
    partly done (the pool grew) generates only its new prompts."""
    for number, batch in enumerate(plan_batches(tokenizer, prompts, batch_size)):
        todo = [i for i in batch if i not in done]
        if not todo:
            continue
        yield todo, generate_batch(model, tokenizer, [prompts[i] for i in todo], params, params.seed + number)


def generate_all(model, tokenizer, prompts: list[str], params: DecodeParams, batch_size: int) -> list[Completion]:
    answers: list[Completion | None] = [None] * len(prompts)
    for batch, completions in generate(model, tokenizer, prompts, params, batch_size):
        for i, completion in zip(batch, completions):
            answers[i] = completion
    return answers


def vllm_completion(output) -> Completion:
    """One vLLM output as an answer, stripped and labelled like the HF engine's."""
    o = output.outputs[0]
    reason = "length" if o.finish_reason == "length" else ("stop" if o.stop_reason is not None else "eos")
    return Completion(o.text.strip(), reason, len(o.token_ids))


def generate_vllm(model_dir: str, prompts: list[str], params: DecodeParams, tensor_parallel_size: int,
                  chunk_size: int = 1024, done: set[int] = frozenset(), dtype: str = "auto"):
    """The same contract as `generate`, on vLLM (GPU machines); chunks keep resume points."""
    try:
        from vllm import LLM, SamplingParams
    except ImportError:
        raise UserError("teacher.backend is 'vllm' but vLLM is not installed; pip install 'kdscale[vllm]' "
                        "on a GPU machine, or set teacher.backend: hf") from None
    llm = LLM(model=model_dir, tensor_parallel_size=tensor_parallel_size, seed=params.seed, dtype=dtype)
    sampling = SamplingParams(
        max_tokens=params.max_new_tokens,
        min_tokens=params.min_new_tokens,
        temperature=params.temperature if params.do_sample else 0.0,
        top_p=params.top_p if params.do_sample else 1.0,
        stop=params.stop_strings or None,
        seed=params.seed,
    )
    todo = [i for i in range(len(prompts)) if i not in done]
    for start in range(0, len(todo), chunk_size):
        batch = todo[start : start + chunk_size]
        outputs = llm.generate([prompts[i] for i in batch], sampling, use_tqdm=False)
        yield batch, [vllm_completion(output) for output in outputs]
