"""`kdscale sweep`: grow the study round by round until more teacher data stops paying.

A round runs the pipeline (`dvc repro`, or `dvc exp run` with --exp, so finished stages never
rerun), reads the report's summary, and either stops, naming why, or plans the next size: the
largest times sweep.growth, with the fit's prediction of sweep.metric there (95% prediction
interval) and the round's cost from what earlier rounds measured. It then grows params.yaml
(data.pool_size first, so the teacher answers only the new prompts; then scaling.sizes) and
runs again. Existing subsets and students stay byte-identical: the subsets follow the pool's order.

It stops when
  rule        sweep.metric's step stops paying (kdscale.stats.Rule), after sweep.confirm_seeds
              replicates at the step's two sizes when given;
  target      sweep.metric reaches sweep.target, or perplexity lies within sweep.floor_share of the
              fitted floor;
  budget      the next size would pass sweep.max_size, max_teacher_tokens or max_hours;
  source      the prompt source cannot supply the next size;
  prediction  the fit's most optimistic value for the next size gains under the threshold
              (sweep.stop_on_prediction): stopped without spending that round.

reports/sweep.json records every round; the report renders it and `kdscale sync` logs it to
MLflow. Killed at any point, `kdscale sweep` continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kdscale import paths, stats
from kdscale.cli import TIMINGS_ENV
from kdscale.config import Params, load_params, suggested_pool_size
from kdscale.errors import UserError
from kdscale.jsonl import read_json
from kdscale.profile import rewrite_params
from kdscale.records import StudyRecord, SweepRecord, SweepRound

TIMINGS_DIR = Path(".kdscale/sweep")  # each round's command timings, outside DVC's outputs
OVERHEAD_COMMANDS = {"report", "sync"}  # not the work a round buys: counted as its overhead with DVC's own time
SOURCE_MARGIN = 1.02  # the pool a size needs at the measured keep rate, when the source is nearly spent
LAST_STEP = 1.25  # a last step to the source's limit is taken when it grows the largest size by this much


# ----------------------------------------------------------------------------- what the study says now

@dataclass
class Study:
    params: Params
    record: StudyRecord  # the report's summary of each student
    generation: dict  # metrics/teacher_generation.json: answers, kept, generated tokens, seconds
    available: int    # prompts the source can put in the pool (its distinct prompts less the held-out ones)

    def levels(self, student: str) -> dict[int, dict]:
        """size -> the metric's seed-mean value and 95% interval for one student (the report's per-size table)."""
        per_size = self.record.students[student].diminishing_returns["per_size"]
        return {int(n): per_size[n][self.params.sweep.metric] for n in per_size}

    @property
    def largest(self) -> int:
        return max(self.params.scaling.sizes)

    def details(self, run: paths.Run) -> dict:
        return read_json(paths.student_details(run))


def read_study() -> Study:
    params = load_params()
    prepared = read_json(paths.PREPARE_STATS)
    return Study(params, StudyRecord.read(paths.SUMMARY_DETAILS), read_json(paths.TEACHER_METRICS),
                 prepared["distinct_prompts"] - prepared["heldout"])


def prediction_at(study: Study, student: str, size: int) -> dict | None:
    """The fit's prediction of the metric at `size`; perplexity only (the fitted form is a saturating power law)."""
    if study.params.sweep.metric != "perplexity":
        return None
    levels = study.levels(student)
    sizes = sorted(n for n in levels if n > 0)
    return stats.predict(sizes, [levels[n]["value"] for n in sizes], size)


# ----------------------------------------------------------------------------- when a student stops

def rule_stop(study: Study, student: str) -> dict | None:
    """The rule's stop on sweep.metric for one student, or the pair of sizes a confirm round must replicate
    ({"confirm": [small, large]}) while its seeds are missing."""
    metric, sweep, summary = study.params.sweep.metric, study.params.sweep, study.record.students[student]
    step = summary.diminishing_returns["stops_at"].get(metric)
    if step is None or (step["verdict"] != "stops" and step.get("then_stops_at") is None):
        return None
    if step["verdict"] != "stops":  # an unresolved step, then one that stops
        step = next(s for s in summary.diminishing_returns["steps"][metric] if s["from"] == step["then_stops_at"])
    pair = [step["from"], step["to"]]
    seeds = [summary.seeds.get(n, 1) for n in pair]
    if sweep.confirm_seeds and min(seeds) < 1 + len(sweep.confirm_seeds):
        return {"confirm": pair}
    rel = step.get("relative_gain")
    gain = f"{rel:.1%} [{step['relative_gain_ci'][0]:.1%}, {step['relative_gain_ci'][1]:.1%}]" if rel is not None else \
        f"{step['gain']:.3g}"
    return {"reason": "rule", "why": f"{metric} from n={pair[0]:,} to n={pair[1]:,} gains {gain} over {min(seeds)} "
            f"seed(s): its whole interval lies below a {study.params.report.doubling_gain_threshold:.0%} gain"}


