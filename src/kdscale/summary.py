"""What a study's report says, computed from the stages' files: the combined scores and their rankings,
each student against the teacher, every step in data with its interval over answers, prompts and seeds,
where more data stops paying, and the fit of perplexity against data. `report` renders it.

combined_score = w_ppl * q_ppl + w_pass * pass_rate + w_speed * q_speed, each axis normalised across the
study (students and teacher) so that a weight means what it says:
  q_ppl   = lowest perplexity of the study / perplexity
  q_speed = speed of the model's architecture / that of the fastest architecture, where an architecture's
            speed is the median tokens_per_sec of its models (so timing jitter cannot rank students that
            share one architecture).
combined_score_seed keeps the seed's raw formula: w_ppl / perplexity + w_pass * pass_rate
+ w_speed * tokens_per_sec / max tokens_per_sec.

The scores' intervals and the rankings' ties come from a paired bootstrap over the adherence prompts and
the held-out answers, which every model answered alike: a ranking orders two models only where the data do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kdscale import metrics, stats
from kdscale.records import StudySummary
from kdscale.stats import (SCORE_RESAMPLES, Evidence, Resampled, doubling_threshold, fit_saturating, identifiable,
                           interval95, resampled_axes, separated)

OTHER_WEIGHTINGS = {  # (perplexity, pass rate, speed)
    "quality_only": (0.5, 0.5, 0.0),
    "adherence_only": (0.0, 1.0, 0.0),
    "speed_heavy": (0.2, 0.2, 0.6),
    "equal": (1 / 3, 1 / 3, 1 / 3),
}


def speed_terms(models: dict[str, dict]) -> dict[str, float]:
    """Each model's speed: the median tokens_per_sec over the models of its architecture."""
    by_arch: dict[str, list[float]] = {}
    for name, m in models.items():
        by_arch.setdefault(m.get("architecture", name), []).append(m["tokens_per_sec"])
    return {name: float(np.median(by_arch[m.get("architecture", name)])) for name, m in models.items()}


def combine(weights: tuple[float, float, float], q_ppl, pass_rate, q_speed):
    """The combined score of normalised axes: numbers, or arrays of bootstrap draws."""
    w_ppl, w_pass, w_speed = weights
    return w_ppl * q_ppl + w_pass * pass_rate + w_speed * q_speed


def combined_scores(models: dict[str, dict], weights: tuple[float, float, float]) -> dict[str, float]:
    """w_ppl * lowest perplexity / perplexity + w_pass * pass_rate + w_speed * speed term / fastest speed term."""
    lowest = min(m["perplexity"] for m in models.values())
    speeds = speed_terms(models)
    fastest = max(speeds.values())
    return {name: combine(weights, lowest / m["perplexity"], m["pass_rate"], speeds[name] / fastest)
            for name, m in models.items()}


def model_name(size: int, seed: int | None = None) -> str:
    """A model of one student's summary: student-nN for the study's seed, student-nN-seedS for a replicate."""
    return f"student-n{size}" if seed is None else f"student-n{size}-seed{seed}"


def by_name(students: dict[int, dict | list], teacher: dict | list) -> dict:
    """Per-size student entries and the teacher's, under the names the summary uses."""
    return {model_name(n): students[n] for n in sorted(students)} | {"teacher": teacher}


def combined_scores_seed(models: dict[str, dict], weights: tuple[float, float, float]) -> dict[str, float]:
    """The seed's raw formula: with perplexities above 5 it weighs perplexity at almost nothing."""
    fastest = max(m["tokens_per_sec"] for m in models.values())
    w_ppl, w_pass, w_speed = weights
    return {name: w_ppl / m["perplexity"] + w_pass * m["pass_rate"] + w_speed * m["tokens_per_sec"] / fastest
            for name, m in models.items()}


def score_draws(resampled: Resampled, speeds: dict[str, float], weights: tuple[float, float, float]) -> np.ndarray:
    """Combined scores on the draws (models x draws); speed terms as measured."""
    q_speed = np.array([speeds[n] for n in resampled.names]) / max(speeds.values())
    return combine(weights, resampled.q_ppl, resampled.pass_rate, q_speed[:, None])


