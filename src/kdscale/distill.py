"""White-box distillation: the teacher's top-k log-probs per answer token, and the KD loss.

Stage `teacher_topk` stores, per answer token, the teacher's k most likely next tokens and
their log-probs (sparse: a few MB for the embedded pool; kdscale.topk): those the teacher
kept while generating the answer, or else from one forward pass of the teacher over its own
prompt + the answer's label tokens (`teacher_topk` below). Training with `train.objective: kd` then
minimises, on answer tokens only,

    T^2 * KL(teacher's top-k distribution, renormalised, at temperature T || student's at T)

the forward KL of Hinton et al. (2015), which is TRL's `generalized_jsd_loss` at beta = 0
(TRL leaves out the T^2; Hinton keeps it so that gradients keep their size as T changes).
`mixed` adds the SFT loss: kd_weight * kd + (1 - kd_weight) * sft.

Positions align by answer-token index: row j of an answer holds the teacher's prediction
of its j-th label token (the EOS label included where training has one), whatever prompt
format each model was conditioned on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kdscale.engines import generation
from kdscale.errors import UserError
from kdscale.examples import CompletionCollator, tokenize_records
from kdscale.topk import TopkStore, answer_labels, build_store  # noqa: F401 (the store, as distillation uses it)


# -----------------------------------------------------------------------------
# answer tokens: exactly the label tokens training uses

def tokenize_with_ids(tokenizer, records: list[dict], max_length: int, overlong: str = "truncate",
                      prompt_format: str = "alpaca") -> tuple[list[dict], dict]:
    """`examples.tokenize_records`, one record at a time, so that each example keeps its record's id."""
    examples, counts = [], {}
    for record in records:
        one, events = tokenize_records(tokenizer, [record], max_length, overlong, prompt_format=prompt_format)
        for key, n in events.items():
            counts[key] = counts.get(key, 0) + n
        examples += [{**e, "id": record["id"]} for e in one]
    return examples, counts


def check_same_vocabulary(student_tokenizer, teacher_tokenizer, student_model: str) -> None:
    """KD compares distributions token by token: both models must number the vocabulary alike."""
    if student_tokenizer.get_vocab() != teacher_tokenizer.get_vocab():
        raise UserError(f"train.objective kd | mixed needs a student that shares the teacher's tokenizer, and "
                        f"student.model '{student_model}' numbers its vocabulary differently; "
                        f"use train.objective: sft for this pair")


# -----------------------------------------------------------------------------
# the teacher's forward pass