def target_stop(study: Study, student: str) -> dict | None:
    sweep, metric = study.params.sweep, study.params.sweep.metric
    level = study.levels(student)[study.largest]
    value, (low, high) = level["value"], level["ci"]
    reached = value <= sweep.target if metric != "pass_rate" else value >= sweep.target
    if sweep.target and reached:
        return {"reason": "target", "why": f"{metric} at n={study.largest:,} is {value:.4g} [{low:.4g}, {high:.4g}], "
                f"at or {'above' if metric == 'pass_rate' else 'below'} sweep.target {sweep.target:g}"}
    fit = study.record.students[student].perplexity_fit
    if sweep.floor_share and stats.identifiable(fit) and value <= fit["floor"] * (1 + sweep.floor_share):
        return {"reason": "target", "why": f"perplexity at n={study.largest:,} is {value:.4g}, within "
                f"{sweep.floor_share:.0%} of the fitted floor {fit['floor']:.4g} (+- {fit['floor_se']:.2g})"}
    return None


def prediction_stop(study: Study, student: str, size: int, prediction: dict | None) -> dict | None:
    """Stopped unspent: the fit's most optimistic value at `size` gains under the threshold (per doubling)."""
    if not (prediction and prediction["converged"] and study.params.sweep.stop_on_prediction):
        return None
    largest, threshold = study.largest, study.params.report.doubling_gain_threshold
    best_gain = 1 - prediction["prediction_interval"][0] / study.levels(student)[largest]["value"]
    if best_gain >= threshold * math.log2(size / largest):
        return None
    return {"reason": "prediction", "why": (
        f"the fit's 95% prediction interval at n={size:,} gains at most {best_gain:.1%} over n={largest:,}, "
        f"under the {threshold:.0%} threshold (a forecast, not a measurement)"), "next_size": size,
        "prediction": prediction}


def student_stops(study: Study, record: SweepRecord) -> dict[str, dict]:
    """Each student's stop so far: one recorded in an earlier round stands (its later sizes test it); a new one is
    the rule's or the target's. A student whose rule asks for a confirm round maps to {"confirm": pair}."""
    stops = dict(record.student_stops)
    for student in study.params.students:
        if student not in stops:
            stop = rule_stop(study, student) or target_stop(study, student)
            if stop:
                stops[student] = stop | ({} if "confirm" in stop else {"round": len(record.rounds) - 1})
    return stops


# ----------------------------------------------------------------------------- the next round

def cost_of(study: Study, trained: list[int], pool_size: int) -> dict:
    """A round's cost from what the study measured: teacher answers for the new prompts at the measured tokens and
    seconds per answer; training each student at each of `trained` (sizes, one per replicate) at its largest size's
    seconds per sample, and evaluating each at the students' mean."""
    gen, sweep, largest, seed = study.generation, study.params.sweep, study.largest, study.params.seed
    answers = max(pool_size - study.params.data.pool_size, 0)
    tokens = answers * gen["generated_tokens"] / gen["answers"]
    students = list(study.params.students)
    per_sample = {s: study.details(paths.Run(s, largest, seed))["train_seconds"] / largest if largest else 0.0
                  for s in students}
    eval_seconds = [study.details(paths.Run(s, n, seed))["eval_seconds"]
                    for s in students for n in study.params.scaling.sizes]
    cost = {"teacher_answers": answers, "teacher_tokens": round(tokens),
            "teacher_seconds": answers * gen["generation_seconds"] / gen["answers"],
            "train_seconds": sum(per_sample.values()) * sum(trained),
            "eval_seconds": sum(eval_seconds) / len(eval_seconds) * len(trained) * len(students),
            "money": tokens / 1e6 * sweep.price_per_million_tokens}
    cost["seconds"] = cost["teacher_seconds"] + cost["train_seconds"] + cost["eval_seconds"]
    return cost


