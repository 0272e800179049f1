"""The generation engine shared by teacher generation and evaluation.

Prompts are sorted by length into fixed batches (the same batches and sampling seeds on
every run), decoded in runs of whole batches that share no step (so a resumed run gives the
same answers and log-probs, bit for bit) by `decode`, a KV-cache loop of our own: rows that
end leave the batch and waiting prompts take their places, and the prompts' shared start is
computed once. Greedy answers are `model.generate`'s.
With `DecodeParams.topk`, each answer also keeps the model's k most likely next tokens and
their log-probs at every generated token (white-box distillation reads them).
Each answer ends at EOS, at a stop string (base models run on into the next
`### Instruction:`), or at the length limit, and says which in `finish_reason`.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from typing import Iterator

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

from kdscale.config import NEW_TOKENS
from kdscale.errors import UserError


@dataclass
class DecodeParams:
    max_new_tokens: int = NEW_TOKENS
    min_new_tokens: int = 0
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    stop_strings: list[str] = field(default_factory=list)
    seed: int = 0
    topk: int = 0  # > 0: keep the top-k log-probs of every generated token (before temperature)


@dataclass
class Completion:
    text: str
    finish_reason: str  # eos | stop | length
    n_tokens: int  # generated tokens, up to and including the one that ended the answer
    # With DecodeParams.topk: the n_tokens generated ids, and per id the model's top-k next tokens
    # [n_tokens, k] (int32) and their log-probs over the full vocabulary (fp32)
    token_ids: list[int] | None = None
    topk_indices: torch.Tensor | None = None
    topk_logprobs: torch.Tensor | None = None


def plan_batches(tokenizer, prompts: list[str], batch_size: int) -> list[list[int]]:
    """Indices of `prompts` in batches of similar length, longest first, ties by position."""
    lengths = [len(ids) for ids in tokenizer(prompts).input_ids]
    order = sorted(range(len(prompts)), key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def stop_cut(text: str, stop_strings: list[str]) -> int | None:
    """Where the answer ends: the first stop string's position in `text`, or None when it has none."""
    cuts = [text.find(s) for s in stop_strings if s in text]
    return min(cuts) if cuts else None


def finish(tokenizer, token_ids: list[int], stop_strings: list[str], max_new_tokens: int) -> Completion:
    """Turn one row of generated ids into an answer with its finish reason."""
    eos = tokenizer.eos_token_id
    end = token_ids.index(eos) if eos in token_ids else len(token_ids)
    text = tokenizer.decode(token_ids[:end], skip_special_tokens=True)
    cut = stop_cut(text, stop_strings)
    if cut is not None:
        # Generation halted on the token that completed the stop string; rows are padded after it.
        pad = tokenizer.pad_token_id
        n = next((i for i, t in enumerate(token_ids) if t in (eos, pad)), len(token_ids))
        return Completion(text[:cut].strip(), "stop", n)  # stripped like every other answer
    if end < len(token_ids):
        return Completion(text.strip(), "eos", end + 1)
    return Completion(text.strip(), "length", len(token_ids))


@dataclass
class _Row:
    """One prompt being answered: where its answer goes, what it has generated, its sampling RNG."""
    key: int
    tokens: list[int]
    generator: torch.Generator | None
    done: bool = False
    top: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)  # with params.topk, per token


class GrowingLayer(DynamicLayer):
    """A DynamicLayer with spare room after its keys and values, so that a decoding step writes its new
    column in place. DynamicLayer concatenates, copying the whole cache at every step: a quarter of a
    decoding step on the embedded teacher. Code that replaces `keys`/`values` (row selection, merging
    rows) may do so freely; the next update moves them into a new buffer."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self.buffers = None
        used, new = (self.keys.shape[-2] if self.keys.numel() else 0), key_states.shape[-2]
        if not self._has_room(used + new):
            size = used + new + max(64, (used + new) // 2)  # grows by half: amortised O(1) copies
            self.buffers = tuple(x.new_empty((*y.shape[:2], size, y.shape[-1])) for x, y in
                                 ((self.keys, key_states), (self.values, value_states)))
            if used:
                for buffer, old in zip(self.buffers, (self.keys, self.values)):
                    buffer[:, :, :used] = old
        for buffer, x in zip(self.buffers, (key_states, value_states)):
            buffer[:, :, used : used + new] = x
        self.keys, self.values = (buffer[:, :, : used + new] for buffer in self.buffers)
        return self.keys, self.values

    def _has_room(self, length: int) -> bool:
        """Whether keys and values are still the front of this layer's buffers, with room for `length`."""
        return self.buffers is not None and all(
            x.data_ptr() == b.data_ptr() and x.stride() == b.stride() and x.shape[0] == b.shape[0]
            and length <= b.shape[2] for x, b in zip((self.keys, self.values), self.buffers))


