"""Grouped numbers in the flat JSON files stages hand each other, written and read in one place.

The files stay flat (`type_pass_rate.json`, `dropped_echo`), so `dvc exp show` and MLflow show each
number as a column; the stage that reads a group gets it back as a typed object, not by prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

TYPE_RATE, TYPE_PROMPTS = "type_pass_rate.", "type_prompts."
DROPPED = "dropped_"
DROP_REASONS = ["empty", "echo", "template_leak", "repetition", "truncated", "context"]


@dataclass
class TypeRates:
    """Per instruction type: the strict pass rate over its checks, and how many prompts carry it
    (evaluate's details)."""
    pass_rate: dict[str, float]
    prompts: dict[str, int]

    def flat(self) -> dict:
        return {**{f"{TYPE_RATE}{t}": r for t, r in sorted(self.pass_rate.items())},
                **{f"{TYPE_PROMPTS}{t}": n for t, n in sorted(self.prompts.items())}}

    @classmethod
    def read(cls, details: dict) -> TypeRates:
        return cls({k.removeprefix(TYPE_RATE): v for k, v in details.items() if k.startswith(TYPE_RATE)},
                   {k.removeprefix(TYPE_PROMPTS): v for k, v in details.items() if k.startswith(TYPE_PROMPTS)})


def dropped_flat(counts: dict[str, int]) -> dict[str, int]:
    """The filters' drop counts by reason (teacher_filter's metrics), every reason listed."""
    return {f"{DROPPED}{r}": counts.get(r, 0) for r in DROP_REASONS}


def dropped_read(metrics: dict) -> dict[str, int]:
    return {k.removeprefix(DROPPED): v for k, v in metrics.items() if k.startswith(DROPPED)}
