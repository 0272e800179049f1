"""The project's statistics, used by evaluate, report and compare: the Wilson interval of a pass rate, the
bootstrap of pooled perplexity over answers, the t-interval over seeds, seeds combined with items, the
diminishing-returns rule, the fit's backtest and the power of the adherence set. scipy is imported
where it is used, so a stage that needs only the bootstrap does not pay for it.

Every model of a study is scored on the same held-out answers and adherence prompts, so a paired bootstrap
over those items (report.resampled_axes) gives each model's metric on common draws. Replicate seeds add the
other source of noise: training on another draw of the data, in another order. Here the two are combined:
the items' variance from the draws, the seeds' from their spread (sample variance / count), with
Welch-Satterthwaite degrees of freedom for the t quantile, because 3 seeds are few.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from kdscale import metrics


class _Scipy:
    """scipy.stats and curve_fit, imported on first use: evaluate needs one Wilson interval, not all of scipy
    at start-up."""

    def __getattr__(self, name):
        from scipy import optimize, stats

        return getattr(optimize if name == "curve_fit" else stats, name)


sps = _Scipy()


# ----------------------------------------------------------------------------- one model

def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (scipy's); n = 0 gives (0, 1). 0/n has a lower bound of exactly
    0 and n/n an upper bound of exactly 1 (floating point alone would put 0/50's at 7e-18), and the
    interval always contains successes/n."""
    if n == 0:
        return (0.0, 1.0)
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    ci = sps.binomtest(successes, n).proportion_ci(confidence_level=level, method="wilson")
    p = successes / n
    low = 0.0 if successes == 0 else min(p, max(0.0, float(ci.low)))
    high = 1.0 if successes == n else max(p, min(1.0, float(ci.high)))
    return (low, high)