def ranking_with_ties(scores: dict[str, float], draws: np.ndarray | None, names: list[str]) -> str:
    """Best first: ' > ' where the data order two neighbours, ' ≈ ' where they do not."""
    order = sorted(scores, key=scores.get, reverse=True)
    if draws is None:
        return ", ".join(order)
    row = {name: i for i, name in enumerate(names)}
    text = order[0]
    for above, below in zip(order, order[1:]):
        text += (" > " if separated(draws, row[above], row[below]) else " ≈ ") + below
    return text


def vs_teacher(models: dict[str, dict], speeds: dict[str, float],
               resampled: Resampled | None = None) -> dict[str, dict]:
    """Each student as a fraction of the teacher. The speedup divides architecture speed terms (one timing
    per model is jitter); with draws, the quality ratios get paired bootstrap intervals."""
    teacher = models["teacher"]
    out = {}
    for name, m in models.items():
        if name == "teacher":
            continue
        out[name] = {"perplexity_ratio": m["perplexity"] / teacher["perplexity"],
                     "pass_rate_ratio": m["pass_rate"] / teacher["pass_rate"] if teacher["pass_rate"] else None,
                     "speedup": speeds[name] / speeds["teacher"],
                     "size_ratio": m["model_size_mb"] / teacher["model_size_mb"]}
        if resampled:
            student, top = resampled.row(name), resampled.row("teacher")
            out[name]["perplexity_ratio_ci"] = interval95(resampled.q_ppl[top] / resampled.q_ppl[student])
            with np.errstate(divide="ignore", invalid="ignore"):  # draws where the teacher passes nothing
                ratio = resampled.pass_rate[student] / resampled.pass_rate[top]
            finite = ratio[np.isfinite(ratio)]
            out[name]["pass_rate_ratio_ci"] = interval95(finite) if len(finite) else None
    return out


def perplexity_steps(students: dict[int, dict], resampled: Resampled | None = None) -> list[dict]:
    """Each size's perplexity over the next size's (above 1: the larger set is better), with the paired
    bootstrap's interval: what each step in data still buys, without assuming a curve."""
    sizes = sorted(students)
    steps = []
    for small, large in zip(sizes, sizes[1:]):
        step = {"from": small, "to": large, "ratio": students[small]["perplexity"] / students[large]["perplexity"],
                "ratio_ci": None}
        if resampled:  # q_ppl = lowest / perplexity, so a perplexity ratio is the inverse ratio of q_ppl
            q_ppl = resampled.q_ppl
            step["ratio_ci"] = interval95(q_ppl[resampled.row(f"student-n{large}")]
                                          / q_ppl[resampled.row(f"student-n{small}")])
        steps.append(step)
    return steps


SEEDED = [m.name for m in metrics.resampled()]  # with an interval over items and seeds per size
RULED = [m.name for m in metrics.ruled()]  # the metrics the diminishing-returns rule is applied to


def seed_rows(sizes: list[int], replicas: list[tuple[int, int]]) -> dict[int, list[str]]:
    """Each size's models: the study's seed first, then its replicates."""
    rows = {n: [f"student-n{n}"] for n in sizes}
    for n, seed in replicas:
        rows[n].append(model_name(n, seed))
    return rows


def seeded_metric(metric: str, rows: list[str], models: dict[str, dict], resampled: Resampled) -> stats.Seeded:
    if metric == "perplexity":  # seeds average on the log scale: they differ by factors
        points = [math.log(models[r]["perplexity"]) for r in rows]
        draws = [resampled.log_ppl[resampled.row(r)] for r in rows]
    else:
        points = [models[r][metric] for r in rows]
        source = resampled.pass_rate if metric == "pass_rate" else resampled.rates[metric]
        draws = [source[resampled.row(r)] for r in rows]
    return stats.Seeded(np.array(points, dtype=float), np.array(draws))


def per_size(rows: dict[int, list[str]], models: dict[str, dict], resampled: Resampled) -> dict[int, dict]:
    """Each size's metrics: the mean over its seeds (perplexity: geometric) with a 95% interval over the
    held-out items and the seeds."""
    out = {}
    for n, names in rows.items():
        entry = {"seeds": len(names)}
        for metric in SEEDED:
            level = stats.seeded_level(seeded_metric(metric, names, models, resampled))
            if metric == "perplexity":
                level |= {"value": math.exp(level["value"]), "ci": [math.exp(c) for c in level["ci"]]}
            entry[metric] = level
        out[n] = entry
    return out


