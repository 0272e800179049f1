"""`kdscale sweep`: its decisions on a study's numbers, and whole sweeps through real DVC on the tiny models.

The decisions (next size, pool, cost, every stop) are checked on made-up studies; the runs check what a
user relies on: a sweep stops by its rule or its budget, survives SIGKILL, retrains nothing it already
trained, and asks the teacher each prompt once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from conftest import STUDENT as TINY, make_project, project_env, run_of
from kdscale import paths, sweep
from kdscale.config import parse_params
from kdscale.profile import profile_params
from kdscale.records import StudyRecord, StudySummary, SweepRecord, SweepRound
from test_pipeline import all_runs, commit_all, copy_project, mlflow_client, reproduced_project, sh
from test_workflow import show_experiments


# ----------------------------------------------------------------------------- decisions on made-up studies

def curve(sizes: list[int], floor: float = 2.0, b: float = 2000.0, alpha: float = 0.8) -> dict[int, float]:
    return {n: floor + b * n**-alpha if n else 3000.0 for n in sizes}  # 0: the untrained student, not fitted


def summary_of(values: dict[int, float], steps: list[dict] | None = None, stops_at: dict | None = None,
               fit: dict | None = None, seeds: dict | None = None) -> StudySummary:
    """One student's summary as the sweep reads it: per-size levels, the rule's steps and stop, the fit, seeds."""
    summary = StudySummary(**{f.name: None for f in fields(StudySummary)})
    summary.diminishing_returns = {
        "per_size": {str(n): {"perplexity": {"value": v, "ci": [v * 0.9, v * 1.1]}} for n, v in values.items()},
        "steps": {"perplexity": steps or []}, "stops_at": {"perplexity": stops_at}}
    summary.perplexity_fit, summary.seeds = fit, seeds or {n: 1 for n in values}
    return summary


def made_study(values: dict[int, float], pool: int = 700, available: int = 5000, kept: float = 0.9,
               steps: list[dict] | None = None, stops_at: dict | None = None, fit: dict | None = None,
               seeds: dict | None = None, others: dict[str, StudySummary] | None = None,
               **sweep_params) -> sweep.Study:
    """A made-up study: its first student, pruned10, has `values` per size; `others` adds students."""
    params = profile_params("embedded")
    params["scaling"]["sizes"] = sorted(values)
    params["data"]["pool_size"] = pool
    params["sweep"].update(sweep_params)
    params["students"] |= {name: {"num_layers": 3} for name in others or {}}
    record = StudyRecord({STUDENT: summary_of(values, steps, stops_at, fit, seeds)} | (others or {}))
    generation = {"answers": 1000, "kept": round(1000 * kept), "generated_tokens": 50_000, "generation_seconds": 500.0}
    study = sweep.Study(parse_params(params), record, generation, available)
    details = {n: {"train_seconds": 0.5 * n, "eval_seconds": 30.0} for n in values}
    study.details = lambda run: details[run.size]
    return study


def plan(study: sweep.Study, record: SweepRecord | None = None, stops: dict | None = None):
    return sweep.plan_next(study, record or SweepRecord("perplexity"), {} if stops is None else stops)


STUDENT = "pruned10"  # the embedded profile's student


def test_the_next_size_doubles_the_largest_with_a_prediction_and_the_measured_costs():
    study = made_study(curve([0, 20, 40, 80, 160, 320, 640]), price_per_million_tokens=2.0)
    grown = plan(study)
    assert (grown.kind, grown.size) == ("grow", 1280)
    assert grown.pool_size == 1565  # 1,280 answers at the measured 90% keep rate, with 10% to spare
    prediction = grown.prediction[STUDENT]
    assert prediction["fitted_sizes"] == [40, 80, 160, 320, 640]  # the largest five
    low, high = prediction["prediction_interval"]
    assert low < prediction["predicted"] < high and abs(prediction["predicted"] - curve([1280])[1280]) < 0.5
    cost = grown.predicted_cost
    assert cost["teacher_answers"] == 865 and cost["teacher_tokens"] == 865 * 50
    assert cost["teacher_seconds"] == pytest.approx(865 * 0.5)
    assert cost["train_seconds"] == pytest.approx(0.5 * 1280) and cost["eval_seconds"] == pytest.approx(30.0)
    assert cost["money"] == pytest.approx(865 * 50 / 1e6 * 2.0)


def test_a_flat_forecast_stops_its_student_before_the_round_is_spent():
    flat = curve([0, 20, 40, 80, 160, 320, 640], floor=20.0, b=100.0, alpha=1.5)
    stops = {}
    stop = plan(made_study(flat), stops=stops)
    assert stop["reason"] == "students" and stop["next_size"] == 1280
    assert stops[STUDENT]["reason"] == "prediction" and "a forecast, not a measurement" in stops[STUDENT]["why"]
    assert plan(made_study(flat, stop_on_prediction=False)).size == 1280


def test_the_sweep_grows_while_one_student_still_pays_and_records_the_others_stop():
    flat = curve([0, 20, 40, 80, 160, 320, 640], floor=20.0, b=100.0, alpha=1.5)
    study = made_study(curve([0, 20, 40, 80, 160, 320, 640]), others={"pruned3": summary_of(flat)})
    stops = {}
    grown = plan(study, stops=stops)
    assert grown.size == 1280 and set(grown.prediction) == {STUDENT, "pruned3"}
    assert list(stops) == ["pruned3"] and stops["pruned3"]["reason"] == "prediction"
    assert grown.predicted_cost["train_seconds"] == pytest.approx(2 * 0.5 * 1280)  # both students train at 1,280


def test_max_size_caps_the_last_size_then_stops_the_sweep_by_budget():
    assert plan(made_study(curve([0, 20, 40, 80, 160, 320]), max_size=500)).size == 500
    assert plan(made_study(curve([0, 20, 40, 80, 160, 500]), max_size=500))["reason"] == "budget"


def test_token_and_hour_budgets_stop_before_a_round_that_would_pass_them():
    tokens = made_study(curve([0, 20, 40, 80, 160, 320]), max_teacher_tokens=52_000)  # 50,000 spent, 83 answers x 50 to come
    stop = plan(tokens)
    assert stop["reason"] == "budget" and "max_teacher_tokens" in stop["why"]
    hours = made_study(curve([0, 20, 40, 80, 160, 320]), max_hours=0.1)
    spent = SweepRound(0, "start", None, 700, None, {}, measured={"wall_seconds": 300.0})
    stop = plan(hours, SweepRecord("perplexity", [spent]))
    assert stop["reason"] == "budget" and "max_hours" in stop["why"]


def test_the_last_step_goes_to_the_limit_of_the_source_then_the_source_stops_the_sweep():
    last = plan(made_study(curve([0, 20, 40, 80, 160, 320]), pool=400, available=550))  # 550 keep about 485 answers
    assert last.size == 480 and last.pool_size == 550  # 1.5x the largest: a shorter last step, the whole source
    stop = plan(made_study(curve([0, 20, 40, 80, 160, 320]), pool=400, available=400))  # 350: not 25% over 320
    assert stop["reason"] == "source" and "add prompts to data.source" in stop["why"]
    assert stop["prediction"][STUDENT]["converged"]  # what the next doubling would bring, as a forecast


STOPS = {"from": 160, "to": 320, "gain": 0.01, "gain_ci": [0.0, 0.03], "relative_gain": 0.01,
         "relative_gain_ci": [0.0, 0.03], "verdict": "stops", "why": "its whole interval lies below a 5% gain"}


def test_the_rule_stops_a_student_after_its_confirmation_seeds_ran():
    values = curve([0, 20, 40, 80, 160, 320])
    unconfirmed = made_study(values, steps=[STOPS], stops_at=STOPS, confirm_seeds=[1, 2])
    assert sweep.rule_stop(unconfirmed, STUDENT) == {"confirm": [160, 320]}
    confirmed = made_study(values, steps=[STOPS], stops_at=STOPS, confirm_seeds=[1, 2],
                           seeds={0: 1, 20: 1, 40: 1, 80: 1, 160: 3, 320: 3})
    stop = sweep.rule_stop(confirmed, STUDENT)
    assert stop["reason"] == "rule" and "n=160 to n=320" in stop["why"] and "3 seed(s)" in stop["why"]
    assert sweep.student_stops(confirmed, SweepRecord("perplexity", [SweepRound(0, "start", None, 700, None, {})])) \
        == {STUDENT: stop | {"round": 0}}
    unresolved = made_study(values, steps=[STOPS], stops_at=STOPS | {"verdict": "unresolved", "then_stops_at": None})
    assert sweep.rule_stop(unresolved, STUDENT) is None


def test_a_target_reached_stops_the_student():
    values = curve([0, 20, 40, 80, 160, 320])
    assert sweep.target_stop(made_study(values, target=values[320] + 1), STUDENT)["reason"] == "target"
    assert sweep.target_stop(made_study(values, target=values[320] - 1), STUDENT) is None


def test_rounds_add_replicates_the_size_and_the_larger_adherence_sets_size():
    params = made_study(curve([0, 20, 40, 80, 160, 320]), confirm_seeds=[1]).params
    confirm = SweepRound(1, "confirm", None, 700, None, {"sizes": [160, 320]})
    assert sweep.round_changes(params, confirm) == {"scaling": {"replicate_sizes": [160, 320], "replicate_seeds": [1]}}
    grow = SweepRound(1, "grow", 640, 800, None, {})
    assert sweep.round_changes(params, grow) == {"data": {"pool_size": 800},
                                                 "scaling": {"sizes": [0, 20, 40, 80, 160, 320, 640]}}
    params.eval.adherence_set_sizes = [0, 320]
    assert sweep.round_changes(params, grow)["eval"] == {"adherence_set_sizes": [0, 320, 640]}


def test_before_the_sweep_stops_its_confirm_seeds_train_at_the_largest_size_then_the_one_before():
    study = made_study(curve([0, 20, 40, 80, 160, 320]), confirm_seeds=[1, 2])
    record = SweepRecord("perplexity")
    assert sweep.closing_confirm(study, record).predicted_cost["sizes"] == [320]
    study.params.scaling.replicate_sizes, study.params.scaling.replicate_seeds = [320], [1, 2]
    assert sweep.closing_confirm(study, record).predicted_cost["sizes"] == [160]
    study.params.scaling.replicate_sizes = [160, 320]
    assert sweep.closing_confirm(study, record) is None
    assert sweep.closing_confirm(made_study(curve([0, 20, 40, 80, 160, 320])), record) is None  # no confirm seeds


# ----------------------------------------------------------------------------- whole sweeps through DVC

def lock_outs(project: Path) -> dict[str, str]:
    """Every output's md5 in dvc.lock, by path."""
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    return {o["path"]: o["md5"] for stage in lock.values() for o in stage.get("outs", [])}


