"""stats: the Wilson interval, the perplexity bootstrap and the t-interval; seeds combined with the paired bootstrap, the diminishing-returns rule, the fit's backtest and the
adherence set's power."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kdscale import stats


def seeded(points, item_sd=0.01, draws=4000, seed=0) -> stats.Seeded:
    """Seeds at `points`, whose bootstrap draws scatter by item_sd around each (shared item noise)."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(0, item_sd, draws)  # the same resampled items for every seed
    return stats.Seeded(np.array(points, dtype=float), np.array([p + shared for p in points]))


def test_one_seed_has_the_bootstrap_interval_alone():
    level = stats.seeded_level(seeded([2.0]))
    assert level["seed_sd"] == 0 and level["seeds"] == 1
    assert level["ci"] == pytest.approx([2.0 - 1.96 * 0.01, 2.0 + 1.96 * 0.01], abs=1e-3)


def test_seed_spread_widens_the_interval_with_a_t_quantile():
    level = stats.seeded_level(seeded([1.9, 2.0, 2.1]))
    seed_se = np.std([1.9, 2.0, 2.1], ddof=1) / math.sqrt(3)
    assert level["value"] == pytest.approx(2.0)
    assert level["seed_sd"] == pytest.approx(seed_se)
    half = (level["ci"][1] - level["ci"][0]) / 2
    assert half > 1.96 * math.hypot(seed_se, 0.01)  # few seeds: t with ~2 degrees of freedom, not z
    assert level["dof"] < 3


def test_a_step_smaller_than_the_seeds_spread_is_not_distinguishable():
    small, large = seeded([2.0, 2.3, 1.7]), seeded([1.9, 2.2, 1.6])  # a gain of 0.1, seeds spread 0.3
    step = stats.seeded_step(small, large)
    assert step["value"] == pytest.approx(-0.1)
    assert step["ci"][0] < 0 < step["ci"][1]
    assert step["seed_spread"] == "both sizes"
    # The same gain with seeds that agree, or with items alone (one seed), is resolved by the items.
    assert stats.seeded_step(seeded([2.0, 2.01, 1.99]), seeded([1.9, 1.91, 1.89]))["ci"][1] < 0
    alone = stats.seeded_step(seeded([2.0]), seeded([1.9]))
    assert alone["ci"][1] < 0 and alone["seed_spread"] == "none"


def test_paired_draws_cancel_the_items_noise_they_share():
    """Both sizes scored on the same draws: noise common to them drops out of the step."""
    step = stats.seeded_step(seeded([2.0], item_sd=0.5), seeded([1.9], item_sd=0.5))
    assert step["ci"][1] < 0  # a 0.1 gain under 0.5 of item noise, shared by both


def step(start: int, gain: float, low: float, high: float) -> dict:
    return {"from": start, "gain": gain, "gain_ci": [low, high], "relative_gain": gain, "relative_gain_ci": [low, high]}


def test_a_step_pays_stops_or_cannot_be_resolved_by_its_interval():
    rule = stats.Rule(threshold=0.05)
    assert rule.verdict(step(20, 0.4, 0.3, 0.5))[0] == "pays"
    assert rule.verdict(step(20, 0.06, 0.01, 0.11))[0] == "pays"  # distinguishable from noise and at least 5%
    assert rule.verdict(step(40, 0.01, -0.02, 0.04)) == ("stops", "its whole interval lies below a 5% gain")
    assert rule.verdict(step(40, -0.03, -0.06, 0.0))[0] == "stops"  # worse with more data: surely below 5%
    # an interval that holds no gain and a paying one: the items and seeds cannot tell, so the rule does not say
    assert rule.verdict(step(80, 0.10, -0.02, 0.2)) == (
        "unresolved", "not distinguishable from noise, nor from a gain of 5% or more")
    assert rule.verdict(step(80, 0.03, 0.01, 0.08)) == (
        "unresolved", "a gain, but not distinguishable from one below 5%")


def test_a_rate_from_zero_is_judged_on_the_sign_of_its_interval():
    rule = stats.Rule(threshold=0.05)
    from_zero = {"from": 20, "gain": 0.04, "gain_ci": [-0.02, 0.1], "relative_gain": None, "relative_gain_ci": None}
    assert rule.verdict(from_zero)[0] == "unresolved"
    assert rule.verdict(from_zero | {"gain_ci": [0.02, 0.1]})[0] == "pays"
    assert rule.verdict(from_zero | {"gain": 0.0, "gain_ci": [0.0, 0.0]})[0] == "stops"


