"""`kdscale sync` builds the MLflow view from a checkout's outputs, once: a fresh store gets every run,
the model registry and its aliases; a second sync, or a sync after live logging, adds nothing.

The checkout is written by hand (the files the stages write, a tiny GPT-2 as the student) so the
tests need no `dvc repro`; tests/test_pipeline.py's reproduced project covers the live stages.
"""

from __future__ import annotations

import json
import shutil

import mlflow
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from conftest import STUDENT, run_of, tiny_params
from kdscale import paths, tracking
from kdscale.tracking import sync
from kdscale.jsonl import write_json, write_jsonl
from kdscale.records import StudyRecord, StudySummary
from kdscale.topk import build_store

SIZE = 8
RUN = run_of(SIZE)  # the tiny project's student at SIZE, with the project's seed: pruned1-n8-seed0
NAME = "kdscale-student"


def write_summary(score: float) -> None:
    """reports/summary_details.json and summary.json as the report writes them, for the one student."""
    name = f"student-n{SIZE}"  # the student's model as its own summary names it
    StudyRecord({STUDENT: StudySummary(
        weights={"perplexity": 0.4, "pass_rate": 0.4, "speed": 0.2}, lowest_perplexity=2.5,
        speed_term={name: 99.0, "teacher": 30.0}, fastest_architecture_speed=99.0, max_tokens_per_sec=99.0,
        normalisation="", combined_score={name: score, "teacher": 0.7}, combined_score_ci=None,
        combined_score_seed={name: score, "teacher": 0.7}, best_student_size=SIZE, runner_up=None,
        best_student_separated=None, rankings={"params": ["teacher", name]},
        rankings_with_ties={"params": f"teacher, {name}"}, score_uncertainty="none", vs_teacher={},
        optimizer_steps={name: 3}, perplexity_steps=[], perplexity_fit=None, fit_backtest=None,
        doubling_gain_below_threshold_at=None, seeds={SIZE: 1}, diminishing_returns=None, adherence_power={},
        teacher_generation_seconds=1.0, total_train_seconds=1.0)}).write(paths.SUMMARY_DETAILS, paths.SUMMARY)

@pytest.fixture()
def checkout(tmp_path, monkeypatch, tiny_gpt2_dir):
    """A project's outputs as `dvc pull` leaves them: files only, an empty MLflow store."""
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID",
                "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV", "KDSCALE_STUDY"):
        monkeypatch.delenv(key, raising=False)
    root = tmp_path / "clone"
    root.mkdir()
    monkeypatch.chdir(root)
    monkeypatch.setenv("DVC_ROOT", str(root))
    monkeypatch.setattr(tracking, "_setup_uri", None)
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(tiny_gpt2_dir)))
    prompts = [{"id": f"p{i}", "instruction": f"Say {i}.", "input": ""} for i in range(12)]
    answers = [{**p, "response": f"{i}.", "finish_reason": "eos", "n_tokens": 2} for i, p in enumerate(prompts)]
    write_jsonl(paths.POOL_PROMPTS, prompts[:10])
    write_jsonl(paths.HELDOUT_PROMPTS, prompts[10:])
    write_jsonl(paths.TEACHER_POOL, answers[:10])
    write_jsonl(paths.TEACHER_HELDOUT, answers[10:])
    write_jsonl(paths.TEACHER_RAW, answers)
    write_json(paths.TEACHER_GENERATION, {"generated_answers": 12, "session_seconds": 3.4, "device": "cpu"})
    build_store([a["id"] for a in answers], [[5, 2]] * len(answers),
                [(torch.zeros(2, 3, dtype=torch.int32), torch.zeros(2, 3))] * len(answers), 3
                ).save(paths.TEACHER_GENERATED_TOPK)  # the top-k the teacher kept while generating
    write_json(paths.TEACHER_METRICS, {"answers": 12, "dropped": 0, "tokens_per_sec": 3.5, "finish_eos": 12})
    write_jsonl(paths.subset_file(SIZE), answers[:SIZE])
    student = paths.student_dir(RUN)
    shutil.copytree(tiny_gpt2_dir, student)
    history = [{"loss": 3.0 - step / 10, "learning_rate": 1e-3, "grad_norm": 1.5, "step": step} for step in (1, 2, 3)]
    write_json(student / "training_log.json", {"summary": {"size": SIZE, "final_loss": 2.7, "optimizer_steps": 3,
                                                           "train_seconds": 1.0, "world_size": 1, "parameters": 9},
                                               "log_history": history + [{"train_runtime": 1.0, "step": 3}]})
    tracking.write_run_id(student, "f" * 32)  # the run id of the machine that trained it: unknown here
    details = {"size": SIZE, "perplexity": 40.5, "pass_rate": 0.25, "tokens_per_sec": 99.0, "model_size_mb": 0.1,
               "latency_mean_s": 1.3, "type_pass_rate.json": 0.5, "type_prompts.json": 2}
    write_json(paths.student_details(RUN), details)
    write_json(paths.student_metrics(RUN), {k: v for k, v in details.items() if k != "latency_mean_s"})
    write_jsonl(paths.student_samples(RUN), [{"id": "p10", "response": "hi"}])
    write_json(paths.TEACHER_EVAL_DETAILS, {"perplexity": 2.5, "pass_rate": 0.5, "latency_mean_s": 4.0})
    write_json(paths.TEACHER_EVAL_METRICS, {"perplexity": 2.5, "pass_rate": 0.5})
    write_jsonl(paths.TEACHER_SAMPLES, [{"id": "p10", "response": "hello"}])
    (root / "reports").mkdir()
    write_summary(0.5)
    (paths.REPORTS_DIR / "report.md").write_text("# report\n")
    yield root
    while mlflow.active_run():
        mlflow.end_run()


