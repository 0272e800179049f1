"""Stage `report`: the study's written report, its figure and its summary files, from the stages' files.

What the report says is computed in `summary` (scores, steps, the rule, the fit) on the statistics of
`stats`; this module renders it: reports/report.md and answers.md, the summaries and the DVC plots, and
the figure (drawn by `figures`).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from dataclasses import dataclass, field

import numpy as np

from kdscale import capacity, paths, stats
from kdscale.config import ReportParams, load_params, runs
from kdscale.figures import draw_curves
from kdscale.jsonl import atomic_open, read_json, read_jsonl, write_json
from kdscale.metrics import METRICS, scaling_keys
from kdscale.paths import Run
from kdscale.records import StudyRecord, StudySummary, SweepRecord, TypeRates, dropped_read
from kdscale.stats import FIT_PARAMS, MIN_FIT_POINTS, identifiable, paired_evidence
from kdscale.summary import OTHER_WEIGHTINGS, RULED, by_name, model_name, summarize


def _fmt(value, digits=2):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _ppl(value) -> str:
    """Perplexities span 2 to 10^5: thousands separators above 100, two decimals below."""
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def side_by_side(teacher_samples: list[dict], student_samples: dict[str, list[dict]]) -> list[str]:
    """Each prompt, then the teacher's answer and each model's (`student_samples`: its label -> its answers)."""
    lines = []
    by_model = {who: {s["id"]: s for s in samples} for who, samples in student_samples.items()}
    for t in teacher_samples:
        lines += [f"### {t['id']}: {t['instruction']}", ""]
        if t.get("input"):
            lines += [f"Input: {t['input']}", ""]
        answers = [("teacher", t)] + [(who, answers[t["id"]]) for who, answers in by_model.items()]
        for who, s in answers:
            verdict = "pass" if s["strict"] else "fail"
            text = s["response"].replace("\n", " ")[:400] or "(empty)"
            degenerate = ", degenerate" if s.get("degenerate") else ""
            lines.append(f"- **{who}** ({verdict}, {s['finish_reason']}{degenerate}): {text}")
        lines.append("")
    return lines


def steps_note(params, students: dict[int, dict]) -> list[str]:
    steps = ", ".join(f"n={n}: {students[n]['optimizer_steps']}" for n in sorted(students))
    if params.train.schedule == "epochs":
        largest = students[max(students)]["optimizer_steps"]
        return [f"Optimizer steps per size: {steps}. Under `train.schedule: epochs` data and steps vary together; "
                f"the steps-matched control is `dvc exp run -S train.schedule=steps -S train.max_steps={largest}`."]
    return [f"Optimizer steps per size: {steps} (`train.schedule: {params.train.schedule}`)."]


def steps_lines(steps: list[dict]) -> list[str]:
    if not steps:
        return []
    lines = ["Each step in data, by itself: the perplexity of the smaller set over the larger's (above 1: the "
             "larger set is better; 95% paired bootstrap over the held-out answers, not over training seeds):", "",
             "| step | perplexity ratio [95% CI] |", "|---|---|"]
    lines += [f"| n={s['from']} -> n={s['to']} | {_with_ci(s['ratio'], s['ratio_ci'])} |" for s in steps]
    last = steps[-1]
    if last["ratio_ci"]:
        verdict = ("still lowers perplexity: its interval lies above 1" if last["ratio_ci"][0] > 1 else
                   "is not separated from no gain: its interval reaches 1")
        lines += ["", f"The largest step (n={last['from']} -> n={last['to']}) {verdict}."]
    return lines + [""]


RULE = ("a step in data pays when its gain is distinguishable from noise and at least {0:.0%} (relative to the "
        "smaller size); it stops paying when its whole 95% interval over the held-out items and the seeds lies "
        "below {0:.0%}; in between, these items and seeds cannot tell")
ITEMS = {"perplexity": "held-out answers", "pass_rate": "prompts", "degenerate_share": "prompts"}


def _step_gain(metric: str, step: dict) -> str:
    """A step's gain with its interval: perplexity's relative fall in %, a rate's change in points."""
    low, high = step["gain_ci"]
    if metric == "perplexity":
        return f"{step['gain']:.1%} [{low:.1%}, {high:.1%}]"
    return f"{step['gain'] * 100:+.1f} [{low * 100:+.1f}, {high * 100:+.1f}] points"


def _seed_words(step: dict) -> str:
    small, large = step["seeds"]
    spread = {"both sizes": "", "one size": ", seed spread measured at one of the two sizes",
              "none": ", one seed each: seed spread not measured"}[step["seed_spread"]]
    return f"seeds {small} and {large}{spread}"


def answer_line(metric: str, steps: list[dict], stop: dict | None, items: int) -> str:
    """One metric's answer: where it stops paying, that it does not by the largest size, or that these
    items cannot tell (then the last step, with the prompts a rate would need to resolve it)."""
    words, last = METRICS[metric].label, steps[-1]
    last_words = (f"the last, n={last['from']:,} -> n={last['to']:,}, gains {_step_gain(metric, last)} "
                  f"({_seed_words(last)})")
    if stop is None:
        return f"- **{words}: not reached by n={last['to']:,}**: every step pays; {last_words}."
    step_words = f"the step n={stop['from']:,} -> n={stop['to']:,} gains {_step_gain(metric, stop)}"
    if stop["verdict"] == "stops":
        return f"- **{words}: stops paying at n={stop['from']:,}**: {step_words} ({_seed_words(stop)}), {stop['why']}."
    seeds = " and seeds" if max(stop["seeds"]) > 1 or max(last["seeds"]) > 1 else ""
    line = (f"- **{words}: not resolvable with these {items} {ITEMS[metric]}{seeds} from n={stop['from']:,} on**: "
            f"{step_words}, {stop['why']}")
    if stop["from"] != last["from"]:
        line += f"; no later step pays, and {last_words}"
    if metric != "perplexity":
        need = stats.prompts_needed(*last["levels"])
        line += (f"; telling the last step's rates apart ({last['levels'][0]:.0%}, {last['levels'][1]:.0%}) would "
                 "take " + ("any number of prompts: they are equal" if need is None else
                            f"about {need:,} prompts per model"))
    if stop.get("then_stops_at") is not None:
        line += f"; a later step stops paying, from n={stop['then_stops_at']:,}"
    return line + "."


