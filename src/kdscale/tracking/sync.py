"""`kdscale sync`: make the MLflow store a complete view of what DVC versions in this checkout.

DVC is the record; MLflow is the view. Stages log live, but a fresh clone after `dvc pull`, a
stage restored from DVC's run-cache, or a crash between a stage's output and its logging leave
the store short. sync walks the versioned outputs and fills in what is missing:

    models/STUDENT/nN-seedS/   one run per model: params, training curve (training_log.json), the
                         subset as a dataset input, eval metrics and samples, the model logged,
                         registered and aliased STUDENT-nN-seedS
    data/teacher/raw.jsonl, generation.json          the teacher-generation run
    data/teacher/{pool,heldout}.jsonl, metrics/teacher_generation.json   the teacher-filter run
    metrics/teacher.json, samples/teacher.jsonl      the teacher-eval run (numbers from metrics/details/)
    reports/                                         the report run

A run is found by its key (tracking.run_key: stage, run, md5 of the outputs it describes),
which live stages tag too, so running sync twice, or after the stages logged live, adds
nothing. It also closes runs whose process died (tracking.setup).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from kdscale import paths, tracking
from kdscale.config import load_params, runs, to_dict
from kdscale.jsonl import read_json
from kdscale.paths import TRAINING_LOG
from kdscale.metrics import for_mlflow
from kdscale.records import StudyRecord, SweepRecord, TypeRates

SYNC_TAG = "kdscale.synced"  # set on runs that sync created, so the UI tells them from live ones


def now_ms() -> int:
    return int(time.time() * 1000)  # a metric's latest value is the one of the highest (step, timestamp)


def find_run(client: MlflowClient, experiment_id: str, key: str):
    runs = tracking.retry(client.search_runs, [experiment_id], f"tags.`{tracking.KEY_TAG}` = '{key}'",
                          max_results=10, order_by=["attributes.start_time DESC"])
    return runs[0] if runs else None


def missing_metrics(client: MlflowClient, run_id: str, metrics: dict) -> dict:
    """The metrics whose latest value in the run is absent or differs from the file's."""
    have = tracking.retry(client.get_run, run_id).data.metrics
    flat = tracking.flat_metrics(metrics)  # nested values under dotted keys, as the live stages log them
    return {k: v for k, v in flat.items() if k not in have or not math.isclose(have[k], v, rel_tol=1e-9)}


def has_artifact(client: MlflowClient, run_id: str, name: str) -> bool:
    return any(f.path == name for f in tracking.retry(client.list_artifacts, run_id))


def has_dataset(client: MlflowClient, run_id: str, path: Path) -> bool:
    inputs = tracking.retry(client.get_run, run_id).inputs
    digest = tracking.data_md5([path])
    return any(d.dataset.name == path.as_posix() and d.dataset.digest == digest
               for d in (inputs.dataset_inputs if inputs else []))


def log_curve(client: MlflowClient, run_id: str, history: list[dict]) -> int:
    """The Trainer's log history as train/<name> per step, as the live MLflowLogger logs it."""
    metrics = [Metric(tracking.CURVES[k], float(v), now_ms(), int(h["step"]))
               for h in history if "step" in h and "loss" in h
               for k, v in h.items() if k in tracking.CURVES and isinstance(v, (int, float)) and math.isfinite(v)]
    for start in range(0, len(metrics), 1000):  # log_batch takes at most 1000 metrics
        tracking.retry(client.log_batch, run_id, metrics=metrics[start:start + 1000])
    return len(metrics)


def model_version(client: MlflowClient, name: str, run_id: str):
    versions = tracking.retry(client.search_model_versions, f"name = '{name}' and run_id = '{run_id}'")
    return max(versions, key=lambda v: int(v.version)) if versions else None


def open_run(client, experiment_id, stage, run: paths.Run | None, outputs, run_id=None):
    """The run that describes `outputs`: by key, else the live run `run_id` when the store has it
    (logged before keys existed, or died before tagging); None when a new one must be made."""
    key = tracking.run_key(stage, run, outputs)
    run = find_run(client, experiment_id, key)
    if run is None and run_id:
        run = tracking._existing_run(run_id)
    return key, run