def counts() -> dict:
    """Runs, model versions and metric rows (every logged value, history included) of the store."""
    client = MlflowClient(tracking.tracking_uri())
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000)
    rows = sum(len(client.get_metric_history(r.info.run_id, key)) for r in runs for key in r.data.metrics)
    versions = client.search_model_versions(f"name = '{NAME}'")
    return {"runs": len(runs), "versions": len(versions), "metric_rows": rows,
            "params": sum(len(r.data.params) for r in runs), "inputs": sum(len(r.inputs.dataset_inputs) for r in runs)}


def test_sync_builds_the_full_view_in_a_fresh_clone_once(checkout, capsys):
    sync.main([])
    before = counts()
    assert before["runs"] == 5 and before["versions"] == 1 and before["metric_rows"] > 0 and before["inputs"] == 6
    sync.main([])
    assert counts() == before  # the second sync adds nothing
    assert capsys.readouterr().out.count("up to date") == 5

    done = sync.sync()
    assert set(done) == {"teacher-generation", "teacher-filter", "teacher-eval", RUN.name, "report"}
    client = MlflowClient()
    runs = {r.info.run_name: r for r in client.search_runs([tracking.setup()], max_results=100)}
    assert set(runs) == {"teacher-generation", "teacher-filter", "teacher-eval", RUN.name, "report"}
    assert {r.info.status for r in runs.values()} == {"FINISHED"}

    student = runs[RUN.name]
    run_id = student.info.run_id
    assert student.data.tags["kdscale.original_run_id"] == "f" * 32
    assert student.data.tags[tracking.KEY_TAG] == tracking.run_key("train", RUN, [paths.student_dir(RUN)])
    assert {k: student.data.tags[f"kdscale.{k}"] for k in ("student", "size", "seed")} == \
        {"student": STUDENT, "size": str(SIZE), "seed": str(RUN.seed)}
    assert student.data.params["train.learning_rate"] and student.data.params["size"] == str(SIZE)
    assert [m.value for m in client.get_metric_history(run_id, "Training/loss")] == pytest.approx([2.9, 2.8, 2.7])
    assert student.data.metrics["eval/perplexity"] == 40.5 and student.data.metrics["final_loss"] == 2.7
    assert {f.path for f in client.list_artifacts(run_id)} >= {paths.student_samples(RUN).name}
    assert client.get_run(run_id).data.tags["kdscale.model_uri"] == f"models:/{NAME}/1"
    datasets = {(d.dataset.name, d.dataset.digest) for d in student.inputs.dataset_inputs}
    assert datasets == {(paths.subset_file(SIZE).as_posix(), tracking.data_md5([paths.subset_file(SIZE)])),
                        (paths.TEACHER_HELDOUT.as_posix(), tracking.data_md5([paths.TEACHER_HELDOUT]))}

    version = client.get_model_version_by_alias(NAME, RUN.name)  # models:/kdscale-student@pruned1-n8-seed0
    assert version.run_id == run_id
    assert version.tags["kdscale.student"] == STUDENT and version.tags["kdscale.size"] == str(SIZE)
    answers = mlflow.pyfunc.load_model(f"models:/{NAME}@{RUN.name}").predict(["Say hi."], params={"max_new_tokens": 2})
    assert len(answers) == 1 and isinstance(answers[0], str)

    assert runs["teacher-generation"].data.metrics["generated_answers"] == 12
    assert runs["teacher-generation"].data.params["teacher.max_new_tokens"] == "12"
    assert runs["teacher-filter"].data.metrics["finish_eos"] == 12
    assert runs["teacher-filter"].data.params["teacher.filters.repetition"] in {"True", "False"}
    assert runs["teacher-eval"].data.metrics["eval/perplexity"] == 2.5
    # the registry's MLflow metrics, not every number of the details: those stay in the details artifact,
    # and the per-type pass rates in one table artifact instead of a chart each
    assert set(student.data.metrics) == {"Training/loss", "Training steps/learning_rate", "Training steps/grad_norm",
                                         "final_loss",
                                         "optimizer_steps", "train_seconds", "eval/perplexity", "eval/pass_rate",
                                         "eval/tokens_per_sec", "eval/model_size_mb"}
    assert "eval/latency_mean_s" not in runs["teacher-eval"].data.metrics
    artifacts = {f.path for f in client.list_artifacts(run_id)}
    assert {paths.student_details(RUN).name, sync.ADHERENCE_BY_TYPE} <= artifacts
    by_type = mlflow.artifacts.load_dict(f"runs:/{run_id}/{sync.ADHERENCE_BY_TYPE}")
    assert by_type == {"json": {"pass_rate": 0.5, "prompts": 2}}
    assert {f.path for f in client.list_artifacts(runs["report"].info.run_id)} >= {"report.md", "summary.json"}
    # the report's metrics, under the student they are about
    assert runs["report"].data.metrics[f"{STUDENT}.combined_score.student-n{SIZE}"] == 0.5
    assert runs["report"].data.metrics[f"{STUDENT}.combined_score.teacher"] == 0.7


