"""Data and capacity together: one fit of perplexity over students of different sizes and the answers each was
trained on, its backtests, and what it says when they pass: how many answers each student needs to reach a
perplexity (or that none will do), and where each student's doubling stops paying.

Two forms, fitted by least squares on log perplexity, P a student's non-embedding parameters (in millions) and N
its training answers:
  additive        ppl = E + A P^-a + B N^-b   (Hoffmann et al. 2022; Busbridge et al. 2025, "Distillation
                                               Scaling Laws"): each student has a floor of its own, E + A P^-a,
                                               and data lowers every student by the same amount
  multiplicative  ppl = E + A P^-a N^-b        (Zhang et al., ICLR 2024, for fine-tuning): data shrinks each
                                               student's distance to a shared floor E by the same factor
Each student contributes its largest FIT_WINDOW sizes, as the per-student fit does (kdscale.stats.fit_points).
A form is trusted where every parameter is identifiable (its standard error under its estimate) and it passes
its backtest: refitted without each student's largest size, it predicts that size inside its 95% prediction
interval (on noise, wide intervals alone would pass). A second backtest asks whether one capacity predicts the next: refitted
without a whole student, does it predict that student's largest size? It is reported, not required. Intervals
for what the fit says come from draws of the parameters around the estimate (their covariance), so they carry
the fit's uncertainty, not the seeds' or the items' beyond it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats as sps

from kdscale.stats import FIT_WINDOW

DRAWS = 2000
MAX_N = 1e9  # beyond this, "never": a doubling still pays, or the perplexity is out of reach


@dataclass(frozen=True)
class Form:
    name: str
    params: tuple[str, ...]
    formula: str

    def value(self, p, n, theta):
        e, a_coef, a_exp, *rest = theta
        if self.name == "additive":
            b_coef, b_exp = rest
            return e + a_coef * p**-a_exp + b_coef * n**-b_exp
        (b_exp,) = rest
        return e + a_coef * p**-a_exp * n**-b_exp

    def answers_for(self, target: float, p: float, theta) -> float:
        """N at which the form reaches `target` for a student of size p; inf where it never does."""
        e, a_coef, a_exp, *rest = theta
        if self.name == "additive":
            b_coef, b_exp = rest
            gap = target - e - a_coef * p**-a_exp
            return (b_coef / gap) ** (1 / b_exp) if gap > 0 else math.inf
        (b_exp,) = rest
        gap = target - e
        return (a_coef * p**-a_exp / gap) ** (1 / b_exp) if gap > 0 else math.inf


FORMS = [Form("additive", ("E", "A", "a", "B", "b"), "E + A P^-a + B N^-b"),
         Form("multiplicative", ("E", "A", "a", "b"), "E + A P^-a N^-b")]


@dataclass
class Point:
    student: str
    params_m: float  # non-embedding parameters, millions
    size: int
    perplexity: float


def fit_window(points: list[Point]) -> list[Point]:
    """Each student's largest FIT_WINDOW sizes > 0."""
    out = []
    for student in dict.fromkeys(p.student for p in points):
        own = sorted((p for p in points if p.student == student and p.size > 0), key=lambda p: p.size)
        out += own[-FIT_WINDOW:]
    return out