def sweep_project(tmp_path: Path, teacher_dir: Path, **overrides) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    make_project(project, teacher_dir, **overrides)
    commit_all(project, "tiny study")
    return project


@pytest.mark.slow
def test_a_killed_sweep_resumes_to_its_budget_retraining_nothing_and_asking_each_prompt_once(tmp_path, tiny_gpt2_dir):
    # A random teacher's curve is flat, and its steps could stop the rule: a threshold no step falls under
    # leaves the budget (max_size 32) as the only stop.
    # A pool of 34 holds the pruned student's 32 calibration answers (student_init), so growing it keeps them.
    project = sweep_project(tmp_path, tiny_gpt2_dir, data={"pool_size": 34, "heldout_size": 6},
                            scaling={"sizes": [0, 2, 4, 8, 16]}, report={"doubling_gain_threshold": -1e9},
                            train={"max_length": 512},  # the first answers in pool order run long
                            sweep={"max_size": 32})
    sh(["dvc", "repro"], project)
    before = lock_outs(project)

    log = open(tmp_path / "sweep.log", "w")
    first = subprocess.Popen(["kdscale", "sweep"], cwd=project, env=project_env(project), stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 600
    while f"Running stage 'train@{TINY}-32-0'" not in (tmp_path / "sweep.log").read_text():
        assert first.poll() is None and time.time() < deadline, (tmp_path / "sweep.log").read_text()
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # the sweep, DVC and the training stage, mid-round
    first.wait()
    record = json.loads((project / paths.SWEEP).read_text())
    assert [r["size"] for r in record["rounds"]] == [None, 32] and record["rounds"][1]["measured"] is None

    resumed = sh(["kdscale", "sweep"], project, timeout=900)
    assert "sweep: stopped (budget): n=32 reached sweep.max_size 32" in resumed.stdout, resumed.stdout
    record = SweepRecord.read(project / paths.SWEEP)
    assert [(r.kind, r.size) for r in record.rounds] == [("start", None), ("grow", 32)]
    grown = record.rounds[1]
    prediction, observed = grown.prediction[TINY], grown.observed[TINY]
    assert prediction["fitted_sizes"] == [2, 4, 8, 16] and observed["value"] > 1
    if prediction["converged"]:
        low, high = prediction["prediction_interval"]
        assert observed["inside"] == (low <= observed["value"] <= high)
    assert grown.measured["teacher_answers"] > 0 and 0 <= grown.measured["overhead_share"] < 1

    after = lock_outs(project)
    for path, md5 in before.items():  # every existing subset, student and evaluation is untouched
        if path.startswith(("data/subsets/", f"models/{TINY}/", f"metrics/{TINY}-", f"samples/{TINY}-")):
            assert after[path] == md5, path
    assert after["data/subsets/n32.jsonl"] and yaml.safe_load((project / "params.yaml").read_text())["scaling"][
        "sizes"] == [0, 2, 4, 8, 16, 32]
    asked = [json.loads(line)["id"] for f in (project / paths.PROGRESS_DIR).glob("teacher-*.jsonl")
             for line in f.read_text().splitlines()]
    assert len(asked) == len(set(asked)) > 40, "the teacher answered a prompt twice"
    report = (project / paths.REPORT).read_text()
    assert "## The sweep" in report and "Stopped (budget)" in report and "Coverage:" in report
    assert "Data and pipelines are up to date." in sh(["dvc", "status"], project).stdout


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory, tiny_gpt2_dir):
    return reproduced_project(tmp_path_factory, tiny_gpt2_dir)