def fit_sentence(summary: StudySummary, threshold: float, largest: int) -> str:
    """The fit's extrapolation in one sentence, or why it makes none."""
    fit, check, at = summary.perplexity_fit, summary.fit_backtest, summary.doubling_gain_below_threshold_at
    if fit is None or not fit["converged"] or not identifiable(fit):
        return "- **The fit** of perplexity against data makes no extrapolation: these points do not pin it down."
    if check and not check["passed"]:
        return "- **The fit** fails its backtest, so it makes no extrapolation."
    tested = "passes its backtest" if check else "is not backtested (fewer than 5 sizes)"
    if at is None:
        return f"- **The fit** ({tested}) has every doubling below 10^9 samples gain {threshold:.0%} or more."
    where = "within the data" if at <= largest else f"an extrapolation {at / largest:.0f}x beyond the largest size"
    return (f"- **The fit** ({tested}) puts the size beyond which a doubling gains under {threshold:.0%} near "
            f"N = {at:,.0f} ({where}, not a measurement).")


def answer_lines(params, teacher: dict, summary: StudySummary) -> list[str]:
    """One student's answer: per metric, where more data stops paying, or that the data cannot tell; the fit's
    extrapolation."""
    threshold, returns = params.report.doubling_gain_threshold, summary.diminishing_returns
    if returns is None:
        return ["No rule applied: the evaluations hold no per-item scores on common answers and prompts "
                "(rerun the evaluate stages).", ""]
    lines = [f"The rule: {RULE.format(threshold)}.", ""]
    items = {"perplexity": teacher["heldout_answers"], "pass_rate": teacher["adherence_prompts"],
             "degenerate_share": teacher["adherence_prompts"]}
    for metric in RULED:
        if returns["steps"][metric]:
            lines.append(answer_line(metric, returns["steps"][metric], returns["stops_at"][metric], items[metric]))
    largest = max(n for n in summary.seeds if n > 0) if any(n > 0 for n in summary.seeds) else 1
    return lines + [fit_sentence(summary, threshold, largest), ""]


def gain_table_lines(returns: dict | None) -> list[str]:
    """Every step's gain per ruled metric, with its interval over items and seeds."""
    if returns is None:
        return []
    lines = ["Gain per step (perplexity: its relative fall; rates: the change in points, degenerate share "
             "counted as a gain when it falls), 95% interval over the held-out items and the seeds:", "",
             "| step | " + " | ".join(METRICS[m].label for m in RULED) + " | seeds |",
             "|---|" + "---|" * (len(RULED) + 1)]
    for i, step in enumerate(returns["steps"]["perplexity"]):
        cells = [_step_gain(m, returns["steps"][m][i]) for m in RULED]
        lines.append(f"| n={step['from']:,} -> n={step['to']:,} | " + " | ".join(cells) +
                     f" | {step['seeds'][0]}, {step['seeds'][1]} |")
    return lines + [""]


def seeds_lines(returns: dict | None) -> list[str]:
    """Per size, over its seeds: perplexity (geometric mean), pass rates, degenerate and EOS shares."""
    if returns is None:
        return []
    keys = ["perplexity", "pass_rate", "pass_rate_loose", "degenerate_share", "answers_ended_eos"]
    lines = ["| samples | seeds | perplexity [95% CI] | pass rate | loose | degenerate | ended at EOS |",
             "|---|---|---|---|---|---|---|"]
    for n, entry in sorted(returns["per_size"].items()):
        cells = []
        for key in keys:
            low, high = entry[key]["ci"]
            if key == "perplexity":
                cells.append(f"{_ppl(entry[key]['value'])} [{_ppl(low)}, {_ppl(high)}]")
            else:  # a rate's interval stays within [0, 1]
                cells.append(f"{entry[key]['value']:.0%} [{max(low, 0):.0%}, {min(high, 1):.0%}]")
        lines.append(f"| {n:,} | {entry['seeds']} | " + " | ".join(cells) + " |")
    return lines + ["", "Means over each size's seeds (perplexity: geometric), with 95% intervals that combine "
                    "the paired bootstrap over the held-out answers and adherence prompts with the spread over "
                    "seeds (t quantile, Welch-Satterthwaite degrees of freedom); a size with one seed has the "
                    "bootstrap's interval alone.", ""]


def backtest_lines(check: dict | None) -> list[str]:
    if check is None:
        return ["No backtest: it needs at least 5 sizes > 0 (4 to fit, 1 to predict)."]
    if not check["converged"]:
        return [f"Backtest: the fit without n={check['size']:,} did not converge, so the fit makes no "
                "extrapolation."]
    low, high = check["prediction_interval"]
    verdict = ("inside it: the fit passes its backtest" if check["passed"] else
               "outside it: the fit fails its backtest and the report makes no extrapolation from it")
    return [f"Backtest: fitted on n = {', '.join(f'{n:,}' for n in check['fitted_sizes'])}, the curve predicts "
            f"perplexity {_ppl(check['predicted'])} at n={check['size']:,} (95% prediction interval "
            f"[{_ppl(low)}, {_ppl(high)}]); observed {_ppl(check['observed'])}, {verdict}."]