def fit(form: Form, points: list[Point]) -> dict:
    """Least squares on log perplexity from a few starts; the estimate, its covariance and residual variance."""
    p = np.array([x.params_m for x in points])
    n = np.array([x.size for x in points], dtype=float)
    y = np.log([x.perplexity for x in points])
    lowest = float(np.exp(y.min()))
    k = len(form.params)
    unfitted = {"converged": False, "form": form.name, "formula": form.formula, "points": len(points)}
    if len(points) <= k:
        return unfitted | {"why": f"{k} parameters need more points"}
    low = [0.0, 1e-12, 1e-6] + ([1e-12, 1e-6] if k == 5 else [1e-6])
    high = [lowest * (1 - 1e-9), np.inf, 3.0] + ([np.inf, 3.0] if k == 5 else [3.0])

    def residuals(theta):
        return np.log(form.value(p, n, theta)) - y

    best = None
    for a0 in (0.3, 1.0):
        for b0 in (0.3, 0.8):
            e0 = 0.5 * lowest
            start = [e0, lowest, a0, lowest * 10, b0] if k == 5 else [e0, lowest * 10, a0, b0]
            try:
                result = optimize.least_squares(residuals, start, bounds=(low, high), max_nfev=20000)
            except ValueError:
                continue
            if best is None or result.cost < best.cost:
                best = result
    if best is None or not best.success:
        return unfitted | {"why": "the least squares did not converge"}
    dof = len(points) - k
    resid = best.fun
    residual_var = float(resid @ resid) / dof
    jac = best.jac
    try:
        cov = np.linalg.pinv(jac.T @ jac) * residual_var
    except np.linalg.LinAlgError:
        cov = np.full((k, k), np.nan)
    se = [math.sqrt(v) if np.isfinite(v) and v >= 0 else None for v in np.diag(cov)]
    return {"converged": True, "form": form.name, "formula": form.formula, "points": len(points), "dof": dof,
            "estimate": dict(zip(form.params, map(float, best.x))), "se": dict(zip(form.params, se)),
            "identifiable": {name: bool(s is not None and s < abs(v)) for name, v, s in zip(form.params, best.x, se)},
            "rmse_log": float(np.sqrt(np.mean(resid**2))), "residual_var": residual_var,
            "_theta": best.x, "_cov": cov}


def predict(form: Form, fitted: dict, params_m: float, size: float, level: float = 0.95) -> dict:
    """The fitted perplexity at (P, N) with its prediction interval (delta method plus the residual scatter)."""
    theta, cov = fitted["_theta"], np.nan_to_num(fitted["_cov"], nan=0.0, posinf=0.0)
    log_value = float(np.log(form.value(params_m, size, theta)))
    grad = np.zeros(len(theta))
    for i, t in enumerate(theta):
        h = 1e-6 * max(abs(t), 1e-8)
        up, down = np.array(theta, dtype=float), np.array(theta, dtype=float)
        up[i], down[i] = t + h, max(t - h, 0.0)
        rise = np.log(form.value(params_m, size, up)) - np.log(form.value(params_m, size, down))
        grad[i] = rise / (up[i] - down[i])
    half = float(sps.t.ppf(0.5 + level / 2, fitted["dof"])) * math.sqrt(
        max(float(grad @ cov @ grad) + fitted["residual_var"], 0.0))
    return {"predicted": math.exp(log_value), "prediction_interval": [math.exp(log_value - half),
                                                                      math.exp(log_value + half)]}


def backtests(form: Form, points: list[Point]) -> list[dict]:
    """Each student's largest size predicted by the form refitted without it ("size"), and by the form refitted
    without that whole student ("student")."""
    window = fit_window(points)
    out = []
    for student in dict.fromkeys(p.student for p in window):
        own = [p for p in window if p.student == student]
        held = own[-1]
        for kind, kept in (("size", [p for p in window if p is not held]),
                           ("student", [p for p in window if p.student != student])):
            if kind == "student" and len({p.params_m for p in kept}) < 2:
                continue  # one size of student left: nothing tells capacity apart
            refit = fit(form, kept)
            row = {"held_out": kind, "student": student, "size": held.size, "observed": held.perplexity}
            if not refit["converged"]:
                out.append(row | {"converged": False, "passed": False})
                continue
            guess = predict(form, refit, held.params_m, held.size)
            low, high = guess["prediction_interval"]
            out.append(row | guess | {"converged": True, "error": guess["predicted"] / held.perplexity - 1,
                                      "passed": bool(low <= held.perplexity <= high)})
    return out


def draws(fitted: dict, count: int = DRAWS, seed: int = 0) -> np.ndarray:
    """Parameter draws around the estimate (its covariance), kept within the fit's bounds."""
    rng = np.random.default_rng(seed)
    theta, cov = fitted["_theta"], np.nan_to_num(fitted["_cov"], nan=0.0, posinf=0.0)
    sample = rng.multivariate_normal(theta, cov, size=count, check_valid="ignore", method="eigh")
    sample[:, 0] = np.clip(sample[:, 0], 0.0, None)
    return np.clip(sample, 1e-12, None) if sample.shape[1] else sample