def test_sync_completes_a_live_run_and_follows_a_new_evaluation(checkout):
    """A run logged live (found by the id beside the model) gets only what it lacks; a changed
    metrics file (re-evaluated) updates the run's metrics, once."""
    student = paths.student_dir(RUN)
    tracking.setup()
    with tracking.start_run("train", RUN.name, {}, outputs=[student], student=RUN) as live:
        tracking.log_metrics({"Training/loss": 2.9}, step=1)
        tracking.write_run_id(student, live.info.run_id)  # as train does, before the run ends and takes its key
    sync.sync()
    client = MlflowClient()
    assert counts()["runs"] == 5  # no second student run
    got = client.get_run(live.info.run_id)
    assert len(client.get_metric_history(live.info.run_id, "Training/loss")) == 1  # the live curve is kept
    assert got.data.metrics["eval/perplexity"] == 40.5
    assert client.get_model_version_by_alias(NAME, RUN.name).run_id == live.info.run_id

    metrics = json.loads(paths.student_details(RUN).read_text())
    write_json(paths.student_details(RUN), {**metrics, "perplexity": 30.0})
    sync.sync()
    before = counts()
    assert client.get_run(live.info.run_id).data.metrics["eval/perplexity"] == 30.0
    sync.sync()
    assert counts() == before