@torch.inference_mode()
def teacher_topk(model, tokenizer, prompts: list[list[int]], answers: list[list[int]], k: int,
                 batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(indices [n, k], log-probs [n, k]) of each answer: the teacher's prediction of every answer token,
    from one forward pass over prompt + answer.

    The tokens every prompt starts with (the chat template's system turn) run once, and each batch
    starts from their KV cache. The rest of each row is left-padded after them (with matching
    position ids), so every answer ends at the last position and the LM head runs on the answer
    positions only (the head is a fifth of a small model's compute). Batches group similar lengths."""
    k = min(k, model.get_output_embeddings().weight.shape[0])
    order = sorted(range(len(prompts)), key=lambda i: -(len(prompts[i]) + len(answers[i])))
    out: list = [None] * len(prompts)
    device = next(model.parameters()).device
    prefix, shared = generation.shared_prefix(model, prompts)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        # The last answer token is only a label; the input stops before it.
        inputs = [prompts[i][shared:] + answers[i][:-1] for i in batch]
        width, tail = max(map(len, inputs)), max(1, *(len(answers[i]) for i in batch))  # 0 would keep all
        input_ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(inputs):
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention_mask[row, width - len(ids) :] = 1
        position_ids = shared + (attention_mask.cumsum(-1) - 1).clamp(min=0)
        cache = {}
        if prefix is not None:
            cache = {generation.cache_argument(model): generation.repeat_prefix(model, prefix, len(batch)),
                     "use_cache": True}
            attention_mask = torch.cat([attention_mask.new_ones(len(batch), shared), attention_mask], dim=1)
        logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                       position_ids=position_ids.to(device), logits_to_keep=tail, **cache).logits.float()
        # top-k of the logits, then their log-probs: no full-vocabulary log-softmax to write
        top, indices = logits.topk(k, dim=-1)
        logprobs = top - logits.logsumexp(dim=-1, keepdim=True)
        for row, i in enumerate(batch):
            n = len(answers[i])
            out[i] = (indices[row, tail - n :].to(torch.int32).cpu(), logprobs[row, tail - n :].cpu())
    return out


# -----------------------------------------------------------------------------
# training: the collator and the loss

@dataclass
class KDCollator(CompletionCollator):
    """CompletionCollator plus the teacher's top-k at each label position (zeros elsewhere)."""

    store: TopkStore | None = None

    def __call__(self, examples: list[dict]) -> dict:
        batch = super().__call__(examples)
        width, k = batch["input_ids"].shape[1], self.store.k
        indices = torch.zeros((len(examples), width, k), dtype=torch.long)
        logprobs = torch.zeros((len(examples), width, k), dtype=torch.float32)
        for row, e in enumerate(examples):
            positions = [i for i, t in enumerate(e["labels"]) if t != -100]
            rows = self.store.rows(e["id"], len(positions))  # a truncated answer uses its first rows
            indices[row, positions] = self.store.indices[rows].long()
            logprobs[row, positions] = self.store.logprobs[rows].float()
        batch["teacher_indices"], batch["teacher_logprobs"] = indices, logprobs
        return batch


@dataclass
class KDConfig:
    objective: str = "kd"  # kd | mixed
    temperature: float = 1.0
    weight: float = 0.5  # the KD share with objective: mixed


def kd_loss(student_logits: torch.Tensor, teacher_indices: torch.Tensor, teacher_logprobs: torch.Tensor,
            temperature: float) -> torch.Tensor:
    """Summed T^2 * KL(teacher top-k at T || student at T) over rows; student_logits [n, V], teacher [n, k].

    The teacher's k log-probs are renormalised over the k tokens at temperature T; the student's
    softmax runs over its whole vocabulary, so mass it puts outside the teacher's top k is
    penalised through the normalisation."""
    t = temperature
    teacher = torch.log_softmax(teacher_logprobs.float() / t, dim=-1)
    student = torch.log_softmax(student_logits.float() / t, dim=-1).gather(-1, teacher_indices)
    return t * t * (teacher.exp() * (teacher - student)).sum()


def objective_loss(logits: torch.Tensor, labels: torch.Tensor, teacher_indices: torch.Tensor,
                   teacher_logprobs: torch.Tensor, config: KDConfig,
                   num_items_in_batch: int | torch.Tensor | None = None) -> torch.Tensor:
    """The kd or mixed loss of a batch, per answer token: logits [B, L, V] predict labels shifted by one."""
    return answer_loss(logits[:, :-1], labels[:, 1:], teacher_indices[:, 1:], teacher_logprobs[:, 1:], config,
                       num_items_in_batch)


def answer_loss(logits: torch.Tensor, targets: torch.Tensor, teacher_indices: torch.Tensor,
                teacher_logprobs: torch.Tensor, config: KDConfig,
                num_items_in_batch: int | torch.Tensor | None = None) -> torch.Tensor:
    """objective_loss on aligned tensors: logits[b, t] predicts targets[b, t] (-100: not an answer token),
    as the trainer computes them at answer positions only."""
    mask = targets != -100
    answer_logits = logits[mask]  # only answer positions get a softmax, and a gradient
    n = num_items_in_batch if num_items_in_batch is not None else mask.sum().clamp(min=1)
    loss = kd_loss(answer_logits, teacher_indices[mask], teacher_logprobs[mask], config.temperature) / n
    if config.objective == "mixed":
        sft = F.cross_entropy(answer_logits.float(), targets[mask], reduction="sum") / n
        loss = config.weight * loss + (1 - config.weight) * sft
    return loss
