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

from conftest import make_project, project_env
from kdscale import paths, sweep
from kdscale.config import parse_params
from kdscale.profile import profile_params
from kdscale.records import StudySummary, SweepRecord, SweepRound
from test_pipeline import all_runs, commit_all, copy_project, mlflow_client, reproduced_project, sh
from test_workflow import show_experiments


# ----------------------------------------------------------------------------- decisions on made-up studies

def curve(sizes: list[int], floor: float = 2.0, b: float = 2000.0, alpha: float = 0.8) -> dict[int, float]:
    return {n: floor + b * n**-alpha if n else 3000.0 for n in sizes}  # 0: the untrained student, not fitted


def made_study(values: dict[int, float], pool: int = 700, available: int = 5000, kept: float = 0.9,
               steps: list[dict] | None = None, stops_at: dict | None = None, fit: dict | None = None,
               seeds: dict | None = None, **sweep_params) -> sweep.Study:
    params = profile_params("embedded")
    params["scaling"]["sizes"] = sorted(values)
    params["data"]["pool_size"] = pool
    params["sweep"].update(sweep_params)
    summary = StudySummary(**{f.name: None for f in fields(StudySummary)})
    summary.diminishing_returns = {
        "per_size": {str(n): {"perplexity": {"value": v, "ci": [v * 0.9, v * 1.1]}} for n, v in values.items()},
        "steps": {"perplexity": steps or []}, "stops_at": {"perplexity": stops_at}}
    summary.perplexity_fit, summary.seeds = fit, seeds or {n: 1 for n in values}
    generation = {"answers": 1000, "kept": round(1000 * kept), "generated_tokens": 50_000, "generation_seconds": 500.0}
    study = sweep.Study(parse_params(params), summary, generation, available)
    details = {n: {"train_seconds": 0.5 * n, "eval_seconds": 30.0} for n in values}
    study.details = lambda size, seed=None: details[size]
    return study


def test_the_next_size_doubles_the_largest_with_a_prediction_and_the_measured_costs():
    study = made_study(curve([0, 20, 40, 80, 160, 320, 640]), price_per_million_tokens=2.0)
    plan = sweep.plan_next(study, SweepRecord("perplexity"))
    assert (plan.kind, plan.size) == ("grow", 1280)
    assert plan.pool_size == 1565  # 1,280 answers at the measured 90% keep rate, with 10% to spare
    assert plan.prediction["fitted_sizes"] == [40, 80, 160, 320, 640]  # the largest five
    low, high = plan.prediction["prediction_interval"]
    assert low < plan.prediction["predicted"] < high and abs(plan.prediction["predicted"] - curve([1280])[1280]) < 0.5
    cost = plan.predicted_cost
    assert cost["teacher_answers"] == 865 and cost["teacher_tokens"] == 865 * 50
    assert cost["teacher_seconds"] == pytest.approx(865 * 0.5)
    assert cost["train_seconds"] == pytest.approx(0.5 * 1280) and cost["eval_seconds"] == pytest.approx(30.0)
    assert cost["money"] == pytest.approx(865 * 50 / 1e6 * 2.0)


def test_a_flat_forecast_stops_the_sweep_before_it_spends_the_round():
    flat = made_study(curve([0, 20, 40, 80, 160, 320, 640], floor=20.0, b=100.0, alpha=1.5))
    stop = sweep.plan_next(flat, SweepRecord("perplexity"))
    assert stop["reason"] == "prediction" and "not spent" in stop["why"] and stop["next_size"] == 1280
    allowed = made_study(curve([0, 20, 40, 80, 160, 320, 640], floor=20.0, b=100.0, alpha=1.5),
                         stop_on_prediction=False)
    assert sweep.plan_next(allowed, SweepRecord("perplexity")).size == 1280


def test_max_size_caps_the_last_size_then_stops_the_sweep_by_budget():
    study = made_study(curve([0, 20, 40, 80, 160, 320]), max_size=500)
    assert sweep.plan_next(study, SweepRecord("perplexity")).size == 500
    done = made_study(curve([0, 20, 40, 80, 160, 500]), max_size=500)
    assert sweep.plan_next(done, SweepRecord("perplexity"))["reason"] == "budget"


