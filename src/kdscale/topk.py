"""The teacher's top-k log-probs per answer token: flat arrays plus offsets, one safetensors file.

The teacher stage writes one for the tokens it generated; stage `teacher_topk` writes the one
training reads (kdscale.distill), whose rows are training's own label tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from kdscale.errors import UserError


def answer_labels(example: dict) -> list[int]:
    """The answer tokens of a training example: exactly its labelled tokens."""
    return [t for t in example["labels"] if t != -100]


@dataclass
class TopkStore:
    ids: list[str]
    offsets: torch.Tensor  # [records + 1]: answer j of ids[i] is row offsets[i] + j
    labels: torch.Tensor  # [rows] int32: the answer token each row predicts
    indices: torch.Tensor  # [rows, k] int32
    logprobs: torch.Tensor  # [rows, k] float16, the teacher's full-softmax log-probs (not renormalised)

    def __post_init__(self):
        self.row = {id_: i for i, id_ in enumerate(self.ids)}

    @property
    def k(self) -> int:
        return self.indices.shape[1]

    def rows(self, record_id: str, n: int) -> slice:
        start = int(self.offsets[self.row[record_id]])
        return slice(start, start + n)

    def subset(self, ids: list[str]) -> TopkStore:
        """The rows of these answers (those the store holds), in this order."""
        ids = [i for i in ids if i in self.row]
        parts = [slice(int(self.offsets[self.row[i]]), int(self.offsets[self.row[i] + 1])) for i in ids]
        lengths = torch.tensor([0] + [p.stop - p.start for p in parts], dtype=torch.int64)
        take = torch.cat([torch.arange(p.start, p.stop) for p in parts]) if parts else torch.zeros(0, dtype=torch.int64)
        return TopkStore(ids, lengths.cumsum(0), self.labels[take], self.indices[take], self.logprobs[take])

    def save(self, path: Path) -> None:
        from safetensors.torch import save_file

        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"offsets": self.offsets, "labels": self.labels, "indices": self.indices,
                   "logprobs": self.logprobs}, str(path), metadata={"ids": json.dumps(self.ids)})

    @classmethod
    def load(cls, path: Path) -> TopkStore:
        from safetensors import safe_open

        if not Path(path).exists():
            raise UserError(f"{path}: not found; train.objective kd | mixed needs the teacher's top-k "
                            f"log-probs: run `dvc repro` (stage teacher_topk writes them, stage subsets each size's)")
        with safe_open(str(path), "pt") as f:
            ids = json.loads(f.metadata()["ids"])
            tensors = {name: f.get_tensor(name) for name in ("offsets", "labels", "indices", "logprobs")}
        return cls(ids, **tensors)

    def check(self, examples: list[dict], where: str) -> None:
        """Every example's answer tokens must be the ones the teacher was scored on."""
        if examples and not self.ids:
            raise UserError(f"{where}: the teacher's top-k store is empty (the teacher_topk stage ran under "
                            f"train.objective: sft); rerun `dvc repro teacher_topk` with the kd objective in params")
        for e in examples:
            if e["id"] not in self.row:
                raise UserError(f"{where}: answer {e['id']} has no teacher top-k log-probs; "
                                f"rerun `dvc repro teacher_topk` after the teacher stage")
            labels = answer_labels(e)
            stored = self.labels[self.rows(e["id"], len(labels))].tolist()
            if stored != labels:
                raise UserError(f"{where}: the teacher's top-k log-probs of answer {e['id']} are for other tokens "
                                f"than training uses (a changed tokenizer or example rule); rerun "
                                f"`dvc repro teacher_topk`")


def build_store(ids: list[str], answers: list[list[int]], topk: list[tuple[torch.Tensor, torch.Tensor]],
                k: int) -> TopkStore:
    lengths = torch.tensor([0] + [len(a) for a in answers], dtype=torch.int64)
    empty = (torch.zeros((0, k), dtype=torch.int32), torch.zeros((0, k)))
    indices, logprobs = zip(*topk) if topk else ([empty[0]], [empty[1]])
    return TopkStore(ids=list(ids), offsets=lengths.cumsum(0),
                     labels=torch.tensor([t for a in answers for t in a], dtype=torch.int32),
                     indices=torch.cat(indices), logprobs=torch.cat(logprobs).to(torch.float16))