def test_sync_registers_a_retrained_model_and_moves_its_alias(checkout):
    """A run is keyed by the md5 of what it describes: new weights in models/STUDENT/nN-seedS (retrained
    elsewhere, then pulled) are a new run and a new model version that @STUDENT-nN-seedS names; a rerun
    report is a new report run. The old run keeps its version; a sync with nothing changed adds nothing."""
    from safetensors.torch import load_file, save_file

    sync.sync()
    client = MlflowClient()
    old = client.get_model_version_by_alias(NAME, RUN.name)
    old_report = {r.info.run_id for r in client.search_runs([tracking.setup()], "attributes.run_name = 'report'")}
    student = paths.student_dir(RUN)
    old_key = tracking.run_key("train", RUN, [student])

    weights = student / "model.safetensors"  # retrained: the same architecture, other weights
    save_file({k: v + 0.01 if v.is_floating_point() else v for k, v in load_file(weights).items()}, weights,
              metadata={"format": "pt"})
    tracking.write_run_id(student, "e" * 32)  # the retraining's run, in another machine's store
    log = json.loads((student / "training_log.json").read_text())
    write_json(student / "training_log.json", {**log, "summary": {**log["summary"], "final_loss": 2.5}})
    write_summary(0.6)
    done = sync.sync()
    assert "run" in done[RUN.name] and "model" in done[RUN.name], done
    assert done["report"] == ["run"], done

    new = client.get_model_version_by_alias(NAME, RUN.name)
    assert int(new.version) == int(old.version) + 1 and new.run_id != old.run_id
    assert len(client.search_model_versions(f"name = '{NAME}'")) == 2
    run = client.get_run(new.run_id)
    assert run.data.tags[tracking.KEY_TAG] == tracking.run_key("train", RUN, [student]) != old_key
    assert run.data.tags["kdscale.original_run_id"] == "e" * 32 and run.data.metrics["final_loss"] == 2.5
    assert client.get_model_version(NAME, old.version).run_id == old.run_id  # the old model stays registered
    assert client.get_run(old.run_id).data.metrics["final_loss"] == 2.7  # and its run describes it still
    reports = {r.info.run_id: r for r in client.search_runs([tracking.setup()], "attributes.run_name = 'report'")}
    assert len(reports) == 2 and old_report < set(reports)
    assert {r.data.metrics[f"{STUDENT}.combined_score.student-n{SIZE}"] for r in reports.values()} == {0.5, 0.6}

    before = counts()
    assert not any(sync.sync().values())  # nothing changed: nothing added, the alias stays
    assert counts() == before and client.get_model_version_by_alias(NAME, RUN.name).version == new.version


# ----------------------------------------------------------------------------- on the reproduced tiny project

def store_counts(db) -> dict:
    from test_pipeline import all_runs, mlflow_client

    client = mlflow_client(db)
    runs = all_runs(client)
    return {"runs": len(runs), "versions": len(client.search_model_versions(f"name = '{NAME}'")),
            "metric_rows": sum(len(client.get_metric_history(r.info.run_id, k)) for r in runs for k in r.data.metrics),
            "running": sum(r.info.status == "RUNNING" for r in runs)}


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory, tiny_gpt2_dir):
    from test_pipeline import reproduced_project

    return reproduced_project(tmp_path_factory, tiny_gpt2_dir)