def test_the_rules_answer_is_the_first_step_after_the_last_that_pays():
    rule = stats.Rule(threshold=0.05)
    pays, unresolved, stops = step(20, 0.4, 0.3, 0.5), step(40, 0.1, -0.02, 0.2), step(80, 0.01, -0.01, 0.03)
    assert stats.where_paying_ends([pays, stops, unresolved], rule) == stops | {
        "verdict": "stops", "why": "its whole interval lies below a 5% gain"}
    answer = stats.where_paying_ends([pays, unresolved, stops], rule)
    assert answer["verdict"] == "unresolved" and answer["from"] == 40 and answer["then_stops_at"] == 80
    assert stats.where_paying_ends([pays, unresolved], rule)["then_stops_at"] is None
    assert stats.where_paying_ends([pays], rule) is None
    # a small step lost in noise is not where data stops paying when a later one pays again
    assert stats.where_paying_ends([unresolved, pays, stops], rule)["from"] == 80
    assert stats.where_paying_ends([unresolved, stops, pays], rule) is None
    assert stats.where_paying_ends([unresolved, unresolved], rule)["from"] == 40


SIZES = [20, 40, 80, 160, 320, 640, 1280, 2560]


def test_backtest_passes_on_a_curve_that_goes_on_as_fitted():
    rng = np.random.default_rng(1)
    values = [(3 + 400 * n**-0.7) * math.exp(rng.normal(0, 0.01)) for n in SIZES]
    check = stats.backtest([0, *SIZES], [5000.0, *values])
    assert check["passed"] and check["fitted_sizes"] == SIZES[-6:-1]  # the five largest before the held-out one
    low, high = check["prediction_interval"]
    assert low < check["predicted"] < high and check["observed"] == values[-1]


def test_backtest_fails_when_the_largest_size_leaves_the_curve():
    values = [3 + 400 * n**-0.7 for n in SIZES]
    values[-1] *= 1.5  # the largest point jumps above the fitted trend
    check = stats.backtest(SIZES, values)
    assert not check["passed"] and check["observed"] > check["prediction_interval"][1]


def test_backtest_interval_is_the_parameters_uncertainty_plus_a_new_points_scatter():
    """Without the scatter of one new point the interval covers only where the curve is, not where the next
    measurement lands: its half-width squared is the parameters' term plus t^2 times the residual variance."""
    dense = [int(20 * 1.5**i) for i in range(13)]
    rng = np.random.default_rng(3)
    values = [(5 + 3000 * n**-0.8) * math.exp(rng.normal(0, 0.05)) for n in dense]
    check = stats.backtest(dense, values)
    x, y = np.array(dense[-6:-1], dtype=float), np.array(values[-6:-1])  # the fit's window
    estimate, cov = stats.fit_log_curve(x, y)
    dof = len(x) - 3
    residual = np.log(y) - stats.log_curve(x, *estimate)
    scatter = float(residual @ residual) / dof
    _, parameters_only = stats.predict_log(estimate, cov, 0.0, dof, dense[-1])
    t = stats.sps.t.ppf(0.975, dof)
    low, high = check["prediction_interval"]
    half = math.log(high / low) / 2
    assert half**2 == pytest.approx(parameters_only**2 + t**2 * scatter, rel=1e-6)
    assert t**2 * scatter > 1e-4 * half**2  # large enough for the equality above to miss it if left out


def test_prediction_interval_of_a_known_curve_is_the_t_quantile_of_the_scatter():
    estimate = [2.0, 100.0, 0.5]  # no parameter uncertainty: only a new point's own scatter is left
    value, half = stats.predict_log(estimate, np.zeros((3, 3)), 0.04, 4, 400.0)
    assert value == pytest.approx(math.log(2 + 100 / 20))
    assert half == pytest.approx(stats.sps.t.ppf(0.975, 4) * 0.2)  # t with 4 dof, not z, times sqrt(0.04)


def test_backtest_needs_five_trained_sizes():
    assert stats.backtest([0, 20, 40, 80, 160], [9.0, 8.0, 7.0, 6.0, 5.0]) is None