def next_size(study: Study) -> tuple[int, dict | None]:
    """The largest times sweep.growth, capped by sweep.max_size; where the source cannot supply that, the largest
    size it can (a last, shorter step) when that still grows the study by a quarter. Else a stop (budget, source)."""
    sweep, largest, gen = study.params.sweep, study.largest, study.generation
    size = max(round(largest * sweep.growth), largest + 1)
    if sweep.max_size:
        if largest >= sweep.max_size:
            return size, {"reason": "budget", "why": f"n={largest:,} reached sweep.max_size {sweep.max_size:,}"}
        size = min(size, sweep.max_size)
    keep = gen["kept"] / gen["answers"]
    if size / keep * SOURCE_MARGIN > study.available:
        limit = int(study.available * keep / SOURCE_MARGIN) // 10 * 10
        if limit >= largest * LAST_STEP:
            return limit, None
        return size, {"reason": "source", "why": (
            f"n={size:,} needs about {math.ceil(size / keep):,} prompts at the measured keep rate ({keep:.1%}); "
            f"the source ({study.params.data.source}) holds {study.available:,} outside the held-out set: add "
            "prompts to data.source to go on")}
    return size, None


def plan_next(study: Study, record: SweepRecord, stops: dict[str, dict]) -> SweepRound | dict:
    """The next round for the students still growing, or why there is none (budget, source, or every student
    stopped by its prediction). A student stopped by its prediction is recorded in `stops`."""
    sweep, gen = study.params.sweep, study.generation
    size, stop = next_size(study)
    growing = [s for s in study.params.students if s not in stops]
    predictions = {s: prediction_at(study, s, size) for s in study.params.students}
    forecast = {"next_size": size, "prediction": predictions}
    if stop:
        return forecast | stop
    for student in growing:
        stop = prediction_stop(study, student, size, predictions[student])
        if stop:
            stops[student] = stop | {"round": len(record.rounds) - 1}
    if all(s in stops for s in study.params.students):
        return forecast | {"reason": "students", "why": "every student has stopped"}
    needed = suggested_pool_size(size, gen["kept"], gen["answers"])
    pool = max(study.params.data.pool_size, min(study.available, needed))
    cost = cost_of(study, [size], pool)
    tokens = gen["generated_tokens"] + cost["teacher_tokens"]
    if sweep.max_teacher_tokens and tokens > sweep.max_teacher_tokens:
        return forecast | {"reason": "budget", "why": (
            f"n={size:,} would bring the teacher's tokens to about {tokens:,}, "
            f"over sweep.max_teacher_tokens {sweep.max_teacher_tokens:,}")}
    spent = sum(r.measured["wall_seconds"] for r in record.rounds if r.measured)
    if sweep.max_hours and spent + cost["seconds"] > sweep.max_hours * 3600:
        return forecast | {"reason": "budget", "why": (
            f"{spent / 3600:.2f} h spent and n={size:,} would take about {cost['seconds'] / 3600:.2f} h more, over "
            f"sweep.max_hours {sweep.max_hours:g}")}
    return SweepRound(len(record.rounds), "grow", size, pool, predictions, cost)


def plan_confirm(study: Study, record: SweepRecord, pairs: list[list[int]]) -> SweepRound:
    """Replicate seeds (sweep.confirm_seeds) at the sizes of the students' stopping steps."""
    pool, sizes = study.params.data.pool_size, sorted({n for pair in pairs for n in pair})
    cost = cost_of(study, sizes * len(study.params.sweep.confirm_seeds), pool)
    return SweepRound(len(record.rounds), "confirm", None, pool, None, cost | {"sizes": sizes})