def sync_student(client, experiment_id: str, params, trained: paths.Run) -> list[str]:
    """Complete (or create) the MLflow run of one trained student; returns what was added."""
    model_dir, subset = paths.student_dir(trained), paths.subset_file(trained.size)
    key, run = open_run(client, experiment_id, "train", trained, [model_dir], tracking.read_run_id(model_dir))
    if run is not None and run.info.status == "RUNNING":
        return []  # a live stage holds it (setup() closed those whose process died)
    summary = read_json(model_dir / TRAINING_LOG)["summary"]
    added = []
    tags = {**tracking.common_tags("train", trained, [subset] if subset.is_file() else []), tracking.KEY_TAG: key}
    if run is None:
        tags[SYNC_TAG] = "true"
        if tracking.read_run_id(model_dir):
            tags["kdscale.original_run_id"] = tracking.read_run_id(model_dir)
        run = tracking.retry(client.create_run, experiment_id, run_name=tracking.display_name(trained.name, tags),
                             tags={**tags, **tracking.owner_tags()})
        added.append("run")
        tracking.log_params_to(run.info.run_id, {
            "size": trained.size, "seed": trained.seed, "student": to_dict(params.students[trained.student]),
            "train": to_dict(params.train), "optimizer_steps": summary.get("optimizer_steps"),
            "world_size": summary.get("world_size"), "parameters": summary.get("parameters")})
    elif run.data.tags.get(tracking.KEY_TAG) != key:
        tracking.retry(client.set_tag, run.info.run_id, tracking.KEY_TAG, key)
    added += complete_student_run(client, run.info.run_id, trained)
    added += register_student(client, run.info.run_id, params.registered_name, trained)
    if run.info.status != "FINISHED" and "model" not in added:
        tracking.retry(client.set_terminated, run.info.run_id, "FINISHED")
    return added


ADHERENCE_BY_TYPE = "adherence_by_type.json"  # the per-type pass rates, one artifact, not 50 single-value charts


def by_type(details: dict) -> dict[str, dict]:
    """Per instruction type: the strict pass rate and the prompts that carry the type."""
    rates = TypeRates.read(details)
    return {t: {"pass_rate": r, "prompts": rates.prompts.get(t)} for t, r in sorted(rates.pass_rate.items())}


def complete_student_run(client, run_id: str, trained: paths.Run) -> list[str]:
    """What the run lacks of the training curve and summary, the evaluation's numbers, answers and details,
    and the subset and held-out set as dataset inputs."""
    log = read_json(paths.student_dir(trained) / TRAINING_LOG)
    details, subset = paths.student_details(trained), paths.subset_file(trained.size)
    eval_metrics = read_json(details) if details.is_file() else {}  # every number; metrics/ holds the headline
    added = []
    if not tracking.retry(client.get_metric_history, run_id, tracking.CURVES["loss"]):
        if log_curve(client, run_id, log.get("log_history", [])):
            added.append("curve")
    # the registry's MLflow metrics only: the headline, the training summary; the rest is in the artifacts
    new = missing_metrics(client, run_id, tracking.training_metrics(log["summary"]))
    new.update(missing_metrics(client, run_id, for_mlflow(eval_metrics)))
    if new:
        tracking.retry(client.log_batch, run_id, metrics=[Metric(k, v, now_ms(), 0) for k, v in new.items()])
        added.append(f"{len(new)} metrics")
    if eval_metrics and not has_artifact(client, run_id, ADHERENCE_BY_TYPE):
        tracking.retry(client.log_dict, run_id, by_type(eval_metrics), ADHERENCE_BY_TYPE)
        added.append("adherence by type")
    if subset.is_file() and not has_dataset(client, run_id, subset):
        tracking.log_dataset(subset, "training", run_id=run_id)
        added.append("subset")
    if eval_metrics and paths.TEACHER_HELDOUT.is_file() and not has_dataset(client, run_id, paths.TEACHER_HELDOUT):
        tracking.log_dataset(paths.TEACHER_HELDOUT, "evaluation", run_id=run_id)
        added.append("held-out set")
    for artifact in (paths.student_samples(trained), details):
        if artifact.is_file() and not has_artifact(client, run_id, artifact.name):
            tracking.retry(client.log_artifact, run_id, str(artifact))
            added.append(artifact.parent.name)  # samples, details
    return added


