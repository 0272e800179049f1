"""The metric registry: one declaration per metric reaches every reader (the headline file, the scaling
plot, the bootstrap, the rule, compare, MLflow)."""

from __future__ import annotations

import json

import pytest

from kdscale import metrics, paths, stats, tracking
from kdscale.metrics import METRICS, Metric
from conftest import REPO

SAMPLE = {"id": "adh-001", "strict": True, "loose": True, "degenerate": False, "finish_reason": "eos"}
COMMITTED = paths.Run("pruned10", 320, 0)  # the committed study's largest student


def committed(path) -> dict:
    """A committed result of COMMITTED."""
    return json.loads((REPO / path).read_text())


def test_the_headline_file_holds_each_headline_metric_and_its_interval():
    assert metrics.headline_keys() == [
        "perplexity", "perplexity_ci_low", "perplexity_ci_high", "pass_rate", "pass_rate_ci_low", "pass_rate_ci_high",
        "degenerate_share"]
    headline = committed(paths.student_metrics(COMMITTED))
    assert list(headline) == metrics.headline_keys()  # what `dvc metrics show` prints today


def test_a_student_run_shows_at_most_25_metrics_and_the_loss_first():
    details = committed(paths.student_details(COMMITTED))  # every number evaluate keeps
    shown = set(metrics.for_mlflow(details)) | set(tracking.TRAINING_METRICS) | set(tracking.CURVES.values())
    assert len(shown) <= 25 and "eval/perplexity_ci_low" in shown
    assert not any(k.startswith("eval/type_") for k in shown)  # per-type rates: one artifact, not 50 charts
    assert len(details) > 80
    # MLflow's run page groups charts by the name before "/", sorts the groups as text and puts the
    # unprefixed ones last; within a group it sorts the names: the training loss comes first
    groups = sorted({k.split("/")[0] for k in shown if "/" in k})
    assert groups[0] == "Training" and sorted(k for k in shown if k.startswith("Training/"))[0] == "Training/loss"


def test_every_metric_resampled_per_prompt_reads_a_sample_line():
    outcomes = {m.name: m.per_prompt(SAMPLE) for m in metrics.resampled() if m.per_prompt}
    assert outcomes == {"pass_rate": True, "pass_rate_loose": True, "degenerate_share": False,
                        "answers_ended_eos": True}
    assert [m.name for m in metrics.ruled()] == ["perplexity", "pass_rate", "degenerate_share"]


def test_a_new_metric_reaches_every_reader_from_its_declaration(monkeypatch):
    """Declared once, a per-prompt metric lands in the headline file, the scaling plot, MLflow and the
    paired bootstrap, with no other list to edit."""
    new = Metric("ends_with_period", "Ends with a period", "rate", headline=True, mlflow=True, scaling=True,
                 per_prompt=lambda s: s["response"].endswith("."))
    monkeypatch.setattr(metrics, "EVALUATION", [*metrics.EVALUATION, new])
    monkeypatch.setitem(METRICS, new.name, new)
    assert metrics.headline_keys()[-1] == "ends_with_period" and "ends_with_period" in metrics.scaling_keys()
    assert metrics.for_mlflow({"ends_with_period": 0.5}) == {"eval/ends_with_period": 0.5}
    models = {name: {"heldout_ids": ["h0"], "heldout_nll_sums": [1.0], "heldout_token_counts": [2]}
              for name in ("a", "b")}
    samples = {"a": [SAMPLE | {"response": "Yes."}], "b": [SAMPLE | {"response": "Yes"}]}
    evidence = stats.paired_evidence(models, samples)
    assert evidence.flags["ends_with_period"].tolist() == [[1.0], [0.0]]


@pytest.mark.parametrize("metric", list(METRICS.values()), ids=list(METRICS))
def test_each_metric_is_declared_consistently(metric):
    assert metric.label and metric.unit in ("", "rate", "tokens/s", "MiB", "s")
    assert not metric.ruled or metric.name == "perplexity" or metric.per_prompt  # the rule needs item draws
    assert not metric.headline or metric.mlflow  # what dvc metrics show prints, MLflow shows too