def power_lines(power: dict) -> list[str]:
    prompts, best = power["prompts"], power["best"]
    lines = ["Against the teacher on the same prompts (prompts only the teacher passes / only the student "
             "passes; exact McNemar test of those):", ""]
    for n, vs in sorted(power["vs_teacher"].items()):
        lines.append(f"- n={n:,}: {vs['only_teacher']} / {vs['only_student']}, p = {vs['p_value']:.2g}")
    need = best["prompts_needed"]
    lines += ["", f"Resolving power of the {prompts} adherence prompts: to tell the best student's pass rate "
              f"(n={best['size']:,}, {best['pass_rate']:.0%}) from the teacher's ({best['teacher']:.0%}) with 80% "
              f"power at the 5% level takes about {need if need is not None else 'n/a'} prompts per model "
              "(two-proportion test)."]
    last = power.get("last_step")
    if last:
        need = last["prompts_needed"]
        lines[-1] += (f" Telling the last step's pass rates apart (n={last['from']:,}: {last['pass_rates'][0]:.0%}, "
                      f"n={last['to']:,}: {last['pass_rates'][1]:.0%}) takes "
                      f"{'any number: they are equal' if need is None else f'about {need:,}'}.")
    return lines + [""]


def fit_lines(fit: dict | None, threshold: float, at: float | None, failed_backtest: bool = False) -> list[str]:
    if fit is None:
        return [f"The fit needs at least {MIN_FIT_POINTS} sizes > 0 (three parameters); add sizes to "
                "`scaling.sizes`."]
    if not fit["converged"]:
        return [f"The fit did not converge on these {fit['points']} points."]
    lines = [f"Fit of perplexity(N) = floor + b x N^-alpha on n = {', '.join(f'{n:,}' for n in fit['fitted_sizes'])} "
             f"(the largest {stats.FIT_WINDOW} sizes > 0: smaller ones sit in the pre-power phase a power law "
             "misfits; a size's geometric mean over its seeds where it has replicates; least squares on "
             "log perplexity, floor in [0, lowest perplexity), b > 0, alpha in (0, 3]; n = 0 is not fitted), "
             f"residual RMS {fit['rmse_log']:.3f} in log perplexity:", "",
             "| parameter | estimate | standard error | |", "|---|---|---|---|"]
    for name in FIT_PARAMS:
        se = fit[f"{name}_se"]
        verdict = "" if fit[f"{name}_identifiable"] else "not identifiable from these points"
        lines.append(f"| {name} | {fit[name]:.4g} | {'n/a' if se is None else f'{se:.3g}'} | {verdict} |")
    lines.append("")
    if not identifiable(fit):
        lines.append("A standard error above its estimate means these points do not pin that parameter down, so "
                     "the fit makes no claim about where more data stops paying.")
    elif failed_backtest:
        lines.append("The fit fails its backtest (below), so it makes no extrapolation.")
    elif at is None:
        lines.append(f"Doubling the data lowers the fitted perplexity by {threshold:.0%} or more at every size "
                     "below 10^9 samples.")
    else:
        lines.append(f"Doubling the data lowers the fitted perplexity by less than {threshold:.0%} "
                     f"beyond about N = {at:,.0f} samples.")
    return lines


def _with_ci(value, interval: list[float] | None, digits: int = 2) -> str:
    if value is None or not interval:
        return _fmt(value, digits)
    return f"{_fmt(value, digits)} [{_fmt(interval[0], digits)}, {_fmt(interval[1], digits)}]"


def _score(summary: StudySummary, name: str) -> str:
    return _with_ci(summary.combined_score[name], (summary.combined_score_ci or {}).get(name), 3)


def best_student_line(summary: StudySummary) -> str:
    best, apart, runner_up = summary.best_student_size, summary.best_student_separated, summary.runner_up
    line = f"Best student by the combined score: n={best}"
    if apart is None:
        return line + "." if runner_up is None else line + " (no intervals, so not tested against the next)."
    if apart:
        return line + f", above {runner_up} in the paired bootstrap."
    return line + f" by its point estimate only: the paired bootstrap does not separate it from {runner_up}."