def resample(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap picks: `resamples` rows of n indices drawn from range(n) with replacement."""
    return rng.integers(0, n, size=(resamples, n))


def pooled_log_perplexity(nll_sums: np.ndarray, token_counts: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """log perplexity pooled over the picked answers (their NLL sum over their tokens), per row of picks;
    the last axis of `nll_sums`/`token_counts` is the answers'. A row of only empty answers gives nan."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return nll_sums[..., picks].sum(-1) / token_counts[..., picks].sum(-1)


def bootstrap_perplexity(sums, counts, resamples: int = 2000, seed: int = 0,
                         level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of one model's pooled perplexity over its answers."""
    sums, counts = np.asarray(sums, dtype=float), np.asarray(counts, dtype=float)
    if len(sums) == 0 or counts.sum() == 0:
        return float("nan"), float("nan")
    log_ppl = pooled_log_perplexity(sums, counts, resample(len(sums), resamples, np.random.default_rng(seed)))
    ppl = np.exp(log_ppl[np.isfinite(log_ppl)])  # a resample of only empty answers is skipped, not scored
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(ppl, [tail, 100 - tail])
    return float(low), float(high)


def t_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and t-interval over seeds (values: one per seed, at least 2)."""
    xs = np.asarray(values, dtype=float)
    mean = float(xs.mean())
    half = float(sps.t.ppf(0.5 + level / 2, len(xs) - 1)) * float(xs.std(ddof=1)) / math.sqrt(len(xs))
    return mean, mean - half, mean + half


# ----------------------------------------------------------------------------- seeds and items

@dataclass
class Seeded:
    """One metric at one size: the value of each seed (on all items) and its bootstrap draws (seeds x draws)."""
    points: np.ndarray
    draws: np.ndarray

    @property
    def seeds(self) -> int:
        return len(self.points)


def _combined(value: float, item_draws: np.ndarray, seed_terms: list[tuple[float, int]], level: float) -> dict:
    """value +- t * sqrt(items' variance + seeds' variance); seed_terms: (variance of a mean, its dof)."""
    var_items = float(np.var(item_draws, ddof=1))
    var_seeds = sum(v for v, _ in seed_terms)
    total = var_items + var_seeds
    denominator = sum(v * v / dof for v, dof in seed_terms)
    dof = total * total / denominator if denominator > 0 else math.inf
    half = float(sps.t.ppf(0.5 + level / 2, dof)) * math.sqrt(total) if total > 0 else 0.0
    return {"value": value, "ci": [value - half, value + half], "dof": dof,
            "item_sd": math.sqrt(var_items), "seed_sd": math.sqrt(var_seeds)}


def _seed_term(metric: Seeded) -> list[tuple[float, int]]:
    if metric.seeds < 2:
        return []  # one seed: its spread is not measured
    return [(float(np.var(metric.points, ddof=1)) / metric.seeds, metric.seeds - 1)]


def seeded_level(metric: Seeded, level: float = 0.95) -> dict:
    """The mean over seeds with an interval over items and seeds."""
    out = _combined(float(metric.points.mean()), metric.draws.mean(axis=0), _seed_term(metric), level)
    return out | {"seeds": metric.seeds}


def seeded_step(small: Seeded, large: Seeded, level: float = 0.95) -> dict:
    """large's mean over seeds minus small's, with an interval over items (paired: the same draws) and seeds.
    `seed_spread` says whether both sizes' seed spread is in it, one's, or none."""
    out = _combined(float(large.points.mean() - small.points.mean()),
                    large.draws.mean(axis=0) - small.draws.mean(axis=0), _seed_term(small) + _seed_term(large), level)
    measured = (small.seeds > 1) + (large.seeds > 1)
    return out | {"seeds": [small.seeds, large.seeds], "seed_spread": ("none", "one size", "both sizes")[measured]}


# ----------------------------------------------------------------------------- where more data stops paying

@dataclass
class Rule:
    """Whether a step in data pays, judged on its gain, relative to the smaller size, and the gain's 95% interval:

      pays        the gain is distinguishable from noise (its interval lies above 0) and at least `threshold`;
      stops       its whole interval lies below `threshold`: more data buys less than that, whatever the noise;
      unresolved  neither: the interval holds a gain under the threshold (or none) and one at or above it, so
                  the items (prompts, answers) and seeds cannot tell; more of them would.
    """
    threshold: float

    def verdict(self, step: dict) -> tuple[str, str]:
        """("pays" | "stops" | "unresolved", why in words)."""
        rel, (_, rel_high) = _relative(step)
        t = f"{self.threshold:.0%}"
        if rel_high < self.threshold:
            return "stops", f"its whole interval lies below a {t} gain"
        if step["gain_ci"][0] > 0 and rel >= self.threshold:
            return "pays", f"a gain of {t} or more, distinguishable from noise"
        if step["gain_ci"][0] <= 0:
            return "unresolved", f"not distinguishable from noise, nor from a gain of {t} or more"
        return "unresolved", f"a gain, but not distinguishable from one below {t}"


def _relative(step: dict) -> tuple[float, list[float]]:
    """A step's relative gain and interval; from a level of 0 (a rate), any gain is infinitely large."""
    if step.get("relative_gain") is not None:
        return step["relative_gain"], step["relative_gain_ci"]
    low, high = step["gain_ci"]
    return (math.copysign(math.inf, step["gain"]) if step["gain"] else 0.0,
            [math.copysign(math.inf, low) if low else 0.0, math.copysign(math.inf, high) if high else 0.0])


def where_paying_ends(steps: list[dict], rule: Rule) -> dict | None:
    """The rule's answer on one metric: the first step after the last one that pays (an early step lost in
    noise is not where data stops paying when later ones pay again), with its verdict and why; for an
    unresolved one, `then_stops_at`: the first later step that stops, if any. None: the last step pays."""
    verdicts = [rule.verdict(step) for step in steps]
    paid = max((i for i, (verdict, _) in enumerate(verdicts) if verdict == "pays"), default=-1)
    if paid == len(steps) - 1:
        return None
    (verdict, why), rest = verdicts[paid + 1], list(zip(steps, verdicts))[paid + 2:]
    out = steps[paid + 1] | {"verdict": verdict, "why": why}
    if verdict == "unresolved":
        out["then_stops_at"] = next((step["from"] for step, (v, _) in rest if v == "stops"), None)
    return out


# ----------------------------------------------------------------------------- the fit and its backtest

FIT_PARAMS = ("floor", "b", "alpha")
MIN_FIT_POINTS = 4  # three parameters: fewer points leave no residual to judge them by
FIT_WINDOW = 5  # a fit reads the largest five sizes (fit_points)


def log_curve(n, floor, b, alpha):
    return np.log(floor + b * n**-alpha)


def fit_log_curve(x: np.ndarray, y: np.ndarray):
    """Least squares of log(y) on log(floor + b x^-alpha), bounded (floor in [0, min y), b > 0,
    alpha in (0, 3]); returns (estimate, covariance). Raises RuntimeError or ValueError when it fails."""
    lowest = float(y.min())
    # Start from half the lowest value as the floor and the log-log slope as the exponent.
    alpha0 = float(np.clip(-np.polyfit(np.log(x), np.log(y), 1)[0], 0.05, 2.9))
    floor0 = 0.5 * lowest
    b0 = max((y[0] - floor0) * x[0] ** alpha0, 1e-9)
    return sps.curve_fit(log_curve, x, np.log(y), p0=[floor0, b0, alpha0],
                     bounds=([0.0, 1e-12, 1e-6], [lowest * (1 - 1e-9), np.inf, 3.0]), maxfev=20000)


def predict_log(estimate, cov, residual_var: float, dof: int, at: float, level: float = 0.95) -> tuple[float, float]:
    """The fit's log value at `at` and the half-width of its prediction interval: the parameters' uncertainty
    (delta method, numerical gradient) plus the residual scatter of one new point."""
    value = float(log_curve(at, *estimate))
    grad = np.zeros(len(estimate))
    for i, p in enumerate(estimate):
        h = 1e-6 * max(abs(p), 1e-8)
        up, down = np.array(estimate, dtype=float), np.array(estimate, dtype=float)
        up[i], down[i] = p + h, max(p - h, 0.0)
        grad[i] = (log_curve(at, *up) - log_curve(at, *down)) / (up[i] - down[i])
    var = float(grad @ np.nan_to_num(cov, nan=0.0, posinf=0.0) @ grad) + residual_var
    return value, float(sps.t.ppf(0.5 + level / 2, dof)) * math.sqrt(max(var, 0.0))


def fit_points(sizes: list[int], values: list[float]) -> list[tuple[int, float]]:
    """The points a fit reads: the FIT_WINDOW largest sizes > 0. The smallest sizes sit in a "pre-power" phase
    that a power law misfits (Lin et al., ICML 2024); on the reference curve, where the two differ, a fit of the
    largest five predicted the next doubling within 9% and a fit of all sizes 11-12% over (docs/decisions.md,
    "The fit reads the largest five sizes")."""
    return sorted((n, v) for n, v in zip(sizes, values) if n > 0)[-FIT_WINDOW:]


def predict(sizes: list[int], values: list[float], at: int, level: float = 0.95) -> dict | None:
    """The fit's value at `at` with its prediction interval; None under MIN_FIT_POINTS points."""
    points = fit_points(sizes, values)
    if len(points) < MIN_FIT_POINTS:
        return None
    x, y = (np.array(col, dtype=float) for col in zip(*points))
    out = {"size": int(at), "fitted_sizes": [int(n) for n in x]}
    try:
        estimate, cov = fit_log_curve(x, y)
    except (RuntimeError, ValueError):
        return out | {"converged": False}
    dof = len(x) - len(estimate)
    residual = np.log(y) - log_curve(x, *estimate)
    log_value, half = predict_log(estimate, cov, float(residual @ residual) / dof, dof, at, level)
    return out | {"converged": True, "predicted": math.exp(log_value),
                  "prediction_interval": [math.exp(log_value - half), math.exp(log_value + half)]}


def backtest(sizes: list[int], values: list[float], level: float = 0.95) -> dict | None:
    """Fit as `predict` does on every size > 0 but the largest, predict the largest, and say whether the observed
    value falls inside the interval. None when fewer than MIN_FIT_POINTS points would remain."""
    points = sorted((n, v) for n, v in zip(sizes, values) if n > 0)
    if len(points) <= MIN_FIT_POINTS:
        return None
    (held_out, observed), fitted = points[-1], points[:-1]
    prediction = predict(*zip(*fitted), at=held_out, level=level)
    if not prediction["converged"]:
        return prediction | {"observed": observed, "passed": False}
    low, high = prediction["prediction_interval"]
    return prediction | {"observed": observed, "passed": low <= observed <= high}


# ----------------------------------------------------------------------------- paired draws over items

SCORE_RESAMPLES = 2000


@dataclass
class Evidence:
    """What every model was scored on, item by item (rows in `names` order): the paired bootstrap's input."""
    names: list[str]
    nll_sums: np.ndarray      # models x held-out answers: NLL summed over the answer's tokens
    token_counts: np.ndarray  # models x held-out answers
    strict: np.ndarray        # models x adherence prompts: 1 where the answer passed every check
    # models x adherence prompts, 0/1, per metric of the registry resampled over prompts (pass rate is `strict`)
    flags: dict[str, np.ndarray] = field(default_factory=dict)

    def only(self, names: list[str]) -> Evidence:
        """These models' rows, in this order."""
        rows = [self.names.index(n) for n in names]
        return Evidence(list(names), self.nll_sums[rows], self.token_counts[rows], self.strict[rows],
                        {key: flags[rows] for key, flags in self.flags.items()})


def paired_evidence(models: dict[str, dict], samples: dict[str, list[dict]]) -> Evidence | None:
    """The per-item scores of every model, or None where they are missing (details written before kdscale
    kept per-answer NLLs) or where the models were not scored on the same answers and prompts."""
    names = list(models)
    answer_ids = [models[n].get("heldout_ids") for n in names]
    prompt_ids = [[s["id"] for s in samples[n]] for n in names]
    if any(ids is None or ids != answer_ids[0] for ids in answer_ids) or \
            any(ids != prompt_ids[0] for ids in prompt_ids):
        return None
    outcomes = {m.name: m.per_prompt for m in metrics.resampled() if m.per_prompt and m.name != "pass_rate"}
    return Evidence(names, np.array([models[n]["heldout_nll_sums"] for n in names], dtype=float),
                    np.array([models[n]["heldout_token_counts"] for n in names], dtype=float),
                    np.array([[s["strict"] for s in samples[n]] for n in names], dtype=float),
                    {name: np.array([[bool(f(s)) for s in samples[n]] for n in names], dtype=float)
                     for name, f in outcomes.items()})


@dataclass
class Resampled:
    """The two quality axes on paired bootstrap draws (models x draws, rows in `names` order)."""
    names: list[str]
    q_ppl: np.ndarray      # lowest perplexity of the draw / perplexity
    pass_rate: np.ndarray
    log_ppl: np.ndarray | None = None  # log perplexity itself
    rates: dict[str, np.ndarray] = field(default_factory=dict)  # metric -> the shares of Evidence.flags

    def row(self, name: str) -> int:
        return self.names.index(name)


def resampled_axes(evidence: Evidence, resamples: int = SCORE_RESAMPLES, seed: int = 0) -> Resampled:
    """Each draw picks held-out answers and adherence prompts with replacement, the same ones for every
    model, and normalises perplexity within the draw."""
    rng = np.random.default_rng(seed)
    answers = resample(evidence.nll_sums.shape[1], resamples, rng)
    prompts = resample(evidence.strict.shape[1], resamples, rng)
    log_ppl = pooled_log_perplexity(evidence.nll_sums, evidence.token_counts, answers)
    ppl = np.exp(log_ppl)
    return Resampled(evidence.names, ppl.min(axis=0) / ppl, evidence.strict[:, prompts].mean(-1), log_ppl,
                     {key: flags[:, prompts].mean(-1) for key, flags in evidence.flags.items()})


def separated(draws: np.ndarray, above: int, below: int, level: float = 0.95) -> bool:
    """Whether row `above` scores higher than row `below`: the paired difference's interval excludes 0."""
    return bool(np.percentile(draws[above] - draws[below], (1 - level) / 2 * 100) > 0)


def interval95(values: np.ndarray) -> list[float]:
    low, high = np.percentile(values, [2.5, 97.5])
    return [float(low), float(high)]


# ----------------------------------------------------------------------------- the fit's parameters

def fit_saturating(sizes: list[int], values: list[float]) -> dict | None:
    """Fit value(N) = floor + b * N^(-alpha) on fit_points, with standard errors; None under MIN_FIT_POINTS.

    Least squares on log(value) (perplexities span orders of magnitude, so each point weighs by its
    relative error), bounded: floor in [0, lowest value), b > 0, alpha in (0, 3]. A parameter is
    identifiable when its standard error (from the covariance of the fit) is below its estimate.
    """
    points = fit_points(sizes, values)
    if len(points) < MIN_FIT_POINTS:
        return None
    x, y = (np.array(col, dtype=float) for col in zip(*points))
    try:
        estimate, cov = fit_log_curve(x, y)
    except (RuntimeError, ValueError):
        return {"points": len(points), "converged": False}
    fit = {"points": len(points), "fitted_sizes": [int(n) for n in x], "converged": True}
    for name, value, var in zip(FIT_PARAMS, estimate, np.diag(cov)):
        se = math.sqrt(var) if np.isfinite(var) and var >= 0 else None
        fit[name], fit[f"{name}_se"] = float(value), se
        fit[f"{name}_identifiable"] = se is not None and se < abs(fit[name])
    residual = np.log(y) - log_curve(x, *estimate)
    fit["rmse_log"] = float(np.sqrt(np.mean(residual**2)))
    return fit


def identifiable(fit: dict | None) -> bool:
    return bool(fit and fit["converged"] and all(fit[f"{p}_identifiable"] for p in FIT_PARAMS))


def doubling_threshold(fit: dict, threshold: float, limit: float = 1e9) -> float | None:
    """The N beyond which doubling the data lowers the fitted value by less than `threshold` (relative).

    With v(N) = floor + b N^-alpha the gain (v(N) - v(2N)) / v(N) = b N^-alpha c / (floor + b N^-alpha),
    c = 1 - 2^-alpha, falls with N; it equals the threshold at N = (b (c - t) / (t floor))^(1 / alpha).
    """
    floor, b, alpha, t = fit["floor"], fit["b"], fit["alpha"], threshold
    c = 1 - 2**-alpha
    if c <= t:
        return 1.0  # even the first doubling gains less than the threshold
    if floor <= 0:
        return None  # a pure power law: every doubling gains c
    n = (b * (c - t) / (t * floor)) ** (1 / alpha)
    return max(n, 1.0) if n < limit else None


# ----------------------------------------------------------------------------- the adherence set's power

def paired_vs(student: np.ndarray, teacher: np.ndarray) -> dict:
    """Prompts where only one of two models passes, and the exact McNemar test of those discordant pairs."""
    only_teacher = int(((teacher == 1) & (student == 0)).sum())
    only_student = int(((teacher == 0) & (student == 1)).sum())
    discordant = only_teacher + only_student
    p = float(sps.binomtest(min(only_teacher, only_student), discordant, 0.5).pvalue) if discordant else 1.0
    return {"only_teacher": only_teacher, "only_student": only_student, "p_value": p}


def prompts_needed(p1: float, p2: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Prompts per model for a two-sided two-proportion z-test to tell rates p1 and p2 apart with `power`
    (unpaired, so conservative for prompts every model answers); None where the rates are equal."""
    if p1 == p2:
        return None
    z_a, z_b = sps.norm.ppf(1 - alpha / 2), sps.norm.ppf(power)
    mean = (p1 + p2) / 2
    n = (z_a * math.sqrt(2 * mean * (1 - mean)) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 / (p1 - p2) ** 2
    return math.ceil(n)