def test_prompts_needed_matches_the_textbook_two_proportion_size():
    assert stats.prompts_needed(0.3, 0.5) == 93  # alpha 0.05 two-sided, power 0.8
    assert stats.prompts_needed(0.1, 0.12) > 3000
    assert stats.prompts_needed(0.2, 0.2) is None


def test_paired_vs_counts_discordant_prompts_and_tests_them_exactly():
    teacher = np.array([1] * 12 + [0] * 5 + [1] * 3 + [0] * 30)
    student = np.array([0] * 12 + [1] * 5 + [1] * 3 + [0] * 30)
    vs = stats.paired_vs(student, teacher)
    assert (vs["only_teacher"], vs["only_student"]) == (12, 5)
    assert vs["p_value"] == pytest.approx(0.1435, abs=1e-3)  # binomial(17, 0.5), two-sided, at 5
    assert stats.paired_vs(teacher, teacher)["p_value"] == 1.0


# ----------------------------------------------------------------------------- one model

@pytest.mark.parametrize(
    "k,n,lo,hi",
    [(10, 50, 0.1124, 0.3304), (7, 50, 0.0695, 0.2622), (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (25, 50, 0.3664, 0.6336)],
)
def test_wilson_interval(k, n, lo, hi):
    got = stats.wilson_interval(k, n)
    assert got[0] == pytest.approx(lo, abs=1e-3)
    assert got[1] == pytest.approx(hi, abs=1e-3)


def test_wilson_interval_edges():
    assert stats.wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        stats.wilson_interval(5, 4)



@pytest.mark.parametrize("n", [1, 7, 50, 1000])
def test_wilson_interval_contains_the_rate(n):
    assert stats.wilson_interval(0, n)[0] == 0.0
    assert stats.wilson_interval(n, n)[1] == 1.0
    for k in range(0, n + 1, max(1, n // 20)):
        low, high = stats.wilson_interval(k, n)
        assert 0.0 <= low <= k / n <= high <= 1.0


def test_t_interval_is_the_textbook_one():
    mean, low, high = stats.t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and high - mean == pytest.approx(4.302652729911275 / 3 ** 0.5)  # t(0.975, 2) * sd / sqrt(n)
    assert mean - low == pytest.approx(high - mean)


def pooled_perplexity(sums, counts):
    return math.exp(sum(sums) / sum(counts))


def test_bootstrap_interval_brackets_the_perplexity_and_is_seeded():
    sums = [10.0, 30.0, 5.0, 80.0, 12.0, 40.0, 7.0, 22.0]
    counts = [5, 10, 4, 20, 6, 8, 5, 9]
    ppl = pooled_perplexity(sums, counts)
    low, high = stats.bootstrap_perplexity(sums, counts, resamples=2000, seed=0)
    assert low < ppl < high
    assert (low, high) == stats.bootstrap_perplexity(sums, counts, resamples=2000, seed=0)
    assert (low, high) != stats.bootstrap_perplexity(sums, counts, resamples=2000, seed=1)
    # Identical answers leave nothing to resample: the interval closes on the perplexity.
    same = stats.bootstrap_perplexity([6.0] * 8, [3] * 8, resamples=200)
    assert same == pytest.approx((math.exp(2.0), math.exp(2.0)))
    # More answers of the same spread give a narrower interval.
    wide = stats.bootstrap_perplexity(sums * 10, counts * 10, resamples=2000, seed=0)
    assert wide[1] - wide[0] < high - low


def test_a_fit_reads_the_five_largest_sizes_so_a_steeper_start_does_not_bend_it():
    """The pre-power phase: the first sizes fall faster than the power law that follows."""
    late = {n: 3 + 400 * n**-0.7 for n in SIZES}
    early = {n: v * (3.0 if n <= 40 else 1.0) for n, v in late.items()}  # a steep start, then the law
    fit = stats.fit_saturating(list(early), list(early.values()))
    assert fit["fitted_sizes"] == SIZES[-5:]
    assert fit["alpha"] == pytest.approx(0.7, rel=1e-3) and fit["floor"] == pytest.approx(3, rel=1e-3)
    prediction = stats.predict(list(early), list(early.values()), 5120)
    assert prediction["predicted"] == pytest.approx(3 + 400 * 5120**-0.7, rel=1e-3)