def register_student(client, run_id: str, registered_name: str, trained: paths.Run) -> list[str]:
    """The run's model logged and registered, with the run's name as the alias of the checkout's version."""
    alias = trained.name
    version = model_version(client, registered_name, run_id)
    if version is None:
        with tracking.start_run("sync", trained.name, {}, run_id=run_id):  # log_model logs on the active run
            tracking.log_student_model(paths.student_dir(trained), registered_name, trained)
        return ["model"]
    model = tracking.retry(client.get_registered_model, registered_name)
    if str(model.aliases.get(alias)) != str(version.version):  # the checkout's model is the one the alias names
        tracking.retry(client.set_registered_model_alias, registered_name, alias, version.version)
        return [f"alias {alias}"]
    return []


def sync_simple(client, experiment_id: str, stage: str, run_name: str, outputs: list[Path], params: dict,
                metrics: dict, artifacts: list[Path], datasets: list[tuple[Path, str]] = (),
                history: list[dict] = ()) -> list[str]:
    """A run of its own (teacher generation, teacher eval, report, sweep): made whole once, then found by key.
    `history`: metrics logged at steps 0, 1, ... (the sweep's rounds)."""
    if not all(p.exists() for p in outputs):
        return []
    key, run = open_run(client, experiment_id, stage, None, outputs)
    if run is not None:
        return []
    tags = {**tracking.common_tags(stage, None, [p for p in outputs if p.exists()]), tracking.KEY_TAG: key,
            "kdscale.stage": stage, SYNC_TAG: "true"}
    run = tracking.retry(client.create_run, experiment_id, run_name=tracking.display_name(run_name, tags),
                         tags={**tags, **tracking.owner_tags()})
    run_id = run.info.run_id
    tracking.log_params_to(run_id, params)
    new = missing_metrics(client, run_id, metrics)
    if new:
        tracking.retry(client.log_batch, run_id, metrics=[Metric(k, v, now_ms(), 0) for k, v in new.items()])
    steps = [Metric(k, v, now_ms(), step) for step, row in enumerate(history) for k, v in row.items()]
    if steps:
        tracking.retry(client.log_batch, run_id, metrics=steps)
    for path in artifacts:
        if path.is_file():
            tracking.retry(client.log_artifact, run_id, str(path))
    for path, context in datasets:
        if path.is_file():
            tracking.log_dataset(path, context, run_id=run_id)
    tracking.retry(client.set_terminated, run_id, "FINISHED")
    return ["run"]


def report_metrics(record: StudyRecord) -> dict:
    """The report run's metrics, per student: each model's combined score (both formulas) and the scaling fit."""
    out = {}
    for name, summary in record.students.items():
        out |= {**{f"{name}.combined_score.{k}": v for k, v in summary.combined_score.items()},
                **{f"{name}.combined_score_seed.{k}": v for k, v in summary.combined_score_seed.items()},
                **{f"{name}.fit.{k}": v for k, v in (summary.perplexity_fit or {}).items()}}
    return out


def sweep_rounds(record: SweepRecord) -> list[dict]:
    """Each round's numbers as MLflow metrics (step = round): its size, each student's prediction and what it
    measured (`<student>.predicted`, ...), and the round's costs."""
    rows = []
    for r in record.rounds:
        row = {"size": r.size} if r.size else {}
        for student, p in (r.prediction or {}).items():
            if p and p.get("converged"):
                low, high = p["prediction_interval"]
                row |= {f"{student}.predicted": p["predicted"], f"{student}.predicted_low": low,
                        f"{student}.predicted_high": high}
        for student, o in (r.observed or {}).items():
            row |= {f"{student}.observed": o["value"], f"{student}.observed_low": o["ci"][0],
                    f"{student}.observed_high": o["ci"][1]}
        row |= {k: v for k, v in (r.measured or {}).items() if not k.endswith("_total")}
        rows.append(row)
    return rows


