"""The joint fit of data and capacity (kdscale.capacity): it recovers a known law, trusts a form only where its
backtest passes, and says how many answers a student needs, or that none will do."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kdscale import capacity
from kdscale.capacity import FORMS, Point

SIZES = [20, 40, 80, 160, 320, 640, 1280, 2560]
STUDENTS = {"pruned3": 10.6, "pruned10": 35.4, "pruned20": 70.8}  # non-embedding parameters, millions
MULTIPLICATIVE = next(f for f in FORMS if f.name == "multiplicative")
ADDITIVE = next(f for f in FORMS if f.name == "additive")
TRUTH = {"multiplicative": [3.0, 40_000.0, 1.2, 0.8], "additive": [3.0, 300.0, 1.5, 400.0, 0.7]}


def points(form, noise: float = 0.01, seed: int = 0) -> list[Point]:
    """Every student at every size on `form`'s TRUTH, with multiplicative noise of `noise` (log scale)."""
    rng = np.random.default_rng(seed)
    return [Point(s, p, n, float(form.value(p, n, TRUTH[form.name]) * math.exp(rng.normal(0, noise))))
            for s, p in STUDENTS.items() for n in SIZES]


def test_the_fit_recovers_a_known_law_and_passes_its_backtest():
    fitted = capacity.fit(MULTIPLICATIVE, capacity.fit_window(points(MULTIPLICATIVE)))
    assert fitted["converged"] and fitted["points"] == 15  # each student's largest five sizes
    assert fitted["estimate"]["b"] == pytest.approx(0.8, rel=0.1)
    assert fitted["estimate"]["E"] == pytest.approx(3.0, rel=0.15)
    checks = capacity.backtests(MULTIPLICATIVE, points(MULTIPLICATIVE))
    assert {(c["held_out"], c["student"]) for c in checks} == {(k, s) for k in ("size", "student") for s in STUDENTS}
    by_size = [c for c in checks if c["held_out"] == "size"]
    assert all(c["passed"] and abs(c["error"]) < 0.05 for c in by_size), by_size


def test_across_students_answers_from_the_form_that_passes():
    out = capacity.across_students(points(MULTIPLICATIVE), 0.05, {s: 2560 for s in STUDENTS})
    assert out["chosen"] == "multiplicative"
    # to reach pruned10's last perplexity, the smallest student needs more answers than 2,560 and the largest fewer
    target = MULTIPLICATIVE.value(STUDENTS["pruned10"], 2560, TRUTH["multiplicative"])
    row = min(out["iso_perplexity"], key=lambda r: abs(r["perplexity"] - target))
    needed = row["students"]
    assert needed["pruned3"]["answers"] > 2560 > needed["pruned20"]["answers"]
    assert needed["pruned10"]["answers"] == pytest.approx(2560, rel=0.2)
    low, high = needed["pruned3"]["interval"]
    assert low < needed["pruned3"]["answers"] < high
    truth = capacity.stops_paying(MULTIPLICATIVE, TRUTH["multiplicative"], STUDENTS["pruned20"], 0.05)
    stop = out["stops_paying"]["pruned20"]
    assert stop["size"] == pytest.approx(truth, rel=0.5) and stop["largest_trained"] == 2560


def test_a_perplexity_under_a_students_floor_is_out_of_its_reach():
    fitted = capacity.fit(ADDITIVE, capacity.fit_window(points(ADDITIVE)))
    floor = fitted["estimate"]["E"] + fitted["estimate"]["A"] * STUDENTS["pruned3"] ** -fitted["estimate"]["a"]
    assert capacity.answers_needed(ADDITIVE, fitted, floor * 0.9, STUDENTS["pruned3"])["answers"] is None  # never
    assert capacity.answers_needed(ADDITIVE, fitted, floor * 1.5, STUDENTS["pruned3"])["answers"] > 0


def test_no_extrapolation_from_a_fit_that_fails_its_backtest():
    rng = np.random.default_rng(1)
    noise = [Point(s, p, n, float(rng.uniform(5, 500))) for s, p in STUDENTS.items() for n in SIZES]
    out = capacity.across_students(noise, 0.05, {s: 2560 for s in STUDENTS})
    assert out["chosen"] is None and "iso_perplexity" not in out
    assert all(not f["passed"] for f in out["forms"])


def test_too_few_points_say_so():
    few = [p for p in points(ADDITIVE) if p.size in (1280, 2560) and p.student != "pruned20"]
    fitted = capacity.fit(ADDITIVE, few)
    assert not fitted["converged"] and "5 parameters need more points" in fitted["why"]