def closing_confirm(study: Study, record: SweepRecord) -> SweepRound | None:
    """Before a study-wide stop stands: sweep.confirm_seeds at the largest size, then at the one before, so the
    final answer carries the seeds' spread where it is read; each only while sweep.max_hours allows it."""
    params = study.params
    if not params.sweep.confirm_seeds:
        return None
    spent = sum(r.measured["wall_seconds"] for r in record.rounds if r.measured)
    for size in sorted(n for n in params.scaling.sizes if n > 0)[-1:-3:-1]:
        seeded = size in params.scaling.replicate_sizes and set(params.sweep.confirm_seeds) <= set(
            params.scaling.replicate_seeds)
        if seeded:
            continue
        plan = plan_confirm(study, record, [[size]])
        over = params.sweep.max_hours and spent + plan.predicted_cost["seconds"] > params.sweep.max_hours * 3600
        return None if over else plan
    return None


def round_changes(params: Params, plan: SweepRound) -> dict:
    """The params.yaml keys a round sets (idempotent: a resumed round applies them again)."""
    if plan.kind == "grow":
        changes = {"data": {"pool_size": plan.pool_size},
                   "scaling": {"sizes": sorted(set(params.scaling.sizes) | {plan.size})}}
        if params.eval.adherence_set_sizes:  # the larger adherence set follows the study to each new size
            changes["eval"] = {"adherence_set_sizes": sorted(set(params.eval.adherence_set_sizes) | {plan.size})}
        return changes
    if plan.kind == "confirm":
        sweep, scaling = params.sweep, params.scaling
        return {"scaling": {"replicate_sizes": sorted(set(scaling.replicate_sizes) | set(plan.predicted_cost["sizes"])),
                            "replicate_seeds": sorted(set(scaling.replicate_seeds) | set(sweep.confirm_seeds))}}
    return {}


# ----------------------------------------------------------------------------- running a round