def seeded_steps(rows: dict[int, list[str]], models: dict[str, dict], resampled: Resampled, metric: str) -> list[dict]:
    """Each step between trained sizes: its gain (positive where the larger set is better; perplexity: the
    relative fall, a rate: the change in points) with a 95% interval over items and seeds."""
    sizes = sorted(n for n in rows if n > 0)
    steps = []
    for small, large in zip(sizes, sizes[1:]):
        before, after = (seeded_metric(metric, rows[n], models, resampled) for n in (small, large))
        step = stats.seeded_step(before, after)
        low, high = step["ci"]
        level = float(before.points.mean())
        if metric == "perplexity":  # the step is log ppl(large) - log ppl(small)
            gain, ci = 1 - math.exp(step["value"]), [1 - math.exp(high), 1 - math.exp(low)]
            relative, relative_ci = gain, ci
        else:
            sign = 1 if metrics.METRICS[metric].higher_is_better else -1
            gain, ci = sign * step["value"], sorted([sign * low, sign * high])
            relative, relative_ci = (gain / level, [c / level for c in ci]) if level > 0 else (None, None)
        steps.append({"from": small, "to": large, "gain": gain, "gain_ci": ci, "relative_gain": relative,
                      "relative_gain_ci": relative_ci, "levels": [level, float(after.points.mean())],
                      "seeds": step["seeds"], "seed_spread": step["seed_spread"]})
    return steps


def diminishing_returns(threshold: float, rows: dict[int, list[str]], models: dict[str, dict],
                        resampled: Resampled) -> dict:
    rule = stats.Rule(threshold)
    steps = {metric: seeded_steps(rows, models, resampled, metric) for metric in RULED}
    return {"per_size": per_size(rows, models, resampled), "steps": steps,
            "stops_at": {metric: stats.where_paying_ends(s, rule) for metric, s in steps.items()}}


def seed_mean_perplexity(names: list[str], models: dict[str, dict]) -> float:
    values = [models[n]["perplexity"] for n in names]
    return values[0] if len(values) == 1 else math.exp(float(np.mean(np.log(values))))


def adherence_power(students: dict[int, dict], teacher: dict, evidence: Evidence | None) -> dict:
    """The adherence set's resolving power: each student against the teacher on the same prompts
    (discordant prompts, exact McNemar test), and how many prompts would separate the rates observed."""
    sizes = sorted(students)
    out = {"vs_teacher": {}, "prompts": teacher["adherence_prompts"]}
    if evidence is not None:
        top = evidence.names.index("teacher")
        for n in sizes:
            row = evidence.names.index(f"student-n{n}")
            out["vs_teacher"][n] = stats.paired_vs(evidence.strict[row], evidence.strict[top])
    best = max(sizes, key=lambda n: students[n]["pass_rate"])
    out["best"] = {"size": best, "pass_rate": students[best]["pass_rate"], "teacher": teacher["pass_rate"],
                   "prompts_needed": stats.prompts_needed(students[best]["pass_rate"], teacher["pass_rate"])}
    trained = [n for n in sizes if n > 0]
    if len(trained) >= 2:
        small, large = trained[-2], trained[-1]
        out["last_step"] = {"from": small, "to": large, "pass_rates": [students[small]["pass_rate"],
                                                                        students[large]["pass_rate"]],
                            "prompts_needed": stats.prompts_needed(students[small]["pass_rate"],
                                                                   students[large]["pass_rate"])}
    return out


@dataclass
class Scores:
    """The combined scores under each weighting (the params' and OTHER_WEIGHTINGS), ranked, with their draws."""
    scores: dict[str, dict[str, float]]
    rankings: dict[str, list[str]]
    ties: dict[str, str]
    draws: dict[str, np.ndarray | None]


def score_models(models: dict[str, dict], weights, speeds: dict[str, float], resampled: Resampled | None) -> Scores:
    out = Scores({}, {}, {}, {})
    for name, w in {"params": weights, **OTHER_WEIGHTINGS}.items():
        out.scores[name] = combined_scores(models, w)
        out.draws[name] = score_draws(resampled, speeds, w) if resampled else None
        out.rankings[name] = sorted(out.scores[name], key=out.scores[name].get, reverse=True)
        out.ties[name] = ranking_with_ties(out.scores[name], out.draws[name], resampled.names if resampled else [])
    return out