def finite(value: float) -> float | None:
    """None for "never" (inf): JSON has no infinity."""
    return None if math.isinf(value) else float(value)


def interval(values: np.ndarray) -> list[float | None]:
    """The 95% interval of draws (order statistics, so draws that never get there, inf, sort last); an end is None
    ("never") where more than 2.5% of them never get there."""
    ordered = np.sort(values)
    last = len(ordered) - 1
    return [finite(ordered[int(0.025 * last)]), finite(ordered[math.ceil(0.975 * last)])]


def answers_needed(form: Form, fitted: dict, target: float, params_m: float) -> dict:
    """N for a student of size params_m to reach `target`, with its interval over the parameter draws."""
    with np.errstate(over="ignore"):  # out of reach: inf
        point = form.answers_for(target, params_m, fitted["_theta"])
        spread = np.array([form.answers_for(target, params_m, t) for t in draws(fitted)])
    return {"answers": finite(point), "interval": interval(spread)}


def doubling_gain(form: Form, theta, params_m: float, n: float) -> float:
    now = form.value(params_m, n, theta)
    return (now - form.value(params_m, 2 * n, theta)) / now


def stops_paying(form: Form, theta, params_m: float, threshold: float) -> float:
    """The N beyond which a doubling gains under `threshold` (relative); 1 where the first already does, inf
    where none below MAX_N does. The gain falls with N in both forms, so bisection on log N finds it."""
    if doubling_gain(form, theta, params_m, 1.0) < threshold:
        return 1.0
    if doubling_gain(form, theta, params_m, MAX_N) >= threshold:
        return math.inf
    low, high = 0.0, math.log(MAX_N)
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if doubling_gain(form, theta, params_m, math.exp(mid)) >= threshold else (low, mid)
    return math.exp(high)


def where_stops(form: Form, fitted: dict, params_m: float, threshold: float) -> dict:
    point = stops_paying(form, fitted["_theta"], params_m, threshold)
    spread = np.array([stops_paying(form, t, params_m, threshold) for t in draws(fitted)])
    return {"size": finite(point), "interval": interval(spread)}


def public(fitted: dict) -> dict:
    """A fit as the summary stores it (no arrays)."""
    return {k: v for k, v in fitted.items() if not k.startswith("_")}


def across_students(points: list[Point], threshold: float, largest: dict[str, int]) -> dict:
    """The joint fit of each form, its backtests, and, from the form that passes its backtest with the smaller error,
    the answers each student needs to reach each student's last perplexity, and where each stops paying."""
    window = fit_window(points)
    students = {p.student: p.params_m for p in points}
    forms = []
    for form in FORMS:
        fitted = fit(form, window)
        checks = backtests(form, points) if fitted["converged"] else []
        by_size = [c for c in checks if c["held_out"] == "size"]
        passed = bool(fitted["converged"] and all(fitted["identifiable"].values()) and by_size
                      and all(c["passed"] for c in by_size))
        worst = float(max((abs(c["error"]) for c in by_size if c.get("converged")), default=math.inf))
        forms.append((form, fitted, checks, passed, worst))
    out = {"forms": [{**public(f), "backtests": c, "passed": ok, "worst_error": finite(w)}
                     for _, f, c, ok, w in forms], "chosen": None}
    trusted = [entry for entry in forms if entry[3]]
    if not trusted:
        return out
    form, fitted, *_ = min(trusted, key=lambda entry: entry[4])
    out["chosen"] = form.name
    targets = sorted({max((p for p in points if p.student == s), key=lambda p: p.size).perplexity for s in students})
    out["iso_perplexity"] = [{"perplexity": x, "students": {s: answers_needed(form, fitted, x, m)
                                                            for s, m in students.items()}} for x in targets]
    out["stops_paying"] = {s: where_stops(form, fitted, m, threshold) | {"largest_trained": largest[s]}
                           for s, m in students.items()}
    return out