def results_lines(params, students: dict[int, dict], teacher: dict, summary: StudySummary) -> list[str]:
    """The results table and what its columns mean."""
    rp: ReportParams = params.report
    sizes = sorted(students)
    lines = ["## Results", "",
             "| model | samples | steps | perplexity [95% CI] | pass rate [95% CI] | degenerate | ended at EOS "
             "| loose | tok/s | size MiB | combined | seed formula |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = [(f"student-n{n}", n, students[n]) for n in sizes] + [("teacher", "-", teacher)]
    for name, n, m in rows:
        lines.append(f"| {name} | {n} | {m.get('optimizer_steps', '-')} | {_ppl(m['perplexity'])} "
                     f"[{_ppl(m.get('perplexity_ci_low'))}, {_ppl(m.get('perplexity_ci_high'))}] | "
                     f"{m['pass_rate']:.0%} [{m['pass_rate_ci_low']:.0%}, {m['pass_rate_ci_high']:.0%}] | "
                     f"{m['degenerate_share']:.0%} | {m['answers_ended_eos']:.0%} | {m['pass_rate_loose']:.0%} | "
                     f"{_fmt(m['tokens_per_sec'], 1)} | {_fmt(m['model_size_mb'], 1)} | "
                     f"{_score(summary, name)} | {_fmt(summary.combined_score_seed[name], 3)} |")
    lines += ["", f"combined = {rp.weight_perplexity} x q_ppl + {rp.weight_pass_rate} x pass_rate + "
              f"{rp.weight_speed} x q_speed, each axis normalised across this study: q_ppl = "
              f"{_ppl(summary.lowest_perplexity)} (the lowest perplexity) / perplexity; q_speed = the speed of the "
              f"model's architecture / {summary.fastest_architecture_speed:.1f} (the fastest architecture's), "
              "where an architecture's speed is the median tokens/s of its models, so timing jitter cannot rank "
              "students of one architecture. \"seed formula\" is the seed's combined_score_seed = "
              f"{rp.weight_perplexity} / perplexity + {rp.weight_pass_rate} x pass_rate + {rp.weight_speed} x "
              f"tokens/s / {summary.max_tokens_per_sec:.1f}.", "",
              f"Perplexity intervals: 95% percentile bootstrap over the {teacher.get('heldout_answers', '?')} held-out "
              "answers. Pass rates are prompt-level strict adherence on "
              f"{teacher['adherence_prompts']} prompts, with 95% Wilson intervals. Degenerate: the share of adherence "
              "answers that loop (over half of their word 4-grams repeat, or over half of their characters are "
              "runs of one short unit, as in \"4000000...\") or hold no sentence (no two different words between "
              "sentence ends): a pass on such an answer is not adherence. Ended at EOS: the share "
              "of adherence answers the model ended itself.", ""]
    return lines


def ranking_lines(params, students: dict[int, dict], summary: StudySummary) -> list[str]:
    """The scores' uncertainty, the steps note, the rankings under each weighting and the best student."""
    rp: ReportParams = params.report
    lines = [f"Combined-score intervals and the rankings' ties: {summary.score_uncertainty}.", ""]
    lines += steps_note(params, students)
    lines += ["", f"Ranking by the combined score ({rp.weight_perplexity:.2f} / {rp.weight_pass_rate:.2f} / "
              f"{rp.weight_speed:.2f} for perplexity / pass rate / speed; best first; `>`: the paired bootstrap's 95% "
              "interval for the two neighbours' difference excludes 0, `≈`: it does not, so the data do not order "
              f"them): {summary.rankings_with_ties['params']}. Under other weightings ({', '.join(OTHER_WEIGHTINGS)}): "
              "`rankings_with_ties` in summary_details.json.", "", best_student_line(summary)]
    return lines


def vs_teacher_lines(students: dict[int, dict], summary: StudySummary) -> list[str]:
    """Each student as a fraction of the teacher."""
    sizes = sorted(students)
    lines = ["", "## Students as a fraction of the teacher", "",
             "| model | perplexity ratio [95% CI] | pass-rate ratio [95% CI] | speedup | size ratio |",
             "|---|---|---|---|---|"]
    for n in sizes:
        r = summary.vs_teacher[f"student-n{n}"]
        lines.append(f"| student-n{n} | {_with_ci(r['perplexity_ratio'], r.get('perplexity_ratio_ci'))} | "
                     f"{_with_ci(r['pass_rate_ratio'], r.get('pass_rate_ratio_ci'))} | {_fmt(r['speedup'])} | "
                     f"{_fmt(r['size_ratio'], 3)} |")
    lines += ["", "Speedup: the speed term of the student's architecture over the teacher's (medians of their "
              "models' batch-1 tokens/s). Intervals, where the evaluations allow them: the paired bootstrap of the "
              "rankings (draws where the teacher passes no prompt are left out of the pass-rate ratio)."]
    return lines


def returns_lines(params, teacher: dict, summary: StudySummary) -> list[str]:
    """The curves, the rule's answer, the seeds, the fit and its backtest, and the adherence set's power."""
    rp: ReportParams = params.report
    lines = ["", "## Where more data stops paying", ""]
    lines += gain_table_lines(summary.diminishing_returns)
    lines += ["## Per size, over seeds", ""] + seeds_lines(summary.diminishing_returns)
    if summary.replicates_missing:
        lines += [f"Replicates not evaluated yet, left out: {', '.join(summary.replicates_missing)}.", ""]
    lines += ["## Diminishing returns: the study's own seed and the fit", ""]
    lines += steps_lines(summary.perplexity_steps)
    check = summary.fit_backtest
    lines += fit_lines(summary.perplexity_fit, rp.doubling_gain_threshold,
                       summary.doubling_gain_below_threshold_at, bool(check) and not check["passed"])
    lines += [""] + backtest_lines(summary.fit_backtest)
    lines += ["", f"## Adherence: what {teacher['adherence_prompts']} prompts can tell", ""]
    lines += power_lines(summary.adherence_power)
    return lines


def _minutes(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds / 60:.1f}"


def sweep_answer(record: SweepRecord) -> list[str]:
    """The sweep's stops in a few lines for the answer section; nothing for a study that was never swept."""
    if not record.rounds:
        return []
    lines = [f"- **The sweep** stopped {student} after round {stop['round']} ({stop['reason']}): {stop['why']}."
             for student, stop in record.student_stops.items()]
    if record.stop is None:
        return lines + [f"- **The sweep** is in round {record.rounds[-1].round} (`kdscale sweep` continues it)."]
    return lines + [f"- **The sweep** stopped after {len(record.rounds) - 1} round(s) ({record.stop['reason']}): "
                    f"{record.stop['why']}."]


def _round_cells(r, student: str, metric: str, record: StudyRecord, inside: list[bool]) -> tuple[str, str, str]:
    """A round's prediction for one student, what it observed at that size, and whether it fell inside."""
    pred, obs, hit = "-", "-", "-"
    prediction = (r.prediction or {}).get(student)
    if prediction and prediction.get("converged"):
        low, high = prediction["prediction_interval"]
        pred = f"{prediction['predicted']:.4g} [{low:.4g}, {high:.4g}]"
    # keyed by int in the summary the report computes, by str once read back from JSON
    per_size = {int(n): level for n, level in
                (record.students[student].diminishing_returns or {}).get("per_size", {}).items()}
    level = per_size.get(r.size)
    if level:
        value, (low_o, high_o) = level[metric]["value"], level[metric]["ci"]
        obs = f"{value:.4g} [{low_o:.4g}, {high_o:.4g}]"
        if pred != "-":
            inside.append(low <= value <= high)
            hit = "yes" if inside[-1] else "no"
    return pred, obs, hit


def sweep_lines(record: SweepRecord, study: StudyRecord) -> list[str]:
    """Every round of `kdscale sweep`: the prediction before it, what it measured, its cost and overhead."""
    if not record.rounds:
        return []
    metric, students = record.metric, list(study.students)
    lines = ["", "## The sweep", "",
             f"Each round added a size, predicted before it was spent: the fit of {metric} on the largest five sizes "
             "(95% prediction interval) and the cost at the rates earlier rounds measured. Observed: the size's "
             "value with its 95% interval over the held-out items and seeds.", "",
             "| round | adds | pool | student | predicted [95% PI] | observed [95% CI] | inside | teacher answers "
             "(pred. / meas.) | minutes (pred. / meas.) | overhead |", "|---|---|---|---|---|---|---|---|---|---|"]
    inside = []
    for r in record.rounds:
        adds = f"n={r.size:,}" if r.kind == "grow" else (
            "the study as found" if r.kind == "start" else f"seeds at n={r.predicted_cost['sizes']}")
        m = r.measured or {}
        answers = f"{r.predicted_cost.get('teacher_answers', '-')} / {m.get('teacher_answers', '-')}"
        minutes = f"{_minutes(r.predicted_cost.get('seconds'))} / {_minutes(m.get('wall_seconds'))}"
        overhead = f"{m['overhead_share']:.0%}" if m else "-"
        for i, student in enumerate(students):
            pred, obs, hit = _round_cells(r, student, metric, study, inside)
            shared = [str(r.round), adds, f"{r.pool_size:,}"] if i == 0 else ["", "", ""]
            cost = [answers, minutes, overhead] if i == 0 else ["", "", ""]
            lines.append("| " + " | ".join(shared + [student, pred, obs, hit] + cost) + " |")
    lines += ["", f"Coverage: {sum(inside)} of {len(inside)} observed values fell inside their 95% prediction "
              "interval." if inside else "Coverage: no round has both a prediction and an observation yet.",
              "Minutes measured: the round's `dvc repro` wall time; overhead: its share outside the stages' own work "
              "(DVC, process starts, the report and the MLflow sync)."]
    stop = record.stop
    if stop:
        lines += ["", f"Stopped ({stop['reason']}): {stop['why']}."]
        for student, forecast in (stop.get("prediction") or {}).items():
            if forecast and forecast.get("converged"):
                low, high = forecast["prediction_interval"]
                lines.append(f"- {student}: the fit's forecast for the next size, n={stop['next_size']:,}: {metric} "
                             f"{forecast['predicted']:.4g} [{low:.4g}, {high:.4g}] (95% prediction interval; "
                             "not measured).")
    return lines


def cost_lines(data: dict[str, StudentData], teacher: dict, generation: dict,
               answered: dict | None = None) -> list[str]:
    """Seconds per stage (the larger adherence set's too, where it was answered) and what the filters dropped."""
    lines = ["", "## Cost", "", "| step | seconds |", "|---|---|",
             f"| teacher generation ({generation['answers']} answers, {generation['generated_tokens']} tokens) | "
             f"{generation['generation_seconds']:.0f} |"]
    for d in data.values():
        who = f"{d.name} " if len(data) > 1 else ""
        lines += [f"| training {who}n={n} ({m['optimizer_steps']} steps) | {m['train_seconds']:.0f} |"
                  for n, m in sorted(d.sizes.items())]
        lines += [f"| evaluation {who}n={n} | {m['eval_seconds']:.0f} |" for n, m in sorted(d.sizes.items())]
        if d.replicas:
            lines.append(f"| {who}replicates ({len(d.replicas)}), training and evaluation | "
                         f"{sum(m['train_seconds'] + m['eval_seconds'] for m in d.replicas.values()):.0f} |")
    if answered:
        models = [m for e in answered["students"].values() for m in e["sizes"].values()] + [answered["teacher"]]
        lines.append(f"| the larger adherence set ({answered['prompts']} prompts), {len(models)} models with the "
                     f"teacher | {sum(m['eval_seconds'] for m in models):.0f} |")
    lines += [f"| evaluation teacher | {teacher['eval_seconds']:.0f} |", "",
              f"Teacher answers dropped by filters: {generation['dropped']} of {generation['answers']} "
              f"({', '.join(f'{k}: {v}' for k, v in dropped_read(generation).items() if v)})."]
    return lines


def type_lines(students: dict[int, dict], teacher: dict) -> list[str]:
    """Strict pass rate per instruction type."""
    sizes = sorted(students)
    models = [*(students[n] for n in sizes), teacher]
    rates = [TypeRates.read(m) for m in models]
    types = sorted({t for r in rates for t in r.pass_rate})
    lines = ["", "## Adherence by instruction type (strict)", "",
             "| type | prompts | " + " | ".join(f"n={n}" for n in sizes) + " | teacher |",
             "|---|---|" + "---|" * (len(sizes) + 1)]
    for t in types:
        prompts = next((r.prompts[t] for r in [rates[-1], *rates[:-1]] if t in r.prompts), "?")  # the teacher's first
        cells = [f"{r.pass_rate.get(t, float('nan')):.0%}" for r in rates]
        lines.append(f"| {t} | {prompts} | " + " | ".join(cells) + " |")
    return lines


def capacity_points(data: dict[str, StudentData], record: StudyRecord) -> list[capacity.Point]:
    """Each student's sizes as the joint fit reads them: its non-embedding parameters, and the perplexity per size
    (the geometric mean over seeds where the size has replicates)."""
    points = []
    for name, d in data.items():
        per_size = (record.students[name].diminishing_returns or {}).get("per_size", {})
        params_m = next(iter(d.sizes.values()))["non_embedding_parameters"] / 1e6
        for n, m in sorted(d.sizes.items()):
            level = per_size.get(n) or per_size.get(str(n))
            points.append(capacity.Point(name, params_m, n, level["perplexity"]["value"] if level else m["perplexity"]))
    return points


def adherence_set_results(params, teacher_set: dict, teacher_answers: list[dict]) -> dict:
    """eval.adherence_set per student at each size that answered it, against the teacher; for each student, its
    smallest and largest trained such size compared on the same prompts (exact McNemar test) with the prompts a
    two-proportion test would need to resolve the difference."""
    out = {"file": teacher_set["adherence_set"], "prompts": teacher_set["adherence_prompts"],
           "teacher": {k: teacher_set[k] for k in ("pass_rate", "pass_rate_ci_low", "pass_rate_ci_high",
                                                     "degenerate_share", "eval_seconds")}, "students": {}}
    teacher_strict = np.array([a["strict"] for a in sorted(teacher_answers, key=lambda a: a["id"])], dtype=float)
    for name in params.students:
        rows = {}
        for n in sorted(params.eval.adherence_set_sizes):
            run = Run(name, n, params.seed)
            if not paths.adherence_set_details(run).is_file():
                continue
            m = read_json(paths.adherence_set_details(run))
            answers = sorted(read_jsonl(paths.adherence_set_samples(run)), key=lambda a: a["id"])
            strict = np.array([a["strict"] for a in answers], dtype=float)
            rows[n] = {k: m[k] for k in ("pass_rate", "pass_rate_ci_low", "pass_rate_ci_high", "degenerate_share",
                                         "eval_seconds")}
            rows[n]["vs_teacher"] = stats.paired_vs(strict, teacher_strict)
            rows[n]["_strict"] = strict
        entry = {"sizes": {n: {k: v for k, v in r.items() if k != "_strict"} for n, r in rows.items()}}
        trained = [n for n in rows if n > 0]  # from the untrained student it measures the repair, not the data
        if len(trained) >= 2:
            small, large = min(trained), max(trained)
            entry["change"] = {"from": small, "to": large,
                               "points": rows[large]["pass_rate"] - rows[small]["pass_rate"],
                               "test": stats.paired_vs(rows[small]["_strict"], rows[large]["_strict"]),
                               "prompts_needed": stats.prompts_needed(rows[small]["pass_rate"],
                                                                      rows[large]["pass_rate"])}
        out["students"][name] = entry
    return out


def _rate(m: dict) -> str:
    return f"{m['pass_rate']:.1%} [{m['pass_rate_ci_low']:.1%}, {m['pass_rate_ci_high']:.1%}]"


def adherence_set_lines(results: dict | None) -> list[str]:
    """The larger adherence set: pass rates with 95% Wilson intervals, the change with data, against the teacher."""
    if not results:
        return []
    lines = ["", f"## Adherence on the larger set ({results['prompts']} prompts, `{results['file']}`)", "",
             f"The teacher passes {_rate(results['teacher'])} of them (strict, 95% Wilson interval)."]
    if not any(entry["sizes"] for entry in results["students"].values()):
        return lines + ["No student answered it: list the sizes to compare in `eval.adherence_set_sizes`."]
    lines += ["", "| student | samples | pass rate [95% CI] | degenerate | against the teacher: only teacher / "
              "only student, p |", "|---|---|---|---|---|"]
    for name, entry in results["students"].items():
        for n, m in entry["sizes"].items():
            vs = m["vs_teacher"]
            lines.append(f"| {name} | {n:,} | {_rate(m)} | {m['degenerate_share']:.0%} | {vs['only_teacher']} / "
                         f"{vs['only_student']}, p = {vs['p_value']:.2g} |")
    lines += [""]
    for name, entry in results["students"].items():
        change = entry.get("change")
        if not change:
            continue
        test, need = change["test"], change["prompts_needed"]
        verdict = "a change these prompts resolve" if test["p_value"] < 0.05 else "not resolved by these prompts"
        # stats.paired_vs(smaller, larger): "only_teacher" counts the prompts only the larger size passes
        lines.append(f"- **{name}**, n={change['from']:,} -> n={change['to']:,}: {change['points'] * 100:+.1f} points "
                     f"({test['only_student']} prompts passed only at n={change['from']:,}, {test['only_teacher']} "
                     f"only at n={change['to']:,}; exact McNemar p = {test['p_value']:.2g}): {verdict}; resolving a "
                     "difference this size with 80% power takes " + ("no number of prompts: the rates are equal"
                                                                      if need is None else
                                                                      f"about {need:,} prompts per model") + ".")
    return lines


def _answers(entry: dict) -> str:
    """An answer count with its interval: "never" where the fit says it is out of reach."""
    def fmt(x):
        return "never" if x is None else f"{x:,.0f}"
    low, high = entry["interval"]
    return f"{fmt(entry['answers'])} [{fmt(low)}, {fmt(high)}]"


def joint_fit_lines(across: dict | None, threshold: float) -> list[str]:
    """The joint fit of data and capacity: each form with its backtests, then what the trusted one says."""
    if not across:
        return []
    lines = ["", "## Data and capacity: one fit across students", "",
             "P: a student's non-embedding parameters (millions); N: its training answers; least squares on log "
             f"perplexity over each student's largest {stats.FIT_WINDOW} sizes (kdscale.capacity).", ""]
    for f in across["forms"]:
        if not f["converged"]:
            lines += [f"- **{f['form']}** ({f['formula']}): no fit on {f['points']} points ({f['why']}).", ""]
            continue
        estimate = ", ".join(f"{k} = {v:.4g} (+- {_fmt(f['se'][k])})" for k, v in f["estimate"].items())
        lines += [f"**{f['form']}**, perplexity = {f['formula']}: {estimate}; residual RMS {f['rmse_log']:.3f} in "
                  f"log perplexity over {f['points']} points.", "",
                  "| held out | student | n | predicted [95% PI] | observed | error | inside |",
                  "|---|---|---|---|---|---|---|"]
        for c in f["backtests"]:
            what = "its largest size" if c["held_out"] == "size" else "the whole student"
            if not c["converged"]:
                lines.append(f"| {what} | {c['student']} | {c['size']:,} | did not converge | "
                             f"{_ppl(c['observed'])} | - | no |")
                continue
            low, high = c["prediction_interval"]
            lines.append(f"| {what} | {c['student']} | {c['size']:,} | {_ppl(c['predicted'])} [{_ppl(low)}, "
                         f"{_ppl(high)}] | {_ppl(c['observed'])} | {c['error']:+.1%} | "
                         f"{'yes' if c['passed'] else 'no'} |")
        if not any(c["held_out"] == "student" for c in f["backtests"]):
            lines += ["", "No whole student is held out: with two students, one alone cannot tell capacity apart."]
        unpinned = [k for k, ok in f["identifiable"].items() if not ok]
        lines += ["", f"Backtest (each student's largest size held out): "
                  f"{'passed' if all(c['passed'] for c in f['backtests'] if c['held_out'] == 'size') else 'failed'}; "
                  + (f"not identifiable from these points: {', '.join(unpinned)}." if unpinned else
                     "every parameter identifiable (standard error under its estimate)."), ""]
    if across["chosen"] is None:
        return lines + ["No form is both identifiable and backtested, so the report draws no trade between data and "
                        "capacity from it."]
    lines += [f"The {across['chosen']} form is identifiable and passes its backtest with the smaller error. What it "
              "says (95% intervals over the parameters' uncertainty; not a measurement where beyond the data):", "",
              "| to reach perplexity | " + " | ".join(across["stops_paying"]) + " |",
              "|---|" + "---|" * len(across["stops_paying"])]
    for row in across["iso_perplexity"]:
        lines.append(f"| {_ppl(row['perplexity'])} | " + " | ".join(_answers(e) for e in row["students"].values())
                     + " |")
    lines += ["", f"Where a doubling stops paying (its fitted gain under {threshold:.0%}):", ""]
    for name, stop in across["stops_paying"].items():
        at, largest = stop["size"], stop["largest_trained"]
        where = ("beyond 10^9 answers" if at is None else "within the data" if at <= largest
                 else f"{at / largest:.0f}x beyond the largest size, a forecast")
        lines.append(f"- {name}: {_answers({'answers': at, 'interval': stop['interval']})} answers ({where}).")
    return lines


def across(params, data: dict[str, StudentData], record: StudyRecord) -> dict:
    """What the report computes beyond each student: the joint fit (several students) and the larger adherence set
    (where the teacher answered it)."""
    unsized = [name for name, d in data.items()
               if "non_embedding_parameters" not in next(iter(d.sizes.values()))]  # evaluated before it was recorded
    if unsized:
        print(f"report: warning: no fit across students: the evaluations of {', '.join(unsized)} do not record "
              "their parameters; rerun them (`dvc repro -f -s evaluate@...`)", file=sys.stderr)
    joint = capacity.across_students(capacity_points(data, record), params.report.doubling_gain_threshold,
                                     {name: max(d.sizes) for name, d in data.items()}) \
        if len(data) > 1 and not unsized else None
    teacher_set = paths.adherence_set_details(None)
    answered = adherence_set_results(params, read_json(teacher_set), read_jsonl(paths.adherence_set_samples(None))) \
        if teacher_set.is_file() else None
    return {"joint": joint, "adherence_set": answered}


def demoted(lines: list[str]) -> list[str]:
    """A section's headings one level down, to sit under its student's heading."""
    return ["#" + line if line.startswith("## ") else line for line in lines]


def student_lines(params, d: StudentData, teacher: dict, summary: StudySummary) -> list[str]:
    """One student's tables: results, rankings, against the teacher, its curve, the rule and the fit, adherence."""
    return (results_lines(params, d.sizes, teacher, summary) + ranking_lines(params, d.sizes, summary)
            + vs_teacher_lines(d.sizes, summary) + returns_lines(params, teacher, summary)
            + type_lines(d.sizes, teacher))


def describe(student) -> str:
    """A student as the report's header names it: its model and, for a pruned or scratch one, its depth."""
    if student.keep_layers:
        return f"`{student.model}`, layers {student.keep_layers}"
    if student.model in ("pruned", "scratch"):
        return f"`{student.model}`, {student.num_layers} layer{'s' if student.num_layers > 1 else ''}"
    return f"`{student.model}`"


def build_report(params, data: dict[str, StudentData], teacher: dict, generation: dict, record: StudyRecord,
                 sweep: SweepRecord | None = None) -> str:
    """reports/report.md: the answer first, then the tables behind it, one section per student where the study has
    several (and the sweep's rounds, where it had some)."""
    sweep = sweep or SweepRecord(params.sweep.metric)
    several = len(data) > 1
    students = ", ".join(f"{name} ({describe(params.students[name])})" for name in data)
    header = ["# kdscale report", "",
              f"Teacher `{params.teacher.model}` ({params.teacher.prompt_format} prompts), "
              f"student{'s' if several else ''} {students}, prompts from `{params.data.source}`, sizes "
              f"{sorted(params.scaling.sizes)}, seed {params.seed}.", ""]
    lines = header + ["## The answer", ""]
    for name, summary in record.students.items():
        lines += ([f"### {name}", ""] if several else []) + answer_lines(params, teacher, summary)
    lines += [*sweep_answer(sweep), "", "Every model's answers to the adherence prompts, side by side: "
              "[answers.md](answers.md).", ""]
    lines += ["## Scaling curves", "", "![scaling curves](scaling.png)", ""]
    for name, summary in record.students.items():
        body = student_lines(params, data[name], teacher, summary)
        lines += [f"## Student {name}", ""] + demoted(body) + [""] if several else body
    across = record.across or {}
    lines += joint_fit_lines(across.get("joint"), params.report.doubling_gain_threshold)
    lines += adherence_set_lines(across.get("adherence_set"))
    lines += sweep_lines(sweep, record) + cost_lines(data, teacher, generation, across.get("adherence_set"))
    return "\n".join(lines) + "\n"


def build_answers(teacher_samples: list[dict], data: dict[str, StudentData]) -> str:
    """reports/answers.md: every adherence prompt, answered by the teacher and every student."""
    lines = ["# Answers side by side", "", "Each adherence prompt with the teacher's answer and every student's "
             "(the study's own seed), cut at 400 characters; the verdict is the strict one.", ""]
    several = len(data) > 1
    answers = {(f"{d.name} n={n}" if several else f"n={n}"): samples
               for d in data.values() for n, samples in sorted(d.samples.items())}
    return "\n".join(lines + side_by_side(teacher_samples, answers)) + "\n"


@dataclass
class StudentData:
    """One student's evaluations as the report reads them: per size with the study's seed, and its replicates."""
    name: str
    sizes: dict[int, dict]  # size -> evaluation details
    samples: dict[int, list[dict]]  # size -> its answers to the adherence prompts
    replicas: dict[tuple[int, int], dict] = field(default_factory=dict)  # (size, seed) -> details
    replica_samples: dict[str, list[dict]] = field(default_factory=dict)  # model name -> answers
    missing: list[str] = field(default_factory=list)  # replicates not evaluated yet

    @classmethod
    def read(cls, params, name: str) -> StudentData:
        main = [r for r in runs(params) if r.student == name and r.seed == params.seed]
        others = [r for r in runs(params) if r.student == name and r.seed != params.seed]
        done = [r for r in others if paths.student_details(r).is_file()]
        return cls(name, {r.size: read_json(paths.student_details(r)) for r in main},
                   {r.size: read_jsonl(paths.student_samples(r)) for r in main},
                   {(r.size, r.seed): read_json(paths.student_details(r)) for r in done},
                   {model_name(r.size, r.seed): read_jsonl(paths.student_samples(r)) for r in done},
                   [r.name for r in others if r not in done])

    def summarize(self, params, teacher: dict, teacher_samples: list[dict], generation: dict) -> StudySummary:
        evidence = paired_evidence(
            by_name(self.sizes, teacher) | {model_name(*r): d for r, d in self.replicas.items()},
            by_name(self.samples, teacher_samples) | self.replica_samples)
        summary = summarize(params, self.sizes, teacher, generation, evidence, self.replicas)
        summary.replicates_missing = self.missing
        return summary


def stale_files(params) -> list[Path]:
    """Metrics and loss curves of runs no longer in params.yaml: DVC never deletes them, and `dvc metrics show`
    and `dvc exp show` would go on listing them beside the current study."""
    current = {f(r) for r in runs(params) for f in (paths.student_metrics, paths.student_details, paths.loss_plot)}
    current |= {paths.TEACHER_EVAL_METRICS, paths.TEACHER_EVAL_DETAILS, paths.TEACHER_METRICS}
    found = [*paths.METRICS_DIR.glob("*.json"), *paths.DETAILS_DIR.glob("*.json"), *paths.LOSS_PLOTS_DIR.glob("*.json")]
    return sorted(p for p in found if p not in current)


def write_plots(params, data: dict[str, StudentData], record: StudyRecord) -> None:
    """plots/scaling.json (a row per student and size) and plots/loss.json (a row per run and step), for DVC."""
    write_json(paths.PLOTS_DIR / "scaling.json", [
        {"student": name, "size": n, **{k: m.get(k) for k in scaling_keys()},
         "combined_score": record.students[name].combined_score[model_name(n)]}
        for name, d in data.items() for n, m in sorted(d.sizes.items())])
    write_json(paths.LOSS_PLOT, [
        {"student": r.student, "samples": r.size, "step": row["step"], "loss": row["loss"]}
        for name, d in data.items() for r in (Run(name, n, params.seed) for n in sorted(d.sizes))
        for row in read_json(paths.loss_plot(r))])


def main(argv=None) -> None:
    argparse.ArgumentParser(prog="kdscale report", description=__doc__).parse_args(argv)
    params = load_params()
    data = {name: StudentData.read(params, name) for name in params.students}
    missing = [m for d in data.values() for m in d.missing]
    if missing:
        print(f"report: warning: replicates not evaluated yet, left out: {', '.join(missing)} "
              "(`dvc repro` runs them)", file=sys.stderr)
    stale = stale_files(params)
    if stale:
        print(f"report: warning: results of runs no longer in params.yaml are still in the workspace; "
              f"remove them with `git rm {' '.join(map(str, stale))}`", file=sys.stderr)
    teacher = read_json(paths.TEACHER_EVAL_DETAILS)
    generation = read_json(paths.TEACHER_METRICS)
    teacher_samples = read_jsonl(paths.TEACHER_SAMPLES)
    record = StudyRecord({name: d.summarize(params, teacher, teacher_samples, generation) for name, d in data.items()})
    record.across = across(params, data, record)

    write_plots(params, data, record)
    paths.REPORTS_DIR.mkdir(parents=True, exist_ok=True)
    draw_curves({name: (d.sizes, d.replicas) for name, d in data.items()}, teacher, paths.SCALING_FIGURE)
    report = build_report(params, data, teacher, generation, record, SweepRecord.read(paths.SWEEP))
    with atomic_open(paths.REPORT) as f:
        f.write(report)
    with atomic_open(paths.ANSWERS) as f:
        f.write(build_answers(teacher_samples, data))
    record.write(paths.SUMMARY_DETAILS, paths.SUMMARY)

    for name, summary in record.students.items():
        print(f"report: {paths.REPORT}; {name}: {best_student_line(summary)}")
    # The pipeline's last step fills the MLflow view from the files the stages wrote (one writer for it).
    from kdscale.tracking import sync

    sync.main([])


if __name__ == "__main__":
    from kdscale.cli import run

    run(main)
