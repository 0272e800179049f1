"""Every metric a study reports about a model, declared once. evaluate writes the headline ones to
metrics/<model>.json; the report tables them, plots them against size, resamples them and rules on them;
compare sets recipes side by side on them; sync logs the MLflow ones on each model's run.

Adding a metric: declare it here and compute it in evaluate. (What a student's run shows of its training
is tracking's, since train depends on it: a new evaluation metric retrains nothing.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal


@dataclass(frozen=True)
class Metric:
    name: str
    label: str  # words in tables and on charts
    unit: Literal["", "rate", "tokens/s", "MiB", "s"] = ""  # "rate": a share in [0, 1], printed as a percentage
    higher_is_better: bool = True
    interval: bool = False  # the model's files carry <name>_ci_low and <name>_ci_high, a 95% interval
    # in metrics/<model>.json, with its interval: what `dvc metrics show` and `dvc exp show` print (three
    # metrics, so that a study's table fits 160 columns); the rest is in metrics/details/<model>.json
    headline: bool = False
    mlflow: bool = False  # a metric of the model's MLflow run; the rest stays in metrics/details/
    scaling: bool = False  # a column of plots/scaling.json, against the training-set size
    # the 0/1 outcome of one adherence prompt's answer (a line of samples/*.jsonl), which the paired
    # bootstrap resamples; perplexity is resampled over held-out answers instead
    per_prompt: Callable[[dict], bool] | None = None
    ruled: bool = False  # the diminishing-returns rule answers for it
    compared: bool = False  # `kdscale compare` sets recipes side by side on it
    log_scale: bool = False  # varies by factors: geometric means over seeds, log axes

    @property
    def keys(self) -> list[str]:
        """Its keys in a model's metrics files: the value, then the interval's bounds where it has one."""
        return [self.name] + ([f"{self.name}_ci_low", f"{self.name}_ci_high"] if self.interval else [])


EVALUATION = [
    Metric("perplexity", "Perplexity", higher_is_better=False, interval=True, headline=True, mlflow=True,
           scaling=True, ruled=True, compared=True, log_scale=True),
    Metric("pass_rate", "Pass rate (strict)", "rate", interval=True, headline=True, mlflow=True, scaling=True,
           per_prompt=lambda s: bool(s["strict"]), ruled=True, compared=True),
    Metric("pass_rate_loose", "Pass rate (loose)", "rate", mlflow=True, scaling=True,
           per_prompt=lambda s: bool(s.get("loose", False))),
    Metric("instruction_pass_rate", "Instructions passed (strict)", "rate", mlflow=True),
    Metric("degenerate_share", "Degenerate share", "rate", higher_is_better=False, headline=True, mlflow=True,
           scaling=True, per_prompt=lambda s: bool(s.get("degenerate", False)), ruled=True),
    Metric("answers_ended_eos", "Ended at EOS", "rate", mlflow=True, scaling=True,
           per_prompt=lambda s: s.get("finish_reason") == "eos"),
    Metric("tokens_per_sec", "Tokens/s (batch 1)", "tokens/s", mlflow=True, scaling=True),
    Metric("batched_tokens_per_sec", "Tokens/s (batched)", "tokens/s"),
    Metric("model_size_mb", "Size", "MiB", higher_is_better=False, mlflow=True),
    Metric("peak_memory_mb", "Peak memory", "MiB", higher_is_better=False),
    Metric("eval_seconds", "Evaluation time", "s", higher_is_better=False, mlflow=True),
    # copied from the training summary by evaluate, so the report reads one file per model
    Metric("train_seconds", "Training time", "s", higher_is_better=False, scaling=True),
    Metric("final_train_loss", "Final training loss", higher_is_better=False, scaling=True),
]
METRICS = {m.name: m for m in EVALUATION}


def headline_keys() -> list[str]:
    """metrics/<model>.json's keys, in order."""
    return [k for m in EVALUATION if m.headline for k in m.keys]


def scaling_keys() -> list[str]:
    """plots/scaling.json's columns beside the size."""
    return [k for m in EVALUATION if m.scaling for k in m.keys]


def for_mlflow(evaluation: dict) -> dict[str, float]:
    """The numbers of a model's evaluation (its details file) that its MLflow run shows, as eval/<name>."""
    keys = [k for m in EVALUATION if m.mlflow for k in m.keys]
    return {f"eval/{k}": float(evaluation[k]) for k in keys
            if isinstance(evaluation.get(k), (int, float)) and not isinstance(evaluation[k], bool)}


def resampled() -> list[Metric]:
    """The metrics the paired bootstrap draws over items: perplexity over held-out answers, the rest per prompt."""
    return [m for m in EVALUATION if m.name == "perplexity" or m.per_prompt is not None]


def ruled() -> list[Metric]:
    return [m for m in EVALUATION if m.ruled]


def compared() -> list[Metric]:
    return [m for m in EVALUATION if m.compared]