@pytest.mark.slow
def test_sync_after_repro_adds_nothing_and_a_fresh_clone_gets_the_full_view(reproduced, tmp_path):
    from test_pipeline import all_runs, commit_all, copy_project, mlflow_client, sh

    project = copy_project(reproduced[0], tmp_path / "project", fresh_store=False)
    live = store_counts(project / "mlflow.db")
    out = sh(["kdscale", "sync"], project).stdout
    assert store_counts(project / "mlflow.db") == live, out  # every stage logged live, with its key
    assert out.count("up to date") == live["runs"], out

    remote = tmp_path / "remote"
    sh(["dvc", "remote", "add", "-f", "-d", "local", str(remote)], project)
    sh(["dvc", "push"], project)
    commit_all(project, "remote")
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    sh(["dvc", "pull"], clone)
    assert not (clone / "mlflow.db").exists()
    sh(["kdscale", "sync"], clone)
    view = store_counts(clone / "mlflow.db")
    assert view["runs"] == live["runs"] and view["versions"] == live["versions"] and view["running"] == 0
    sh(["kdscale", "sync"], clone)
    assert store_counts(clone / "mlflow.db") == view
    client = mlflow_client(clone / "mlflow.db")
    stages = sorted(r.data.tags["kdscale.stage"] for r in all_runs(client))
    assert stages == sorted(["teacher", "teacher_filter", "evaluate_teacher", "report"] + ["train"] * 2), stages
    script = (f"import mlflow; mlflow.set_tracking_uri('sqlite:///{clone / 'mlflow.db'}'); "
              f"print(mlflow.pyfunc.load_model('models:/{NAME}@{run_of(8).name}').predict(['Say hi.'], "
              f"params={{'max_new_tokens': 2}}))")
    assert sh(["python", "-c", script], clone).stdout.startswith("[")


@pytest.mark.slow
def test_run_cache_restore_then_sync_gives_the_view_of_the_real_run(reproduced, tmp_path):
    """Stages that DVC restores from its run-cache start no process and log nothing; sync fills the view."""
    from test_pipeline import RUNS, copy_project, sh, stage, stages_run

    live = store_counts(reproduced[0] / "mlflow.db")
    project = copy_project(reproduced[0], tmp_path / "project")  # an empty MLflow store
    for run in RUNS:
        shutil.rmtree(project / paths.student_dir(run))
    repro = sh(["dvc", "repro"], project).stdout
    assert not stages_run(repro), repro
    for run in RUNS:
        assert f"Stage '{stage('train', run)}' is cached - skipping run, checking out outputs" in repro, repro
    assert not (project / "mlflow.db").exists() or store_counts(project / "mlflow.db")["runs"] == 0

    sh(["kdscale", "sync"], project)
    view = store_counts(project / "mlflow.db")
    assert (view["runs"], view["versions"], view["running"]) == (live["runs"], live["versions"], 0), (view, live)
    sh(["kdscale", "sync"], project)
    assert store_counts(project / "mlflow.db") == view  # runs, versions and metric rows


def running_runs(db) -> int:
    """RUNNING runs, read with sqlite3: an MLflow client would race the stage's schema migrations."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("SELECT count(*) FROM runs WHERE status = 'RUNNING'").fetchone()[0]
    except sqlite3.Error:  # not there yet, or not migrated yet
        return 0


@pytest.mark.slow
def test_sigkill_during_a_stage_then_repro_leaves_no_run_running(reproduced, tmp_path):
    import os
    import signal
    import subprocess
    import time

    from test_pipeline import GIT_IDENTITY, copy_project, mlflow_client, sh, stage
    from conftest import project_env

    project = copy_project(reproduced[0], tmp_path / "project")
    db = project / "mlflow.db"
    proc = subprocess.Popen(["dvc", "repro", "--single-item", "--force", stage("train", run_of(16))], cwd=project,
                            env={**project_env(project), **GIT_IDENTITY}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None and not running_runs(db):
            time.sleep(0.5)
        assert proc.poll() is None and running_runs(db) == 1, "the train stage never opened its run"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # As `make run` does: the repro may restore train@pruned1-16-0 from the run-cache (no stage process starts
    # to notice the dead run), and sync closes it then.
    sh(["dvc", "repro"], project)
    sh(["kdscale", "sync"], project)
    runs = mlflow_client(db).search_runs([e.experiment_id for e in mlflow_client(db).search_experiments()])
    assert "RUNNING" not in {r.info.status for r in runs}, [(r.info.run_name, r.info.status) for r in runs]
    assert "KILLED" in {r.info.status for r in runs}