def new_cache(model) -> DynamicCache:
    """An empty KV cache for `model`: GrowingLayers where the model's cache would be plain DynamicLayers."""
    cache = DynamicCache(config=model.config)
    cache.layers = [GrowingLayer() if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


def _mergeable(cache) -> bool:
    """Whether the cache's layers are plain growing tensors that rows can be stacked onto."""
    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer) in (DynamicLayer, GrowingLayer) and layer.is_initialized
                                for layer in layers)


def cache_argument(model) -> str:
    """The name under which this model's forward takes its KV cache."""
    accepts = inspect.signature(model.forward).parameters
    return "past_key_values" if "past_key_values" in accepts and "cache" not in accepts else "cache"


def shared_prefix(model, ids: list[list[int]], min_tokens: int = 4) -> tuple[DynamicCache | None, int]:
    """The KV cache of the tokens that every sequence in `ids` starts with (a chat template's system
    turn, the Alpaca preamble), short of the shortest sequence's last token, and its length; computed
    once, for `repeat_prefix` to hand to each batch. (None, 0) when fewer than `min_tokens` are shared
    or the model's cache is not one that rows can share."""
    shared = min(len(os.path.commonprefix(ids)), min(map(len, ids)) - 1) if len(ids) > 1 else 0
    if shared < min_tokens:
        return None, 0
    accepts = inspect.signature(model.forward).parameters
    keep_last = {"logits_to_keep": 1} if "logits_to_keep" in accepts else {}
    cache = DynamicCache(config=model.config)
    model(input_ids=torch.tensor([ids[0][:shared]], device=model.device),
          attention_mask=torch.ones(1, shared, dtype=torch.long, device=model.device),
          position_ids=torch.arange(shared, device=model.device)[None], use_cache=True,
          **{cache_argument(model): cache}, **keep_last)
    return (cache, shared) if _mergeable(cache) else (None, 0)


def repeat_prefix(model, prefix: DynamicCache, rows: int) -> DynamicCache:
    """A cache that starts `rows` sequences with the shared prefix (each row gets its own copy, so the
    prefix itself is never written)."""
    cache = new_cache(model)
    for number, layer in enumerate(prefix.layers):
        cache.update(layer.keys.expand(rows, -1, -1, -1), layer.values.expand(rows, -1, -1, -1), number)
    return cache