def clear_dead_dvc_lock(lock: Path = Path(".dvc/tmp/rwlock")) -> None:
    """A sweep killed while DVC ran leaves DVC's read-write lock naming dead processes (zombies where nothing reaps
    them), and DVC refuses to run until the file is removed: remove it when none of the processes it names lives."""
    import psutil

    try:
        held = json.loads(lock.read_text())
    except (OSError, json.JSONDecodeError):
        return
    holders = [*held.get("write", {}).values(), *(h for readers in held.get("read", {}).values() for h in readers)]

    def alive(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    if holders and not any(alive(h["pid"]) for h in holders):
        lock.unlink(missing_ok=True)


def run_dvc(command: list[str], timings: Path) -> float:
    """Run a DVC command with its output shown; the seconds it took. A failure stops the sweep, resumable."""
    clear_dead_dvc_lock()
    start = time.perf_counter()
    env = os.environ | {TIMINGS_ENV: str(timings.resolve())}
    if subprocess.run(command, env=env).returncode:
        raise UserError(f"sweep: `{' '.join(command)}` failed (its output is above); fix the cause and run "
                        "`kdscale sweep` again: it continues this round")
    seconds = time.perf_counter() - start
    with open(timings, "a", encoding="utf-8") as f:
        f.write(json.dumps({"command": "dvc", "seconds": seconds}) + "\n")
    return seconds


def pipeline(exp: str | None, name: str) -> list[str]:
    if exp is None:
        return ["dvc", "repro"]
    listed = subprocess.run(["dvc", "exp", "list", "--name-only"], capture_output=True, text=True).stdout.split()
    # A round killed after DVC saved its experiment is finished: bring the workspace up to date without a new one.
    return ["dvc", "repro"] if name in listed else ["dvc", "exp", "run", "--name", name]


def answer_new_prompts(plan: SweepRound, timings: Path) -> int | None:
    """Grow the pool first and have the teacher answer it; the kept answers, or None when the pool cannot hold
    the round's size (then the sweep stops: the source is spent)."""
    while True:
        rewrite_params({"data": {"pool_size": plan.pool_size}})
        run_dvc(["dvc", "repro", "teacher_filter"], timings)
        generation = read_json(paths.TEACHER_METRICS)
        if generation["kept"] >= plan.size:
            return generation["kept"]
        prepared = read_json(paths.PREPARE_STATS)
        available = prepared["distinct_prompts"] - prepared["heldout"]
        if plan.pool_size >= available:
            return None
        if prepared["pool"] != plan.pool_size:
            raise UserError(f"sweep: data.pool_size is {plan.pool_size:,} but {paths.PREPARE_STATS} holds a pool "
                            f"of {prepared['pool']:,}: `dvc repro teacher_filter` did not rerun prepare; check `dvc "
                            "status prepare` (a lock committed with other params) and run `kdscale sweep` again")
        plan.pool_size = min(available, suggested_pool_size(plan.size, generation["kept"], generation["answers"]))


def run_round(plan: SweepRound, exp: str | None) -> bool:
    """Run one round to its end; False when the source could not supply its size."""
    TIMINGS_DIR.mkdir(parents=True, exist_ok=True)
    timings = TIMINGS_DIR / f"round-{plan.round}.jsonl"
    with open(timings, "a", encoding="utf-8") as f:  # a resumed round measures its last attempt alone
        f.write(json.dumps({"command": "attempt", "seconds": 0.0}) + "\n")
    if plan.kind == "grow" and answer_new_prompts(plan, timings) is None:
        return False
    changes = round_changes(load_params(), plan)
    if changes:
        rewrite_params(changes)
    run_dvc(pipeline(exp, f"{exp}-r{plan.round}"), timings)
    return True


def measure(plan: SweepRound, study: Study, record: SweepRecord) -> None:
    """Fill in what the round measured: the metric at its size against the prediction, its costs and its overhead."""
    lines = [json.loads(line) for line in (TIMINGS_DIR / f"round-{plan.round}.jsonl").read_text().splitlines()]
    lines = lines[max(i for i, t in enumerate(lines) if t["command"] == "attempt"):]
    wall = sum(t["seconds"] for t in lines if t["command"] == "dvc")
    work = sum(t["seconds"] for t in lines if t["command"] not in OVERHEAD_COMMANDS | {"dvc"})
    before = next((r.measured for r in reversed(record.rounds[:plan.round]) if r.measured), None)
    gen, params = study.generation, study.params
    seeds = {"grow": [params.seed], "start": [params.seed], "confirm": params.sweep.confirm_seeds}[plan.kind]
    sizes = {"grow": [plan.size], "start": params.scaling.sizes, "confirm": plan.predicted_cost.get("sizes")}[plan.kind]
    details = [study.details(paths.Run(student, n, seed))
               for student in params.students for n in sizes for seed in seeds]
    plan.measured = {
        "wall_seconds": wall, "work_seconds": work, "overhead_seconds": max(wall - work, 0.0),
        "overhead_share": max(wall - work, 0.0) / wall if wall else 0.0,
        "teacher_answers_total": gen["answers"], "teacher_tokens_total": gen["generated_tokens"],
        "teacher_answers": gen["answers"] - (before["teacher_answers_total"] if before else 0),
        "teacher_tokens": gen["generated_tokens"] - (before["teacher_tokens_total"] if before else 0),
        "train_seconds": sum(d.get("train_seconds", 0.0) for d in details),
        "eval_seconds": sum(d.get("eval_seconds", 0.0) for d in details)}
    if plan.size is not None:
        plan.observed = {}
        for student in params.students:
            level = study.levels(student)[plan.size]
            interval = ((plan.prediction or {}).get(student) or {}).get("prediction_interval")
            plan.observed[student] = {"value": level["value"], "ci": level["ci"], "inside": None if interval is None
                                      else interval[0] <= level["value"] <= interval[1]}


# ----------------------------------------------------------------------------- the loop

def say_plan(plan: SweepRound, metric: str) -> str:
    cost, what = plan.predicted_cost, f"n={plan.size:,}" if plan.size else f"seeds at n={plan.predicted_cost['sizes']}"
    forecasts = []
    for student, prediction in (plan.prediction or {}).items():
        if prediction and prediction.get("converged"):
            low, high = prediction["prediction_interval"]
            forecasts.append(f"{student} {prediction['predicted']:.4g} [{low:.4g}, {high:.4g}]")
    forecast = f"predicted {metric} {', '.join(forecasts)}" if forecasts else "no forecast"
    money = f", ${cost['money']:.2f}" if cost["money"] else ""
    return (f"sweep: round {plan.round} ({plan.kind}): {what}, pool {plan.pool_size:,}: {forecast}; cost about "
            f"{cost['teacher_answers']:,} teacher answers ({cost['teacher_tokens']:,} tokens, "
            f"{cost['teacher_seconds'] / 60:.1f} min{money}), training {cost['train_seconds'] / 60:.1f} min, "
            f"evaluation {cost['eval_seconds'] / 60:.1f} min")


def say_measured(plan: SweepRound, metric: str) -> str:
    m, line = plan.measured, f"sweep: round {plan.round} done in {plan.measured['wall_seconds'] / 60:.1f} min"
    words = {True: "inside its prediction interval", False: "outside its prediction interval", None: "no prediction"}
    observed = [f"{student} {o['value']:.4g} [{o['ci'][0]:.4g}, {o['ci'][1]:.4g}], {words[o['inside']]}"
                for student, o in (plan.observed or {}).items()]
    if observed:
        line += f": {metric} " + "; ".join(observed)
    return line + f" (overhead {m['overhead_share']:.0%})"


def check_can_grow(params: Params) -> None:
    """A fresh sweep with nothing to grow is an input error, not a finished sweep."""
    sweep, largest = params.sweep, max(params.scaling.sizes)
    if sweep.max_size and sweep.max_size <= largest:
        raise UserError(f"sweep: sweep.max_size {sweep.max_size:,} is not above the largest size {largest:,}: nothing "
                        "left to grow; raise sweep.max_size or set it to 0 (no limit)")
    if paths.TEACHER_METRICS.is_file() and sweep.max_teacher_tokens and \
            read_json(paths.TEACHER_METRICS)["generated_tokens"] >= sweep.max_teacher_tokens:
        raise UserError(f"sweep: the teacher has already generated sweep.max_teacher_tokens "
                        f"({sweep.max_teacher_tokens:,}); raise it or set it to 0 (no limit)")


def open_record(params: Params) -> SweepRecord:
    if not paths.SWEEP.is_file():
        return SweepRecord(params.sweep.metric)
    record = SweepRecord.read(paths.SWEEP)
    if record.rounds and record.metric != params.sweep.metric:
        raise UserError(f"sweep: {paths.SWEEP} records a sweep on {record.metric}, params.yaml asks for "
                        f"{params.sweep.metric}; set sweep.metric back, or move the record aside to start anew")
    record.metric = params.sweep.metric
    return record


def finish(record: SweepRecord, stop: dict, exp: str | None) -> None:
    """Record the stop and rebuild the report around it (only the report stage reruns)."""
    record.stop = stop
    record.write(paths.SWEEP)
    timings = TIMINGS_DIR / "final.jsonl"
    TIMINGS_DIR.mkdir(parents=True, exist_ok=True)
    run_dvc(pipeline(exp, f"{exp}-final"), timings)
    print(f"sweep: stopped ({stop['reason']}): {stop['why']}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="kdscale sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp", metavar="NAME",
                        help="run each round as a DVC experiment NAME-rK (dvc exp show lists them)")
    args = parser.parse_args(argv)
    params = load_params()
    record = open_record(params)
    if not record.rounds:
        check_can_grow(params)
        record.rounds.append(SweepRound(0, "start", None, params.data.pool_size, None, {}))
    record.stop = None
    while True:
        plan = record.rounds[-1]
        unspent = plan.measured is None
        if unspent:
            record.write(paths.SWEEP)  # the plan first: a kill from here on resumes this round
            if not run_round(plan, args.exp):
                record.rounds.pop()
                study = read_study()
                return finish(record, {"reason": "source", "why": (
                    f"the whole source ({study.available:,} prompts) keeps {study.generation['kept']:,} answers, "
                    f"short of n={plan.size:,}; add prompts to data.source to go on")}, args.exp)
        study = read_study()
        if unspent:
            measure(plan, study, record)
            record.write(paths.SWEEP)
            print(say_measured(plan, record.metric), flush=True)
        stops = student_stops(study, record)
        confirm = [stop["confirm"] for stop in stops.values() if "confirm" in stop]
        record.student_stops = {s: stop for s, stop in stops.items() if "confirm" not in stop}
        if confirm:
            plan = plan_confirm(study, record, confirm)
        else:
            plan = plan_next(study, record, record.student_stops)
            if isinstance(plan, dict):  # a study-wide stop: it stands once the closing seeds are in
                closing = closing_confirm(study, record)
                if closing is None:
                    return finish(record, plan, args.exp)
                plan = closing
        print(say_plan(plan, record.metric), flush=True)
        record.rounds.append(plan)


if __name__ == "__main__":
    from kdscale.cli import run

    run(main)