def trained_students(params) -> list[paths.Run]:
    """Every student of params.yaml that this checkout holds trained."""
    return [r for r in runs(params) if (paths.student_dir(r) / TRAINING_LOG).is_file()]


def sync() -> dict[str, list[str]]:
    """Fill the store from this checkout's outputs; returns {run name: what was added}.

    One sync at a time per SQLite store: the report stages of two `dvc queue` workers both end in a
    sync, and two syncs that find the same run missing would both make it."""
    with tracking.store_lock("sync"):
        return _sync()


def _sync() -> dict[str, list[str]]:
    experiment_id = tracking.setup()
    client = MlflowClient()
    params = load_params()
    done = {}
    if paths.TEACHER_GENERATION.is_file():
        timing = {k: v for k, v in read_json(paths.TEACHER_GENERATION).items() if isinstance(v, (int, float))}
        done["teacher-generation"] = sync_simple(
            client, experiment_id, "teacher", "teacher-generation", paths.TEACHER_OUTPUTS,
            tracking.teacher_run_params(params), timing, [paths.TEACHER_GENERATION],
            [(paths.POOL_PROMPTS, "generation"), (paths.HELDOUT_PROMPTS, "generation")])
    if paths.TEACHER_METRICS.is_file():
        done["teacher-filter"] = sync_simple(
            client, experiment_id, "teacher_filter", "teacher-filter",
            paths.FILTER_OUTPUTS, tracking.filter_run_params(params),
            {k: v for k, v in read_json(paths.TEACHER_METRICS).items() if isinstance(v, (int, float))},
            [paths.TEACHER_METRICS], [(paths.TEACHER_RAW, "filtering")])
    if paths.TEACHER_EVAL_DETAILS.is_file():
        done["teacher-eval"] = sync_simple(
            client, experiment_id, "evaluate_teacher", "teacher-eval",
            [paths.TEACHER_EVAL_METRICS, paths.TEACHER_SAMPLES], {},
            for_mlflow(read_json(paths.TEACHER_EVAL_DETAILS)),
            [paths.TEACHER_SAMPLES, paths.TEACHER_EVAL_DETAILS], [(paths.TEACHER_HELDOUT, "evaluation")])
    for trained in trained_students(params):
        done[trained.name] = sync_student(client, experiment_id, params, trained)
    if paths.SUMMARY_DETAILS.is_file():
        record = StudyRecord.read(paths.SUMMARY_DETAILS)
        # keyed by all it says: a new threshold rewrites the report but not the headline scores
        written = [p for p in (paths.SUMMARY, paths.SUMMARY_DETAILS, paths.REPORT, paths.ANSWERS) if p.is_file()]
        done["report"] = sync_simple(
            client, experiment_id, "report", "report", written,
            {"report": to_dict(params.report), "sizes": params.scaling.sizes, "students": list(params.students)},
            report_metrics(record),
            [paths.SCALING_FIGURE, paths.REPORT, paths.ANSWERS, paths.SUMMARY, paths.SUMMARY_DETAILS])
    if paths.SWEEP.is_file() and (record := SweepRecord.read(paths.SWEEP)).rounds:
        done["sweep"] = sync_simple(
            client, experiment_id, "sweep", "sweep", [paths.SWEEP], {"sweep": to_dict(params.sweep)},
            {"rounds": len(record.rounds) - 1, "stopped": float(record.stop is not None)}, [paths.SWEEP],
            history=sweep_rounds(record))
    return done


def main(argv=None) -> None:
    argparse.ArgumentParser(prog="kdscale sync", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    done = sync()
    for name, added in done.items():
        print(f"sync: {name}: {', '.join(added) if added else 'up to date'}")
    print(f"sync: {tracking.tracking_uri()} describes this checkout")


if __name__ == "__main__":
    from kdscale.cli import run

    run(main)