def _left_pad(x: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    shape = list(x.shape)
    shape[dim] = length - x.shape[dim]
    return torch.cat([x.new_zeros(shape), x], dim=dim) if shape[dim] else x


def _top(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k most likely next tokens per row and their log-probs over the whole vocabulary (logits:
    [rows, vocab], fp32): top-k first, so no full-vocabulary log-softmax is written."""
    top, indices = logits.topk(k, dim=-1)
    return indices.to(torch.int32).cpu(), (top - logits.logsumexp(dim=-1, keepdim=True)).cpu()


def _next_tokens(logits: torch.Tensor, rows: list[_Row], params: DecodeParams, eos: int | None) -> list[int]:
    """Greedy or sampled next token per row (logits: [rows, vocab], fp32)."""
    if params.min_new_tokens and eos is not None:
        young = [r for r, row in enumerate(rows) if len(row.tokens) < params.min_new_tokens]
        logits[young, eos] = -float("inf")  # as HF's min_new_tokens: no EOS before the minimum
    if not params.do_sample:
        return logits.argmax(-1).tolist()
    logits = logits / params.temperature
    if params.top_p < 1.0:  # nucleus filtering, as HF's TopPLogitsWarper
        ordered, index = logits.sort(-1)
        drop = ordered.softmax(-1).cumsum(-1) <= 1 - params.top_p
        drop[:, -1] = False
        logits = logits.masked_fill(drop.scatter(1, index, drop), -float("inf"))
    probs = logits.softmax(-1)
    # One generator per row: a row samples the same answer whichever rows share the batch with it.
    return [int(torch.multinomial(probs[r], 1, generator=row.generator)) for r, row in enumerate(rows)]


def _ended(tokenizer, row: _Row, params: DecodeParams, tail: int) -> bool:
    if row.tokens[-1] == tokenizer.eos_token_id or len(row.tokens) >= params.max_new_tokens:
        return True
    # A stop string that just appeared lies within the last `tail` tokens (an earlier one would have ended the row).
    return bool(params.stop_strings) and any(
        s in tokenizer.decode(row.tokens[-tail:], skip_special_tokens=True) for s in params.stop_strings)


class Decoder:
    """Continuous batching over one model: at most `slots` rows decode at once.

    Prompts enter in order. A row that ends leaves the batch (`drop`: its rows of the KV cache go) and
    waiting prompts take the free places (`admit`), so each `step` computes rows that still need
    tokens. Admission waits for a few free places: each one is a prompt pass for the newcomers plus
    a copy of the KV cache. The tokens every prompt starts with (a chat template's system prompt,
    the Alpaca preamble) are computed once and their cache copied to each newcomer, which then
    computes only its own tokens. The decoder owns the cache, the attention mask, each row's next
    position and its last token.
    """

    def __init__(self, model, tokenizer, prompts: list[str], params: DecodeParams, seeds: list[int], slots: int):
        self.model, self.tokenizer, self.params, self.seeds, self.slots = model, tokenizer, params, seeds, slots
        self.device, self.eos = model.device, tokenizer.eos_token_id
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (self.eos or 0)
        self.ids = tokenizer(prompts).input_ids
        accepts = inspect.signature(model.forward).parameters
        self.keep_last = {"logits_to_keep": 1} if "logits_to_keep" in accepts else {}  # no LM head on prompts
        self.cache_arg = cache_argument(model)
        self.tail = max((len(s.encode()) for s in params.stop_strings), default=0) + 2  # every token is >= 1 byte
        self.admit_at = max(1, slots // 8)
        self.waiting = list(reversed(range(len(prompts))))  # pop() gives the next prompt
        self.rows: list[_Row] = []
        self.cache = self.mask = self.positions = self.last = None
        # The shared start, short of each prompt's last token (whose logits give the first answer token).
        self.prefix, self.shared = shared_prefix(model, self.ids)

    def run(self) -> Iterator[tuple[int, Completion]]:
        """Yield (prompt index, answer) as rows end, until every prompt is answered."""
        while self.waiting or self.rows:
            ended = sum(row.done for row in self.rows)
            free = self.slots - len(self.rows) + ended
            admit = (bool(self.waiting) and free >= min(self.admit_at, len(self.waiting))
                     and (not self.rows or _mergeable(self.cache)))
            if ended and (admit or ended == len(self.rows) or (not self.waiting and ended >= self.admit_at)):
                self.drop()
            if admit:
                self.admit()
            elif self.rows:
                self.step()
            yield from self.finished()

    def forward(self, input_ids, attention_mask, position_ids, past) -> torch.Tensor:
        """Next-token logits, fp32; `past` grows in place."""
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         use_cache=True, **{self.cache_arg: past}, **self.keep_last)
        return out.logits[:, -1, :].float()

    def next_tokens(self, logits: torch.Tensor, rows: list[_Row]) -> list[int]:
        """Each row's next token, appended to it; with params.topk, its top-k first, before sampling alters
        the logits."""
        if self.params.topk:
            indices, logprobs = _top(logits, self.params.topk)
            for r, row in enumerate(rows):
                row.top.append((indices[r], logprobs[r]))
        tokens = _next_tokens(logits, rows, self.params, self.eos)
        for row, token in zip(rows, tokens):
            row.tokens.append(token)
        return tokens

    def drop(self) -> None:
        """The ended rows leave, with their cache rows and the columns that are padding in every row left."""
        kept = [r for r, row in enumerate(self.rows) if not row.done]
        self.rows = [self.rows[r] for r in kept]
        if not self.rows:
            return
        index = torch.tensor(kept, device=self.device)
        self.cache.batch_select_indices(index)
        self.mask, self.positions, self.last = self.mask[index], self.positions[index], self.last[index]
        used = self.mask.any(0)
        if not used.all() and _mergeable(self.cache):
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, used], layer.values[:, :, used]
            self.mask = self.mask[:, used]

    def admit(self) -> None:
        """Waiting prompts fill the free places: one prompt pass for them, stacked under the running rows."""
        new = [self.waiting.pop() for _ in range(min(self.slots - len(self.rows), len(self.waiting)))]
        own = [self.ids[i][self.shared:] for i in new]  # left-padded after the shared start
        width = max(map(len, own))
        input_ids = torch.tensor([[self.pad] * (width - len(t)) + t for t in own], device=self.device)
        mask = torch.tensor([[0] * (width - len(t)) + [1] * len(t) for t in own], device=self.device)
        positions = self.shared + (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)  # as HF's generate
        if self.prefix is None:
            past = new_cache(self.model)
        else:
            past = repeat_prefix(self.model, self.prefix, len(new))
            mask = torch.cat([mask.new_ones(len(new), self.shared), mask], dim=1)
        logits = self.forward(input_ids, mask, positions, past)
        rows = [_Row(i, [], torch.Generator(self.device).manual_seed(self.seeds[i]) if self.params.do_sample else None)
                for i in new]
        tokens = torch.tensor(self.next_tokens(logits, rows), device=self.device)
        if self.rows:  # stack the newcomers under the running rows, the shorter cache left-padded
            length = max(self.mask.shape[1], mask.shape[1])
            for layer, new_layer in zip(self.cache.layers, past.layers):
                layer.keys = torch.cat([_left_pad(layer.keys, length, 2), _left_pad(new_layer.keys, length, 2)])
                layer.values = torch.cat([_left_pad(layer.values, length, 2), _left_pad(new_layer.values, length, 2)])
            self.mask = torch.cat([_left_pad(self.mask, length, 1), _left_pad(mask, length, 1)])
            self.positions = torch.cat([self.positions, mask.sum(-1)])
            self.last = torch.cat([self.last, tokens])
        else:
            self.cache, self.mask, self.positions, self.last = past, mask, mask.sum(-1), tokens
        self.rows += rows

    def step(self) -> None:
        """One token for every live row; ended rows wait in the batch to be dropped."""
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(self.rows), 1)], dim=1)
        logits = self.forward(self.last[:, None], self.mask, self.positions[:, None], self.cache)
        self.positions = self.positions + 1
        live = [r for r, row in enumerate(self.rows) if not row.done]
        tokens = self.next_tokens(logits[live], [self.rows[r] for r in live])
        self.last = self.last.clone()
        self.last[live] = torch.tensor(tokens, device=self.device)

    def finished(self) -> Iterator[tuple[int, Completion]]:
        """The rows that ended at this step, as answers (cut at a stop string, with their top-k)."""
        params = self.params
        for row in self.rows:
            if row.done or not _ended(self.tokenizer, row, params, self.tail):
                continue
            row.done = True
            completion = finish(self.tokenizer, row.tokens, params.stop_strings, params.max_new_tokens)
            if params.topk:
                completion.token_ids = row.tokens[: completion.n_tokens]
                kept = row.top[: completion.n_tokens]
                completion.topk_indices = torch.stack([i for i, _ in kept])
                completion.topk_logprobs = torch.stack([p for _, p in kept])
            yield row.key, completion


@torch.inference_mode()  # no autograd graph: the whole decode, every admit and step
def decode(model, tokenizer, prompts: list[str], params: DecodeParams, seeds: list[int],
           slots: int) -> Iterator[tuple[int, Completion]]:
    """Answer every prompt with at most `slots` rows decoding at once (see Decoder); yield (index, answer)
    as rows end."""
    if not prompts:  # a resumed run with every answer already written
        return
    yield from Decoder(model, tokenizer, prompts, params, seeds, slots).run()


def row_seed(batch_seed: int, position: int) -> int:
    """The sampling seed of one prompt: its batch's seed and its place in that batch."""
    return batch_seed * 1_000_003 + position


def generate_batch(model, tokenizer, prompts: list[str], params: DecodeParams, seed: int) -> list[Completion]:
    """Answer `prompts` decoding all at once; each row samples from its own seed."""
    answers = dict(decode(model, tokenizer, prompts, params, [row_seed(seed, p) for p in range(len(prompts))],
                          slots=max(1, len(prompts))))
    return [answers[i] for i in range(len(prompts))]


# How many planned batches `generate` decodes as one run, from an empty decoder drained before the next.
# Rows that share a step change the float sums of each other's logits (the padding, the kernels' shapes,
# the prompts' shared start), so only a whole run repeats bit for bit, and a kill loses the run under way.
# A run's tail decodes few rows: on the 2-core CPU that cost nothing (embedded teacher, 128 prompts, batch
# 32, 64 new tokens, one thread: 98 tok/s in runs of 1 batch, 93 in runs of 4); on a GPU a step costs about
# the same with any number of rows, so runs there are 16 batches (1,024 prompts at batch 64, as vLLM's
# chunks; not measured).
RUN_BATCHES = {"cpu": 1}
RUN_BATCHES_ELSEWHERE = 16


def run_batches(model) -> int:
    """How many planned batches `generate` decodes as one run on this model's device."""
    return RUN_BATCHES.get(model.device.type, RUN_BATCHES_ELSEWHERE)


def generate(model, tokenizer, prompts: list[str], params: DecodeParams, batch_size: int,
             done: set[int] = frozenset(), batches_per_run: int | None = None
             ) -> Iterator[tuple[list[int], list[Completion]]]:
    """Yield (prompt indices, answers) run by run, for the prompts not in `done`.

    Batches are planned up front over all prompts and each prompt samples from its batch's seed and
    its place in the batch. Every `batches_per_run` planned batches (`run_batches`) form a run: its
    prompts not in `done` are decoded continuously, `batch_size` rows at a time, from an empty
    decoder, and yielded together once all are in. A run depends on nothing outside it, so a run
    killed and resumed (whose `done` is then whole runs) decodes the rest with the uninterrupted run's
    arithmetic: the same answers and the same log-probs, bit for bit. A run that is partly done (the
    pool grew) generates only its new prompts.
    """
    plan = plan_batches(tokenizer, prompts, batch_size)
    per_run = batches_per_run or run_batches(model)
    for first in range(0, len(plan), per_run):
        rows = [(i, row_seed(params.seed + number, place))
                for number in range(first, min(first + per_run, len(plan)))
                for place, i in enumerate(plan[number]) if i not in done]
        if not rows:
            continue
        order = [i for i, _ in rows]
        answers = dict(decode(model, tokenizer, [prompts[i] for i in order], params, [s for _, s in rows],
                              batch_size))
        yield order, [answers[key] for key in range(len(order))]


def generate_all(model, tokenizer, prompts: list[str], params: DecodeParams, batch_size: int) -> list[Completion]:
    """Every prompt's answer, in order, decoded as one continuous run (nothing resumes it)."""
    answers: list[Completion | None] = [None] * len(prompts)
    for batch, completions in generate(model, tokenizer, prompts, params, batch_size, batches_per_run=len(prompts)):
        for i, completion in zip(batch, completions):
            answers[i] = completion
    return answers


def vllm_completion(output, topk: int = 0) -> Completion:
    """One vLLM output as an answer, stripped and labelled like the HF engine's; with `topk`, also its
    top-k log-probs per generated token (vLLM's `logprobs`: per token a {token id: Logprob} dict of the
    top k, plus the sampled token where it is not among them)."""
    o = output.outputs[0]
    reason = "length" if o.finish_reason == "length" else ("stop" if o.stop_reason is not None else "eos")
    completion = Completion(o.text.strip(), reason, len(o.token_ids))
    if topk and o.logprobs is not None:
        top = [sorted(step.items(), key=lambda item: -item[1].logprob)[:topk] for step in o.logprobs]
        completion.token_ids = list(o.token_ids)
        completion.topk_indices = torch.tensor([[i for i, _ in t] for t in top], dtype=torch.int32).reshape(-1, topk)
        completion.topk_logprobs = torch.tensor([[lp.logprob for _, lp in t] for t in top]).reshape(-1, topk)
    return completion


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
        logprobs=params.topk or None,  # the top-k white-box training reads, without a second teacher pass
    )
    todo = [i for i in range(len(prompts)) if i not in done]
    for start in range(0, len(todo), chunk_size):
        batch = todo[start : start + chunk_size]
        outputs = llm.generate([prompts[i] for i in batch], sampling, use_tqdm=False)
        yield batch, [vllm_completion(output, params.topk) for output in outputs]