@pytest.mark.slow
def test_a_flat_curve_stops_by_the_rule_once_its_confirmation_seed_agrees(reproduced, tmp_path):
    project = copy_project(reproduced[0], tmp_path / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["sweep"]["confirm_seeds"] = [1]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = sh(["kdscale", "sweep"], project, timeout=900).stdout
    assert "round 1 (confirm)" in out and "sweep: stopped (students): every student has stopped" in out, out
    record = SweepRecord.read(project / paths.SWEEP)
    assert [r.kind for r in record.rounds] == ["start", "confirm"] and record.stop["reason"] == "students"
    stop = record.student_stops[TINY]
    assert stop["reason"] == "rule" and "perplexity from n=8 to n=16" in stop["why"] and "2 seed(s)" in stop["why"]
    assert (project / paths.student_dir(run_of(16, 1)) / "model.safetensors").is_file()
    assert f"The sweep** stopped {TINY} after round 1 (rule)" in (project / paths.REPORT).read_text()
    sweeps = [r for r in all_runs(mlflow_client(project / "mlflow.db")) if r.data.tags["kdscale.stage"] == "sweep"]
    final = [r.data.metrics for r in sweeps if r.data.metrics["stopped"] == 1]  # one run per state of the record
    assert len(final) == 1 and final[0]["rounds"] == 1


@pytest.mark.parametrize("change, message", [
    ({"sweep": {"max_size": 16}}, "sweep.max_size 16 is not above the largest size 16: nothing left to grow"),
    ({"sweep": {"growth": 1.0}}, "'sweep.growth' must be above 1"),
    ({"sweep": {"confirm_seeds": [0]}}, "'sweep.confirm_seeds' must list extra seeds once each"),
    ({"sweep": {"metric": "pass_rate", "target": 30}}, "its 'sweep.target' lies in 0..1"),
])
def test_a_sweep_with_nothing_to_grow_or_contradictory_limits_fails_in_one_line(tmp_path, tiny_gpt2_dir,
                                                                               change, message):
    project = tmp_path / "project"
    project.mkdir()
    make_project(project, tiny_gpt2_dir, **change)
    params_before = (project / "params.yaml").read_text()
    result = subprocess.run(["kdscale", "sweep"], cwd=project, env=project_env(project), capture_output=True,
                            text=True)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert (project / "params.yaml").read_text() == params_before
    assert SweepRecord.read(project / paths.SWEEP).rounds == []  # nothing half-written


@pytest.mark.slow
def test_a_sweep_run_as_experiments_lists_each_round_in_dvc_exp_show(reproduced, tmp_path):
    project = copy_project(reproduced[0], tmp_path / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["sweep"]["max_size"] = 24
    params["report"]["doubling_gain_threshold"] = -1e9  # the flat tiny curve must not stop by the rule
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    commit_all(project, "a sweep to 24")
    out = sh(["kdscale", "sweep", "--exp", "grow"], project, timeout=900).stdout
    assert "sweep: stopped (budget)" in out, out
    shown = show_experiments(project)
    assert {"grow-r0", "grow-r1"} <= set(shown), set(shown)
    sizes = shown["grow-r1"]["data"]["params"]["params.yaml"]["data"]["scaling"]["sizes"]
    assert sizes == [8, 16, 24]