def best_student(sizes: list[int], scored: Scores, resampled: Resampled | None, models: dict[str, dict]):
    """The best student by the params' weights, the next one, whether the bootstrap separates them, and
    every model's score interval."""
    scores, draws = scored.scores["params"], scored.draws["params"]
    best = max(sizes, key=lambda n: scores[f"student-n{n}"])
    runner_up = next((name for name in scored.rankings["params"] if name.startswith("student-")
                      and name != f"student-n{best}"), None)  # the next student by the point estimate
    best_separated, interval = None, None
    if resampled:
        if runner_up:
            best_separated = separated(draws, resampled.row(f"student-n{best}"), resampled.row(runner_up))
        interval = {name: interval95(draws[resampled.row(name)]) for name in models}
    return best, runner_up, best_separated, interval


def summarize(params, students: dict[int, dict], teacher: dict, generation: dict,
              evidence: Evidence | None = None, replicas: dict[tuple[int, int], dict] | None = None) -> StudySummary:
    """Everything the report says; with `evidence` (paired_evidence, over every model including the
    replicates), intervals, ties, the seeds' spread and the diminishing-returns rule as well."""
    rp, replicas, models = params.report, replicas or {}, by_name(students, teacher)
    everyone = models | {model_name(n, s): d for (n, s), d in sorted(replicas.items())}
    weights = (rp.weight_perplexity, rp.weight_pass_rate, rp.weight_speed)
    speeds = speed_terms(models)
    # The same draws for all (they depend only on how many answers and prompts there are), so the rankings'
    # rows, over the study's own seed, pair with the replicates' rows.
    resampled = resampled_axes(evidence.only(list(models))) if evidence else None
    resampled_all = resampled_axes(evidence) if evidence else None
    scored = score_models(models, weights, speeds, resampled)
    sizes = sorted(students)
    best, runner_up, best_separated, interval = best_student(sizes, scored, resampled, models)
    rows = seed_rows(sizes, sorted(replicas))
    curve = [seed_mean_perplexity(rows[n], everyone) for n in sizes]  # over seeds where there are replicates
    fit = fit_saturating(sizes, curve)
    check = stats.backtest(sizes, curve)
    extrapolates = identifiable(fit) and (check is None or check["passed"])
    return StudySummary(
        weights={"perplexity": weights[0], "pass_rate": weights[1], "speed": weights[2]},
        lowest_perplexity=min(m["perplexity"] for m in models.values()),
        speed_term=speeds,
        fastest_architecture_speed=max(speeds.values()),
        max_tokens_per_sec=max(m["tokens_per_sec"] for m in models.values()),
        normalisation="combined_score: q_ppl = lowest_perplexity / perplexity; q_speed = speed_term / "
                      "fastest_architecture_speed, where speed_term is the median tokens_per_sec of the models of "
                      "one architecture; pass_rate as measured. combined_score_seed: q_ppl = 1 / perplexity; "
                      "q_speed = tokens_per_sec / max_tokens_per_sec.",
        combined_score=scored.scores["params"],
        combined_score_ci=interval,
        combined_score_seed=combined_scores_seed(models, weights),
        best_student_size=best,
        runner_up=runner_up,
        best_student_separated=best_separated,
        rankings=scored.rankings,
        rankings_with_ties=scored.ties,
        score_uncertainty=(
            f"95% paired percentile bootstrap ({SCORE_RESAMPLES} draws) over the {evidence.strict.shape[1]} "
            f"adherence prompts and the {evidence.nll_sums.shape[1]} held-out answers, the same draw for every "
            "model, perplexity normalised within each draw, speed terms as measured; it covers which prompts and "
            "answers were drawn, not the training seed" if evidence else
            "none: the evaluations hold no per-answer scores on common answers and prompts (rerun the evaluate "
            "stages)"),
        vs_teacher=vs_teacher(models, speeds, resampled),
        optimizer_steps={f"student-n{n}": students[n]["optimizer_steps"] for n in sizes},
        perplexity_steps=perplexity_steps(students, resampled),
        perplexity_fit=fit,
        fit_backtest=check,
        doubling_gain_below_threshold_at=(
            doubling_threshold(fit, rp.doubling_gain_threshold) if extrapolates else None),
        seeds={n: len(rows[n]) for n in sizes},
        diminishing_returns=diminishing_returns(rp.doubling_gain_threshold, rows, everyone, resampled_all)
        if resampled_all else None,
        adherence_power=adherence_power(students, teacher, evidence),
        teacher_generation_seconds=generation["generation_seconds"],
        total_train_seconds=sum(students[n]["train_seconds"] for n in sizes),
    )
