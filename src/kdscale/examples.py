"""Prompt + response examples as token ids with completion-only labels, and their collator.

Training and perplexity build examples here, so both count exactly the same tokens:
the response and the EOS that ends it (only where the teacher ended it); prompt and padding
labels are -100.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kdscale.prompts import build_prompt


def tokenize_example(tokenizer, prompt: str, response: str, max_length: int,
                     overlong: str = "truncate", ended: bool = True) -> tuple[dict | None, dict]:
    """input_ids and labels for prompt + response (+ EOS when the answer `ended`); returns
    (example or None, what happened).

    An answer the teacher did not finish (cut at its max_new_tokens) gets no EOS label: the student
    must not learn to stop mid-sentence, and perplexity must not score an EOS the teacher never wrote."""
    prompt_ids = tokenizer(prompt).input_ids
    full_ids = tokenizer(prompt + response).input_ids
    events = {"prefix_mismatch": full_ids[: len(prompt_ids)] != prompt_ids, "truncated": False, "dropped": False}
    if events["prefix_mismatch"]:
        # A merge across the prompt/response boundary: tokenize the parts apart so labels stay aligned.
        full_ids = prompt_ids + tokenizer(response, add_special_tokens=False).input_ids
    input_ids = full_ids + [tokenizer.eos_token_id] if ended else full_ids
    if len(input_ids) > max_length:
        if overlong == "drop" or len(prompt_ids) >= max_length:
            events["dropped"] = True
            return None, events
        input_ids = input_ids[:max_length]  # the answer is cut, so it keeps no EOS
        events["truncated"] = True
    labels = [-100] * len(prompt_ids) + input_ids[len(prompt_ids) :]
    return {"input_ids": input_ids, "labels": labels, "length": len(input_ids)}, events


def tokenize_records(tokenizer, records: list[dict], max_length: int, overlong: str = "truncate",
                     prompt_format: str = "alpaca", response_key: str = "response") -> tuple[list[dict], dict]:
    examples, counts = [], {"prefix_mismatch": 0, "truncated": 0, "dropped": 0}
    for record in records:
        prompt = build_prompt(record, prompt_format, tokenizer)
        # A source's own reference output is complete; a teacher answer ended unless cut at its length limit.
        ended = response_key != "response" or record.get("finish_reason") != "length"
        example, events = tokenize_example(tokenizer, prompt, record[response_key], max_length, overlong, ended)
        for key, happened in events.items():
            counts[key] += happened
        if example is not None:
            examples.append(example)
    if counts["prefix_mismatch"]:
        print(f"warning: {counts['prefix_mismatch']} prompts were not a token prefix of prompt+response; "
              f"their parts were tokenized separately")
    return examples, counts


def answer_positions(labels: torch.Tensor) -> torch.Tensor:
    """Sequence positions whose next token is labelled in some row of the batch: the only positions
    whose logits a completion-only loss reads. Skipping the LM head elsewhere (the prompts) saves its
    cost there; with a 49k vocabulary the head is as large as a third of the embedded student's layers."""
    return (labels[:, 1:] != -100).any(dim=0).nonzero().flatten()


@dataclass
class CompletionCollator:
    """Right-pads a batch to its longest example. Padding is found by length, never by
    token id, so an EOS label survives when the pad token is the EOS token."""

    pad_token_id: int
    real_tokens: int = 0
    padded_tokens: int = 0

    def __call__(self, examples: list[dict]) -> dict:
        width = max(len(e["input_ids"]) for e in examples)
        input_ids = torch.full((len(examples), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(examples), width), -100, dtype=torch.long)
        attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
        for row, e in enumerate(examples):
            n = len(e["input_ids"])
            input_ids[row, :n] = torch.tensor(e["input_ids"])
            labels[row, :n] = torch.tensor(e["labels"])
            attention_mask[row, :n] = 1
        self.real_tokens += int(attention_mask.sum())
        self.padded_tokens += input_ids.numel()
        return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}

    @property
    def padding_fraction(self) -> float:
        return 1 - self.real_tokens / self.padded_tokens if self.padded_tokens else 0.0