def test_token_and_hour_budgets_stop_before_a_round_that_would_pass_them():
    tokens = made_study(curve([0, 20, 40, 80, 160, 320]), max_teacher_tokens=52_000)  # 50,000 spent, 83 answers x 50 to come
    stop = sweep.plan_next(tokens, SweepRecord("perplexity"))
    assert stop["reason"] == "budget" and "max_teacher_tokens" in stop["why"]
    hours = made_study(curve([0, 20, 40, 80, 160, 320]), max_hours=0.1)
    spent = SweepRound(0, "start", None, 700, None, {}, measured={"wall_seconds": 300.0})
    stop = sweep.plan_next(hours, SweepRecord("perplexity", [spent]))
    assert stop["reason"] == "budget" and "max_hours" in stop["why"]


def test_a_source_that_cannot_supply_the_next_size_stops_the_sweep_naming_it():
    study = made_study(curve([0, 20, 40, 80, 160, 320]), available=650)
    stop = sweep.plan_next(study, SweepRecord("perplexity"))
    assert stop["reason"] == "source" and "add prompts to data.source" in stop["why"]
    assert stop["prediction"]["converged"]  # what the next doubling would bring, as a forecast


STOPS = {"from": 160, "to": 320, "gain": 0.01, "gain_ci": [0.0, 0.03], "relative_gain": 0.01,
         "relative_gain_ci": [0.0, 0.03], "verdict": "stops", "why": "its whole interval lies below a 5% gain"}


def test_the_rule_stops_the_sweep_after_its_confirmation_seeds_ran():
    values = curve([0, 20, 40, 80, 160, 320])
    unconfirmed = made_study(values, steps=[STOPS], stops_at=STOPS, confirm_seeds=[1, 2])
    assert sweep.rule_stop(unconfirmed) == {"confirm": [160, 320]}
    confirmed = made_study(values, steps=[STOPS], stops_at=STOPS, confirm_seeds=[1, 2],
                           seeds={0: 1, 20: 1, 40: 1, 80: 1, 160: 3, 320: 3})
    stop = sweep.rule_stop(confirmed)
    assert stop["reason"] == "rule" and "n=160 to n=320" in stop["why"] and "3 seed(s)" in stop["why"]
    unresolved = made_study(values, steps=[STOPS], stops_at=STOPS | {"verdict": "unresolved", "then_stops_at": None})
    assert sweep.rule_stop(unresolved) is None


def test_a_target_reached_stops_the_sweep():
    values = curve([0, 20, 40, 80, 160, 320])
    assert sweep.target_stop(made_study(values, target=values[320] + 1))["reason"] == "target"
    assert sweep.target_stop(made_study(values, target=values[320] - 1)) is None


def test_a_confirm_round_adds_replicates_and_a_grow_round_the_size():
    params = made_study(curve([0, 20, 40, 80, 160, 320]), confirm_seeds=[1]).params
    confirm = SweepRound(1, "confirm", None, 700, None, {"sizes": [160, 320]})
    assert sweep.round_changes(params, confirm) == {"scaling": {"replicate_sizes": [160, 320], "replicate_seeds": [1]}}
    grow = SweepRound(1, "grow", 640, 800, None, {})
    assert sweep.round_changes(params, grow) == {"data": {"pool_size": 800},
                                                 "scaling": {"sizes": [0, 20, 40, 80, 160, 320, 640]}}


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
    while "Running stage 'train@32'" not in (tmp_path / "sweep.log").read_text():
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
    assert grown.prediction["fitted_sizes"] == [2, 4, 8, 16] and grown.observed["value"] > 1
    if grown.prediction["converged"]:
        low, high = grown.prediction["prediction_interval"]
        assert grown.observed["inside"] == (low <= grown.observed["value"] <= high)
    assert grown.measured["teacher_answers"] > 0 and 0 <= grown.measured["overhead_share"] < 1

    after = lock_outs(project)
    for path, md5 in before.items():  # every existing subset, student and evaluation is untouched
        if path.startswith(("data/subsets/", "models/student-", "metrics/student-", "samples/student-")):
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
    assert "round 1 (confirm)" in out and "sweep: stopped (rule): perplexity from n=8 to n=16" in out, out
    assert "2 seed(s)" in out
    record = SweepRecord.read(project / paths.SWEEP)
    assert [r.kind for r in record.rounds] == ["start", "confirm"] and record.stop["reason"] == "rule"
    assert (project / paths.student_dir(16, 1) / "model.safetensors").is_file()
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
