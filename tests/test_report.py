"""The report stage on fake metrics: combined score, diminishing-returns fit, report.md and main()."""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict

import numpy as np
import pytest
import yaml

from kdscale import figures, stats, summary
from kdscale.config import parse_params
from kdscale.profile import profile_params
from kdscale.records import StudyRecord, StudySummary, SweepRecord
from kdscale.stages import report

SIZES = [0, 25, 50, 100, 200, 400]  # 0: the untrained student
TYPES = ["lowercase", "title", "json"]
STUDENT_ARCH, TEACHER_ARCH = "llama-10L-576d-49152v", "llama-30L-576d-49152v"
STUDENT = "pruned10"  # the embedded profile's one student


def ppl(n: int, floor: float = 3.0) -> float:
    return floor + 50 * n**-0.5 if n else 5000.0


def heldout(p: float) -> dict:
    """Forty held-out answers of 10 tokens whose pooled perplexity is p (the per-answer fields of evaluate)."""
    logs = [math.log(p) + 0.2 * (i % 5 - 2) for i in range(40)]  # the offsets average to 0
    return {"heldout_ids": [f"h{i}" for i in range(40)], "heldout_nll_sums": [10 * x for x in logs],
            "heldout_token_counts": [10] * 40}


def student_metrics(n: int, i: int, floor: float = 3.0) -> dict:
    pass_rate = 0.1 + 0.1 * i
    p = ppl(n, floor)
    return {
        "size": n, "perplexity": p, "perplexity_ci_low": 0.8 * p, "perplexity_ci_high": 1.3 * p, **heldout(p),
        "pass_rate": pass_rate, "pass_rate_loose": pass_rate + 0.05,
        "instruction_pass_rate": pass_rate + 0.1, "pass_rate_ci_low": pass_rate - 0.08,
        "pass_rate_ci_high": pass_rate + 0.1, "adherence_prompts": 50, "heldout_answers": 40,
        "degenerate_share": 0.9 - 0.1 * i, "answers_ended_eos": 0.1 * i,
        "tokens_per_sec": [95.0, 120.0, 100.0, 110.0, 90.0, 105.0][i],  # n=25 is the fastest model of the study
        "architecture": STUDENT_ARCH,
        "model_size_mb": 60.0, "peak_memory_mb": 400.0, "device": "cpu", "dtype": "float32", "threads": 2,
        "train_seconds": 10.0 * n, "optimizer_steps": n // 8, "final_train_loss": 2.0 - 0.1 * i,
        "eval_seconds": 30.0,
        **{f"type_pass_rate.{t}": 0.2 * i / (k + 1) for k, t in enumerate(TYPES)},
        **{f"type_prompts.{t}": 3 + k for k, t in enumerate(TYPES)},
    }


TEACHER = {
    "perplexity": 2.5, "perplexity_ci_low": 2.2, "perplexity_ci_high": 2.9, "pass_rate": 0.6,
    "pass_rate_loose": 0.66, "instruction_pass_rate": 0.7, "heldout_answers": 40,
    "pass_rate_ci_low": 0.46, "pass_rate_ci_high": 0.72, "adherence_prompts": 50, "tokens_per_sec": 7.0,
    "degenerate_share": 0.04, "answers_ended_eos": 0.8, "architecture": TEACHER_ARCH,
    "model_size_mb": 520.0, "peak_memory_mb": 1200.0, "device": "cpu", "dtype": "float32", "threads": 2,
    "eval_seconds": 300.0, **heldout(2.5), **{f"type_pass_rate.{t}": 0.6 for t in TYPES},
    **{f"type_prompts.{t}": 3 + k for k, t in enumerate(TYPES)},
}
GENERATION = {"answers": 440, "kept": 430, "dropped": 10, "dropped_empty": 4, "dropped_echo": 0,
              "dropped_template_leak": 0, "dropped_repetition": 6, "dropped_truncated": 0,
              "generated_tokens": 30000, "generation_seconds": 900.0, "tokens_per_sec": 33.3}
PROMPTS = [("adh-001", "Answer in lowercase.", ""), ("adh-002", "Give a title.", "Spring")]


def samples(who: str) -> list[dict]:
    return [{"id": pid, "instruction": ins, "input": inp, "response": f"answer of {who} to {pid}",
             "finish_reason": "eos", "n_tokens": 5, "strict": who == "teacher", "loose": True, "degenerate": False,
             "checks": []}
            for pid, ins, inp in PROMPTS]


def raw_params(sizes=SIZES) -> dict:
    raw = profile_params("embedded")
    raw["scaling"]["sizes"] = sizes
    raw["data"]["pool_size"] = max(sizes)
    return raw


@pytest.fixture()
def study():
    students = {n: student_metrics(n, i) for i, n in enumerate(SIZES)}
    params = parse_params(raw_params(SIZES[1:]))
    params.scaling.sizes = SIZES  # size 0 is set here until config.py accepts it in params.yaml
    return params, students


def one_student(students: dict[int, dict], samples_of: dict[int, list[dict]] | None = None,
                replicas: dict[tuple[int, int], dict] | None = None,
                replica_samples: dict[str, list[dict]] | None = None, name: str = STUDENT) -> report.StudentData:
    """What the report reads of one student: its details and answers per size, and its replicates'."""
    return report.StudentData(name, students, samples_of or {}, replicas or {}, replica_samples or {})


def build(params, students: dict[int, dict], s: StudySummary, sweep: SweepRecord | None = None,
          replicas: dict[tuple[int, int], dict] | None = None) -> str:
    """report.md of a study of one student."""
    return report.build_report(params, {STUDENT: one_student(students, replicas=replicas)}, TEACHER, GENERATION,
                               StudyRecord({STUDENT: s}), sweep)


# ----------------------------------------------------------------------------- combined score

HANDMADE = {  # perplexity, pass rate, architecture, tokens/s
    "a": {"perplexity": 10.0, "pass_rate": 0.2, "architecture": "x", "tokens_per_sec": 100.0},
    "b": {"perplexity": 20.0, "pass_rate": 0.3, "architecture": "x", "tokens_per_sec": 104.0},
    "c": {"perplexity": 5.0, "pass_rate": 0.1, "architecture": "y", "tokens_per_sec": 50.0},
}


def test_combined_score_on_a_handmade_table():
    scores = summary.combined_scores(HANDMADE, (0.4, 0.4, 0.2))
    # q_ppl = 5 / perplexity; a and b share architecture x, whose speed is their median 102; y's is 50.
    assert scores["a"] == pytest.approx(0.4 * 0.5 + 0.4 * 0.2 + 0.2 * 1.0)
    assert scores["b"] == pytest.approx(0.4 * 0.25 + 0.4 * 0.3 + 0.2 * 1.0)
    assert scores["c"] == pytest.approx(0.4 * 1.0 + 0.4 * 0.1 + 0.2 * 50 / 102)
    assert sorted(scores, key=scores.get, reverse=True) == ["c", "a", "b"]
    # The seed's formula weighs perplexity at almost nothing: b, with twice a's perplexity, comes first.
    seed = summary.combined_scores_seed(HANDMADE, (0.4, 0.4, 0.2))
    assert seed["b"] == pytest.approx(0.4 / 20 + 0.4 * 0.3 + 0.2 * 104 / 104)
    assert sorted(seed, key=seed.get, reverse=True) == ["b", "a", "c"]
    # Each weight alone ranks by its own axis, best = 1.
    assert summary.combined_scores(HANDMADE, (1.0, 0.0, 0.0))["c"] == pytest.approx(1.0)
    assert summary.combined_scores(HANDMADE, (0.0, 0.0, 1.0)) == pytest.approx({"a": 1.0, "b": 1.0, "c": 50 / 102})


def test_speed_jitter_within_an_architecture_cannot_change_the_ranking(study):
    _, students = study
    models = {f"student-n{n}": m for n, m in students.items()} | {"teacher": TEACHER}
    weights = (0.4, 0.4, 0.2)
    ranking = summary.combined_scores(models, weights)
    rng = random.Random(0)
    for _ in range(20):
        speeds = [m["tokens_per_sec"] for n, m in students.items()]
        rng.shuffle(speeds)  # the same timings, dealt to other students of the architecture
        jittered = {f"student-n{n}": {**m, "tokens_per_sec": s} for (n, m), s in zip(students.items(), speeds)}
        scores = summary.combined_scores(jittered | {"teacher": TEACHER}, weights)
        assert sorted(scores, key=scores.get) == sorted(ranking, key=ranking.get)
        assert scores == pytest.approx(ranking)
    # ...whereas the seed's formula lets the same shuffle reorder students of identical quality.
    equal = {f"s{i}": {"perplexity": 10.0, "pass_rate": 0.2, "architecture": "x", "tokens_per_sec": t}
             for i, t in enumerate([100.0, 104.0])}
    assert len(set(summary.combined_scores(equal, weights).values())) == 1
    assert len(set(summary.combined_scores_seed(equal, weights).values())) == 2


# ----------------------------------------------------------------------------- intervals and ties

def scored(passes: dict[str, int], nll_per_token: dict[str, float], prompts: int = 50, answers: int = 40):
    """Models scored on the same prompts and answers: each passes the first `passes[name]` prompts; its answers'
    NLL per token scatters around `nll_per_token[name]`, harder answers being harder for every model."""
    rng = np.random.default_rng(0)
    names = list(passes)
    tokens = rng.integers(20, 80, size=answers).astype(float)
    hardness = rng.normal(0, 0.3, size=answers)
    nll = np.array([(nll_per_token[n] + hardness + rng.normal(0, 0.05, size=answers)) * tokens for n in names])
    strict = np.array([[i < passes[n] for i in range(prompts)] for n in names], dtype=float)
    evidence = stats.Evidence(names, nll, np.tile(tokens, (len(names), 1)), strict)
    models = {n: {"perplexity": math.exp(nll[i].sum() / tokens.sum()),
                  "pass_rate": strict[i].mean(), "architecture": "teacher" if n == "teacher" else "student",
                  "tokens_per_sec": 10.0 if n == "teacher" else 50.0} for i, n in enumerate(names)}
    return evidence, models


def test_rankings_order_only_what_the_prompts_and_answers_separate():
    # big and small differ by one prompt of 50 and by noise in perplexity; none is far behind both.
    evidence, models = scored({"teacher": 30, "big": 10, "small": 9, "none": 2},
                              {"teacher": 0.6, "big": 3.0, "small": 3.02, "none": 8.0})
    weights = (0.4, 0.4, 0.2)
    scores = summary.combined_scores(models, weights)
    axes = stats.resampled_axes(evidence)
    draws = summary.score_draws(axes, summary.speed_terms(models), weights)
    assert summary.ranking_with_ties(scores, draws, evidence.names) == "teacher > big ≈ small > none"
    assert summary.ranking_with_ties(scores, None, evidence.names) == "teacher, big, small, none"
    # Each draw scores like combined_scores on the resampled perplexities and pass rates; the point lies inside.
    low, high = np.percentile(draws, [2.5, 97.5], axis=1)
    assert all(low[i] <= scores[n] <= high[i] for i, n in enumerate(evidence.names))
    again = summary.score_draws(stats.resampled_axes(evidence), summary.speed_terms(models), weights)
    assert np.array_equal(draws, again)  # seeded
    # Each axis alone: one prompt apart is a tie on pass rate, and 0.02 nats per token within answer noise
    # is a tie on perplexity; the far models stay apart on both.
    for alone in ((0, 1, 0), (1, 0, 0)):
        draws = summary.score_draws(axes, summary.speed_terms(models), alone)
        ranking = summary.ranking_with_ties(summary.combined_scores(models, alone), draws, evidence.names)
        assert ranking == "teacher > big ≈ small > none", alone


def test_models_of_identical_scores_are_never_ordered():
    evidence, models = scored({"a": 10, "b": 10}, {"a": 3.0, "b": 3.0})
    evidence.nll_sums[1] = evidence.nll_sums[0]
    draws = summary.score_draws(stats.resampled_axes(evidence), summary.speed_terms(models), (0.4, 0.4, 0.2))
    assert summary.ranking_with_ties({"a": 0.5, "b": 0.5}, draws, ["a", "b"]) == "a ≈ b"


def test_each_step_in_data_gets_a_paired_interval():
    evidence, models = scored({"student-n10": 5, "student-n20": 5, "student-n40": 5},
                              {"student-n10": 4.0, "student-n20": 3.0, "student-n40": 3.0})
    students = {int(name.removeprefix("student-n")): m for name, m in models.items()}
    steps = summary.perplexity_steps(students, stats.resampled_axes(evidence))
    assert [(s["from"], s["to"]) for s in steps] == [(10, 20), (20, 40)]
    gain, flat = steps
    assert gain["ratio"] == pytest.approx(math.e, rel=0.05) and 1 < gain["ratio_ci"][0] <= gain["ratio"]
    assert flat["ratio_ci"][0] < 1 < flat["ratio_ci"][1]  # the same model twice, up to per-answer noise
    text = "\n".join(report.steps_lines(steps))
    assert f"| n=10 -> n=20 | {gain['ratio']:.2f} [{gain['ratio_ci'][0]:.2f}, {gain['ratio_ci'][1]:.2f}] |" in text
    assert "The largest step (n=20 -> n=40) is not separated from no gain: its interval reaches 1." in text
    assert [s["ratio_ci"] for s in summary.perplexity_steps(students)] == [None, None]  # no per-answer scores


def test_models_differing_by_a_constant_per_answer_get_a_near_zero_width_paired_interval():
    """Every answer 0.1 nats per token harder for one model than the other: whichever answers a draw picks,
    the two perplexities differ by e^0.1, so every paired interval between them is a point. Drawn apart
    for each model, the answers' noise (large here) would make them wide."""
    evidence, models = scored({"student-n10": 5, "student-n20": 5, "teacher": 30},
                              {"student-n10": 3.1, "student-n20": 3.0, "teacher": 1.0})
    evidence.nll_sums[0] = evidence.nll_sums[1] + 0.1 * evidence.token_counts[1]  # exact constant shift
    models["student-n10"]["perplexity"] = models["student-n20"]["perplexity"] * math.exp(0.1)
    axes = stats.resampled_axes(evidence)
    assert np.ptp(axes.log_ppl[0] - axes.log_ppl[1]) < 1e-9 and np.ptp(axes.log_ppl[1]) > 0.05
    students = {10: models["student-n10"], 20: models["student-n20"]}
    (step,) = summary.perplexity_steps(students, axes)
    assert step["ratio_ci"] == pytest.approx([math.exp(0.1)] * 2, rel=1e-9)
    # the same prompts for every model too: equal pass/fail vectors give equal rates in every draw
    assert np.array_equal(axes.pass_rate[0], axes.pass_rate[1]) and np.ptp(axes.pass_rate[0]) > 0
    rows = {10: ["student-n10"], 20: ["student-n20"]}
    (seeded,) = summary.seeded_steps(rows, models, axes, "perplexity")
    assert seeded["gain_ci"] == pytest.approx([1 - math.exp(-0.1)] * 2, abs=1e-9)  # the rule sees a sure 9.5% gain
    # and a student a constant above the teacher is that many times the teacher's perplexity in every draw
    evidence.nll_sums[2] = evidence.nll_sums[1] - 0.5 * evidence.token_counts[1]
    models["teacher"]["perplexity"] = models["student-n20"]["perplexity"] * math.exp(-0.5)
    sized = {name: m | {"model_size_mb": 1.0} for name, m in models.items()}
    ratios = summary.vs_teacher(sized, summary.speed_terms(models), stats.resampled_axes(evidence))
    assert ratios["student-n20"]["perplexity_ratio_ci"] == pytest.approx([math.exp(0.5)] * 2, rel=1e-9)


def test_paired_evidence_needs_the_same_answers_and_prompts_for_every_model():
    models = {"student-n8": heldout(9.0), "teacher": heldout(2.0)}
    samples_of = {name: [{"id": f"adh-{i}", "strict": i < 3} for i in range(5)] for name in models}
    evidence = stats.paired_evidence(models, samples_of)
    assert evidence.names == ["student-n8", "teacher"] and evidence.nll_sums.shape == (2, 40)
    assert evidence.strict.tolist() == [[1, 1, 1, 0, 0]] * 2
    assert stats.paired_evidence({**models, "teacher": {}}, samples_of) is None  # details of an older kdscale
    other = {**models, "teacher": {**heldout(2.0), "heldout_ids": [f"x{i}" for i in range(40)]}}
    assert stats.paired_evidence(other, samples_of) is None
    assert stats.paired_evidence(models, {**samples_of, "teacher": samples_of["teacher"][::-1]}) is None


def study_samples(students: dict[int, dict]) -> tuple[dict[int, list[dict]], list[dict]]:
    """Fifty adherence answers per model, the first pass_rate x 50 of them passing."""
    def answers(m):
        return [{"id": f"adh-{i:03d}", "instruction": "Say hi.", "input": "", "response": "hi", "finish_reason": "eos",
                 "n_tokens": 2, "strict": i < round(50 * m["pass_rate"]), "loose": True, "degenerate": False,
                 "checks": []} for i in range(50)]
    return {n: answers(m) for n, m in students.items()}, answers(TEACHER)


def summarized(params, students: dict[int, dict]) -> StudySummary:
    """The summary of one seed's students and the teacher, with per-item evidence for the paired bootstrap."""
    student_samples, teacher_samples = study_samples(students)
    return one_student(students, student_samples).summarize(params, TEACHER, teacher_samples, GENERATION)


def test_report_gives_score_intervals_ties_and_whether_the_best_student_stands_out(study):
    params, students = study
    s = summarized(params, students)
    for name, (low, high) in s.combined_score_ci.items():
        assert low <= s.combined_score[name] <= high
    for name, text in s.rankings_with_ties.items():
        assert text.replace(" ≈ ", " > ").split(" > ") == s.rankings[name]
    assert s.best_student_size == 400 and s.best_student_separated is True  # 30 of 50 prompts against 25
    assert "50 adherence prompts and the 40 held-out answers" in s.score_uncertainty
    json.dumps(asdict(s))  # the summary file holds it all
    text = build(params, students, s)
    low, high = s.combined_score_ci["student-n100"]
    assert f"| {s.combined_score['student-n100']:.3f} [{low:.3f}, {high:.3f}] |" in text
    assert f"do not order them): {s.rankings_with_ties['params']}. Under other weightings" in text
    assert "Best student by the combined score: n=400, above student-n200 in the paired bootstrap." in text
    assert [(st["from"], st["to"]) for st in s.perplexity_steps] == list(zip(SIZES, SIZES[1:]))
    assert s.perplexity_steps[-1]["ratio"] == pytest.approx(ppl(200) / ppl(400))
    assert "The largest step (n=200 -> n=400) still lowers perplexity: its interval lies above 1." in text
    for name, r in s.vs_teacher.items():  # the ratios to the teacher carry the same bootstrap's intervals
        for key in ("perplexity_ratio", "pass_rate_ratio"):
            low, high = r[f"{key}_ci"]
            assert low <= r[key] * (1 + 1e-9) and r[key] * (1 - 1e-9) <= high, (name, key)
    r = s.vs_teacher["student-n100"]
    assert (f"| student-n100 | 3.20 [{r['perplexity_ratio_ci'][0]:.2f}, {r['perplexity_ratio_ci'][1]:.2f}] | "
            f"0.67 [{r['pass_rate_ratio_ci'][0]:.2f}, {r['pass_rate_ratio_ci'][1]:.2f}] |") in text

    # Two students one prompt apart, of equal perplexity: the report names no best student.
    close = {n: {**m, **heldout(6.0), "perplexity": 6.0} if n in (200, 400) else m for n, m in students.items()}
    close[200]["pass_rate"], close[400]["pass_rate"] = 0.58, 0.6
    student_samples, teacher_samples = study_samples(close)
    models = {f"student-n{n}": m for n, m in close.items()} | {"teacher": TEACHER}
    evidence = stats.paired_evidence(models, {f"student-n{n}": student_samples[n] for n in close}
                                      | {"teacher": teacher_samples})
    s = summary.summarize(params, close, TEACHER, GENERATION, evidence)
    assert s.best_student_separated is False and "student-n400 ≈ student-n200" in s.rankings_with_ties["params"]
    assert report.best_student_line(s) == ("Best student by the combined score: n=400 by its point estimate only: "
                                           "the paired bootstrap does not separate it from student-n200.")

    # Without per-answer scores (an older evaluation) the report says there are no intervals.
    s = summary.summarize(params, students, TEACHER, GENERATION)
    assert s.combined_score_ci is None and s.best_student_separated is None
    assert s.score_uncertainty.startswith("none") and s.rankings_with_ties["params"] == ", ".join(
        s.rankings["params"])


# ----------------------------------------------------------------------------- diminishing returns

def test_fit_recovers_the_parameters_of_a_synthetic_curve():
    sizes = [20, 40, 80, 160, 320]
    fit = stats.fit_saturating(sizes, [3 + 50 * n**-0.5 for n in sizes])
    assert fit["floor"] == pytest.approx(3.0, rel=1e-3)
    assert fit["b"] == pytest.approx(50.0, rel=1e-3)
    assert fit["alpha"] == pytest.approx(0.5, rel=1e-3)
    assert stats.identifiable(fit) and fit["points"] == 5
    # With 2% noise the estimates stay close and their standard errors cover the truth.
    rng = np.random.default_rng(0)
    noisy = [(3 + 50 * n**-0.5) * (1 + rng.normal(0, 0.02)) for n in sizes]
    fit = stats.fit_saturating(sizes, noisy)
    for name, truth in [("floor", 3.0), ("b", 50.0), ("alpha", 0.5)]:
        assert abs(fit[name] - truth) < 3 * fit[f"{name}_se"] + 1e-9, name
    assert stats.identifiable(fit)


def test_fit_excludes_size_zero_and_needs_four_points():
    sizes = [0, 20, 40, 80, 160, 320]
    values = [9999.0] + [3 + 50 * n**-0.5 for n in sizes[1:]]
    assert stats.fit_saturating(sizes, values)["alpha"] == pytest.approx(0.5, rel=1e-3)
    assert stats.fit_saturating([0, 20, 40, 80], [9999.0, 14.2, 10.9, 8.6]) is None  # 3 sizes > 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_on_flat_noise_is_not_identifiable(seed):
    sizes = [20, 40, 80, 160, 320]
    rng = np.random.default_rng(seed)
    fit = stats.fit_saturating(sizes, list(100 + rng.normal(0, 2, len(sizes))))
    assert not stats.identifiable(fit)
    lines = "\n".join(report.fit_lines(fit, 0.05, None))
    assert "not identifiable from these points" in lines
    assert "Doubling" not in lines


def analytic_threshold(floor, b, alpha, t):
    return (b * (1 - 2**-alpha - t) / (t * floor)) ** (1 / alpha)


@pytest.mark.parametrize("threshold", [0.02, 0.05, 0.1])
def test_doubling_threshold_matches_the_analytic_size(threshold):
    exact = {"floor": 3.0, "b": 50.0, "alpha": 0.5}
    n = stats.doubling_threshold(exact, threshold)
    assert n == pytest.approx(analytic_threshold(3.0, 50.0, 0.5, threshold), rel=0.05)

    def v(x):
        return 3.0 + 50.0 * x**-0.5

    assert (v(n * 1.01) - v(2 * n * 1.01)) / v(n * 1.01) < threshold < (v(n / 1.01) - v(2 * n / 1.01)) / v(n / 1.01)
    fitted = stats.fit_saturating(SIZES[1:], [v(s) for s in SIZES[1:]])  # the same from the fit of the data
    assert stats.doubling_threshold(fitted, threshold) == pytest.approx(n, rel=0.05)


def test_doubling_threshold_edge_cases():
    assert stats.doubling_threshold({"floor": 0.0, "b": 50.0, "alpha": 0.5}, 0.05) is None  # pure power law
    assert stats.doubling_threshold({"floor": 3.0, "b": 50.0, "alpha": 0.01}, 0.05) == 1.0  # never pays
    assert stats.doubling_threshold({"floor": 1e-12, "b": 50.0, "alpha": 0.5}, 0.05) is None  # beyond the limit


def test_summarize_ranks_and_compares_with_the_teacher(study):
    params, students = study
    s = summary.summarize(params, students, TEACHER, GENERATION)
    names = [f"student-n{n}" for n in SIZES] + ["teacher"]
    assert set(s.combined_score) == set(s.combined_score_seed) == set(names)
    assert s.lowest_perplexity == 2.5
    assert s.fastest_architecture_speed == pytest.approx(np.median([95, 120, 100, 110, 90, 105]))
    assert set(s.speed_term.values()) == {s.fastest_architecture_speed, 7.0}  # one term per architecture
    assert s.max_tokens_per_sec == 120.0
    assert "lowest_perplexity / perplexity" in s.normalisation
    assert s.weights == {"perplexity": 0.4, "pass_rate": 0.4, "speed": 0.2}
    scores = s.combined_score
    models = {f"student-n{n}": m for n, m in students.items()} | {"teacher": TEACHER}
    assert scores == pytest.approx(summary.combined_scores(models, (0.4, 0.4, 0.2)))
    assert s.combined_score_seed == pytest.approx(summary.combined_scores_seed(models, (0.4, 0.4, 0.2)))
    assert s.rankings["params"] == sorted(names, key=lambda k: -scores[k])
    assert all(sorted(r) == sorted(names) for r in s.rankings.values())
    assert set(s.rankings) >= {"params", "adherence_only", "speed_heavy", "equal", "quality_only"}
    # adherence only: by pass rate, the teacher and the largest student (both 0.6) first, the untrained one last
    assert set(s.rankings["adherence_only"][:2]) == {"teacher", "student-n400"}
    assert s.rankings["adherence_only"][-1] == "student-n0"
    # quality only: the teacher (best perplexity and pass rate) first, the untrained student last
    assert s.rankings["quality_only"][0] == "teacher" and s.rankings["quality_only"][-1] == "student-n0"
    assert s.best_student_size == max(SIZES, key=lambda n: scores[f"student-n{n}"])
    r = s.vs_teacher["student-n100"]
    assert r["perplexity_ratio"] == pytest.approx(ppl(100) / 2.5)
    assert r["pass_rate_ratio"] == pytest.approx(0.4 / 0.6)
    assert r["speedup"] == pytest.approx(np.median([95, 120, 100, 110, 90, 105]) / 7.0)  # architectures' speeds
    assert len({v["speedup"] for v in s.vs_teacher.values()}) == 1  # one architecture, one speedup
    assert r["size_ratio"] == pytest.approx(60.0 / 520.0)
    assert s.vs_teacher["student-n0"]["perplexity_ratio"] == pytest.approx(5000 / 2.5)
    assert s.optimizer_steps["student-n400"] == 50 and s.optimizer_steps["student-n0"] == 0
    fit = s.perplexity_fit
    assert fit["points"] == 5 and fit["alpha"] == pytest.approx(0.5, rel=1e-3)  # n = 0 not fitted
    assert s.doubling_gain_below_threshold_at == pytest.approx(analytic_threshold(3, 50, 0.5, 0.05), rel=0.05)
    assert s.total_train_seconds == 10.0 * sum(SIZES)
    assert s.headline() == {"best_student": s.best_student_size, "fit_stops_at": round(s.doubling_gain_below_threshold_at)}
    json.dumps(asdict(s))  # the summary file holds it all


def test_build_report_sections(study):
    params, students = study
    s = summary.summarize(params, students, TEACHER, GENERATION)
    student_samples = {n: samples(f"n{n}") for n in SIZES}
    student_samples[0][1] |= {"response": "a a a a", "degenerate": True}
    text = build(params, students, s)
    answers = report.build_answers(samples("teacher"), {STUDENT: one_student(students, student_samples)})
    assert "- **n=0** (fail, eos, degenerate): a a a a" in answers and "a a a a" not in text
    assert ("| model | samples | steps | perplexity [95% CI] | pass rate [95% CI] | degenerate | ended at EOS "
            "| loose | tok/s | size MiB | combined | seed formula |") in text
    # the intervals beside perplexity and pass rate, then the degenerate and EOS shares
    assert "| student-n100 | 100 | 12 | 8.00 [6.40, 10.40] | 40% [32%, 50%] | 60% | 30% | 45% |" in text
    assert "| student-n0 | 0 | 0 | 5,000 [4,000, 6,500] | 10% [2%, 20%] | 90% | 0% |" in text
    assert "| teacher | - | - | 2.50 [2.20, 2.90] | 60% [46%, 72%] | 4% | 80% |" in text
    assert "q_ppl = 2.50 (the lowest perplexity) / perplexity" in text  # the normalisation, stated
    assert f"/ {s.fastest_architecture_speed:.1f} (the fastest architecture's)" in text
    assert "tokens/s / 120.0." in text  # and the seed's formula beside it
    assert ("Optimizer steps per size: n=0: 0, n=25: 3, n=50: 6, n=100: 12, n=200: 25, n=400: 50. Under "
            "`train.schedule: epochs` data and steps vary together; the steps-matched control is "
            "`dvc exp run -S train.schedule=steps -S train.max_steps=50`.") in text
    assert "## Adherence by instruction type (strict)" in text
    assert "| type | prompts | n=0 | n=25 | n=50 | n=100 | n=200 | n=400 | teacher |" in text
    assert "| json | 5 | 0% | " in text and "| lowercase | 3 | " in text and "| title | 4 | " in text
    at = s.doubling_gain_below_threshold_at
    assert f"Doubling the data lowers the fitted perplexity by less than 5% beyond about N = {at:,.0f} samples." \
        in text
    assert "| alpha | 0.5 | " in text and "not identifiable" not in text
    assert "## Cost" in text and "| training n=400 (50 steps) | 4000 |" in text
    assert "## Students as a fraction of the teacher" in text and "| student-n0 | 2000.00 |" in text
    assert "![scaling curves](scaling.png)" in text
    assert "[answers.md](answers.md)" in text  # the answers live in their own file, linked from the report
    side = answers.split("# Answers side by side", 1)[1]
    for pid, instruction, _ in PROMPTS:
        block = side.split(f"### {pid}: {instruction}", 1)[1].split("###", 1)[0]
        assert f"- **teacher** (pass, eos): answer of teacher to {pid}" in block
        for n in SIZES[1:]:
            assert f"- **n={n}** (fail, eos): answer of n{n} to {pid}" in block
    assert "Input: Spring" in side


def test_report_says_when_the_fit_cannot_answer(study):
    params, students = study
    flat = {n: {**m, "perplexity": 100.0 + (-1) ** i * 2 + i * 0.1} for i, (n, m) in enumerate(students.items())}
    s = summary.summarize(params, flat, TEACHER, GENERATION)
    assert s.doubling_gain_below_threshold_at is None
    text = build(params, flat, s)
    assert "not identifiable from these points" in text and "makes no claim" in text
    few = {n: students[n] for n in SIZES[:4]}  # sizes 0, 25, 50, 100: three points to fit
    s = summary.summarize(params, few, TEACHER, GENERATION)
    assert s.perplexity_fit is None and s.headline()["fit_stops_at"] is None
    text = build(params, few, s)
    assert "The fit needs at least 4 sizes > 0" in text


def test_steps_schedule_says_every_size_trains_the_same_steps(study):
    params, students = study
    params.train.schedule = "steps"
    same = {n: {**m, "optimizer_steps": 50} for n, m in students.items()}
    (line,) = report.steps_note(params, same)
    assert "`train.schedule: steps`" in line and "dvc exp run" not in line


def test_curves_draw_the_untrained_student_apart(study, tmp_path):
    _, students = study
    out = tmp_path / "scaling.png"
    figures.draw_curves({STUDENT: (students, {})}, TEACHER, out)
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


MAIN_SIZES = SIZES[1:]  # params.yaml: config.py does not accept size 0 yet
TWO_STUDENTS = {STUDENT: (10, 3.0), "pruned3": (3, 6.0)}  # name -> (layers, perplexity floor): a smaller one, worse


def write_study_files(tmp_path, students: dict[str, tuple[int, float]] | None = None) -> None:
    """What the stages before the report leave: every run's details, answers and loss, the teacher's, an
    empty sweep record, and a size no longer in scaling.sizes. One student by default, the profile's."""
    from kdscale import paths

    students = students or {STUDENT: (10, 3.0)}
    raw = raw_params(MAIN_SIZES)
    raw["students"] = {name: dict(raw["students"][STUDENT], num_layers=layers)
                       for name, (layers, _) in students.items()}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    for dirname in ["metrics/details", "samples", "plots/loss"]:
        (tmp_path / dirname).mkdir(parents=True)
    for name, (layers, floor) in students.items():
        for i, n in enumerate(MAIN_SIZES, start=1):  # the report reads the details; the headline files are for DVC
            run = paths.Run(name, n, 0)
            who = f"n{n}" if name == STUDENT else f"{name} n{n}"
            details = {"student": name, "size": n, "seed": 0, **student_metrics(n, i, floor),  # as evaluate writes
                       "non_embedding_parameters": 3_500_000 * layers}
            paths.student_details(run).write_text(json.dumps(details))
            paths.student_samples(run).write_text("".join(json.dumps(r) + "\n" for r in samples(who)))
            losses = [{"step": step, "loss": 5.0 - step / (i + 1)} for step in range(1, n // 8 + 1)]
            paths.loss_plot(run).write_text(json.dumps(losses))
    paths.TEACHER_EVAL_DETAILS.write_text(json.dumps(TEACHER))
    paths.TEACHER_METRICS.write_text(json.dumps(GENERATION))
    paths.TEACHER_SAMPLES.write_text("".join(json.dumps(r) + "\n" for r in samples("teacher")))
    # left by an earlier scaling.sizes
    paths.student_metrics(paths.Run(STUDENT, 7, 0)).write_text(json.dumps(student_metrics(7, 0)))
    SweepRecord("perplexity").write(paths.SWEEP)  # a study never swept


def in_study(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("DVC_ROOT", raising=False)


def test_main_writes_every_output(tmp_path, monkeypatch, capsys):
    import mlflow

    from kdscale import paths

    in_study(tmp_path, monkeypatch)
    write_study_files(tmp_path)

    report.main([])

    output = capsys.readouterr()
    warning = output.err
    assert "results of runs no longer in params.yaml are still in the workspace" in warning
    assert f"`git rm metrics/{STUDENT}-n7-seed0.json`" in warning

    text = (tmp_path / "reports/report.md").read_text()
    assert text.startswith("# kdscale report\n") and "\n## The answer\n" in text[:2000]
    assert "## Student " not in text and f"### {STUDENT}" not in text  # one student: no sections of its own
    assert (tmp_path / "reports/answers.md").read_text().startswith("# Answers side by side")
    png = (tmp_path / "reports/scaling.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    headline = json.loads((tmp_path / "reports/summary.json").read_text())
    details = json.loads((tmp_path / "reports/summary_details.json").read_text())
    assert list(headline) == [STUDENT] and set(details["students"]) == {STUDENT}
    own = details["students"][STUDENT]
    assert set(headline[STUDENT]) == {"best_student", "fit_stops_at"}  # the study's answer in two numbers
    assert headline[STUDENT]["best_student"] == own["best_student_size"]
    assert {"combined_score_seed", "rankings", "vs_teacher", "normalisation"} <= set(own)
    typed = StudyRecord.read(paths.SUMMARY_DETAILS)  # what sync reads: the same numbers, typed
    assert typed.headline() == headline and typed.students[STUDENT].seeds == {n: 1 for n in MAIN_SIZES}
    # every model answered the same two prompts and forty held-out answers: the scores carry intervals
    assert set(own["combined_score_ci"]) == set(own["combined_score"])
    assert "2 adherence prompts and the 40 held-out answers" in own["score_uncertainty"]
    assert set(own["combined_score"]) == {f"student-n{n}" for n in MAIN_SIZES} | {"teacher"}
    assert all(isinstance(v, float) for v in own["combined_score"].values())
    rows = json.loads((tmp_path / "plots/scaling.json").read_text())
    assert [(r["student"], r["size"]) for r in rows] == [(STUDENT, n) for n in MAIN_SIZES]
    assert rows[2]["perplexity"] == pytest.approx(ppl(100))
    assert rows[2]["perplexity_ci_high"] == pytest.approx(1.3 * ppl(100))
    assert rows[2]["degenerate_share"] == pytest.approx(0.6)
    assert rows[2]["combined_score"] == own["combined_score"]["student-n100"]
    # Every size's loss in one file, labelled by student and size: one chart with one line per size.
    loss = json.loads((tmp_path / "plots/loss.json").read_text())
    assert sorted({r["samples"] for r in loss}) == MAIN_SIZES and {r["student"] for r in loss} == {STUDENT}
    assert [r["loss"] for r in loss if r["samples"] == 50] == [5.0 - step / 3 for step in range(1, 7)]
    assert not list(tmp_path.glob("reports/.*.tmp")) and not list(tmp_path.glob("plots/.*.tmp"))

    # The report's last step is `kdscale sync`: the MLflow view gets the report run from these files
    assert "sync: report: run" in output.out
    check_report_run(own)
    report.main([])  # again: the files describe the same run, so the view gains nothing
    assert "sync: report: up to date" in capsys.readouterr().out
    assert len(mlflow.search_runs(experiment_names=["kdscale"], output_format="list")) == 1


def check_report_run(details: dict) -> None:
    """The one report run in MLflow: the student's scores, its fit and the report's files as artifacts."""
    import mlflow

    runs = mlflow.search_runs(experiment_names=["kdscale"], output_format="list")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.tags["kdscale.stage"] == "report"
    metrics = runs[0].data.metrics
    assert metrics[f"{STUDENT}.combined_score.teacher"] == pytest.approx(details["combined_score"]["teacher"])
    assert metrics[f"{STUDENT}.combined_score_seed.teacher"] == pytest.approx(
        details["combined_score_seed"]["teacher"])
    assert metrics[f"{STUDENT}.fit.alpha"] == pytest.approx(details["perplexity_fit"]["alpha"])
    client = mlflow.MlflowClient()
    artifacts = {a.path for a in client.list_artifacts(runs[0].info.run_id)}
    assert {"report.md", "answers.md", "scaling.png", "summary.json", "summary_details.json"} <= artifacts
    answers_md = mlflow.artifacts.load_text(f"runs:/{runs[0].info.run_id}/answers.md")
    assert "- **teacher** (pass, eos): answer of teacher to adh-002" in answers_md
    assert "- **n=400** (fail, eos): answer of n400 to adh-002" in answers_md


def test_a_study_of_two_students_reports_each_apart(tmp_path, monkeypatch, capsys):
    """Two students in params.yaml: an answer and a section of tables each, and a headline each."""
    in_study(tmp_path, monkeypatch)
    write_study_files(tmp_path, TWO_STUDENTS)

    report.main([])

    assert "pruned3: Best student by the combined score" in capsys.readouterr().out
    text = (tmp_path / "reports/report.md").read_text()
    assert "students pruned10 (`pruned`, 10 layers), pruned3 (`pruned`, 3 layers)" in text
    answer = text[text.index("\n## The answer\n"):text.index("\n## Scaling curves\n")]
    assert answer.count("The rule: ") == 2
    assert answer.index("\n### pruned10\n") < answer.index("\n### pruned3\n")
    assert "\n## Student pruned10\n" in text and "\n## Student pruned3\n" in text
    ten = text[text.index("\n## Student pruned10\n"):text.index("\n## Student pruned3\n")]
    start = text.index("\n## Student pruned3\n")
    three = text[start:text.index("\n## ", start + 1)]
    for section in (ten, three):  # each student's tables, one level below its heading
        assert "\n### Results\n" in section and "\n### Where more data stops paying\n" in section
        assert "\n## " not in section.split("\n", 2)[2]
    assert "| student-n100 | 100 | 12 | 8.00 [6.40, 10.40] |" in ten  # each its own numbers
    assert "| student-n100 | 100 | 12 | 11.00 [8.80, 14.30] |" in three
    assert "| training pruned3 n=400 (50 steps) | 4000 |" in text
    assert "\n## Data and capacity: one fit across students\n" in text  # the joint fit, its backtests, its verdict
    assert "| its largest size | pruned3 | 400 |" in text and "No whole student is held out: with two" in text
    answers = (tmp_path / "reports/answers.md").read_text()
    assert "- **pruned3 n=400** (fail, eos): answer of pruned3 n400 to adh-002" in answers
    assert "- **pruned10 n=400** (fail, eos): answer of n400 to adh-002" in answers

    headline = json.loads((tmp_path / "reports/summary.json").read_text())
    record = StudyRecord.read(tmp_path / "reports/summary_details.json")
    assert list(headline) == ["pruned10", "pruned3"] and record.headline() == headline
    # the smaller student's higher floor: more data stops paying sooner
    assert headline["pruned3"]["fit_stops_at"] < headline["pruned10"]["fit_stops_at"]
    rows = json.loads((tmp_path / "plots/scaling.json").read_text())
    assert [(r["student"], r["size"]) for r in rows] == [(s, n) for s in TWO_STUDENTS for n in MAIN_SIZES]
    assert {(r["student"], r["samples"]) for r in json.loads((tmp_path / "plots/loss.json").read_text())} == {
        (s, n) for s in TWO_STUDENTS for n in MAIN_SIZES}


def test_a_summary_from_another_version_is_refused_with_the_fix(study, tmp_path):
    from kdscale.errors import UserError

    path = tmp_path / "summary_details.json"
    path.write_text(json.dumps({"combined_score": {"teacher": 0.7}}))  # a headline, not the details
    with pytest.raises(UserError, match="rebuild it with `dvc repro report`"):
        StudyRecord.read(path)
    # ...and so is the one student's summary that kdscale wrote before studies had several students
    params, students = study
    path.write_text(json.dumps(asdict(summary.summarize(params, students, TEACHER, GENERATION))))
    with pytest.raises(UserError, match="rebuild it with `dvc repro report`"):
        StudyRecord.read(path)


# ----------------------------------------------------------------------------- seeds and the rule

def with_replicates(students: dict[int, dict], spread: float) -> dict[tuple[int, int], dict]:
    """Seeds 1 and 2 at the two largest sizes, their perplexity a factor exp(-+spread) off the study's seed."""
    out = {}
    for i, n in enumerate(SIZES):
        for seed, sign in ((1, -1), (2, 1)):
            if n in SIZES[-2:]:
                p = ppl(n) * math.exp(sign * spread)
                out[(n, seed)] = {**student_metrics(n, i), "perplexity": p, **heldout(p)}
    return out


def seeded_summary(study, spread: float) -> tuple[StudySummary, str]:
    params, students = study
    params.scaling.replicate_sizes, params.scaling.replicate_seeds = SIZES[-2:], [1, 2]
    replicas = with_replicates(students, spread)
    student_samples, teacher_samples = study_samples(students)
    replica_samples = {summary.model_name(n, s): student_samples[n] for (n, s) in replicas}
    data = one_student(students, student_samples, replicas, replica_samples)
    s = data.summarize(params, TEACHER, teacher_samples, GENERATION)
    return s, build(params, students, s, replicas=replicas)


def test_seeds_that_agree_leave_the_last_doubling_paying(study):
    s, text = seeded_summary(study, spread=0.01)
    returns = s.diminishing_returns
    assert returns["per_size"][400]["seeds"] == 3 and returns["per_size"][100]["seeds"] == 1
    last = returns["steps"]["perplexity"][-1]
    assert (last["from"], last["to"], last["seeds"], last["seed_spread"]) == (200, 400, [3, 3], "both sizes")
    assert last["gain"] == pytest.approx(1 - ppl(400) / ppl(200), rel=1e-6)  # the seeds' spread is symmetric
    assert returns["stops_at"]["perplexity"] is None
    assert "**Perplexity: not reached by n=400**: every step pays" in text
    json.dumps(asdict(s))  # the summary file holds it all


def test_seeds_that_disagree_make_the_last_doubling_noise(study):
    s, text = seeded_summary(study, spread=0.3)  # seeds 35% apart, against a 16% gain
    # The first step that meets them, 100 -> 200 (one seed, then three), is already noise, and so is the last.
    stop = s.diminishing_returns["stops_at"]["perplexity"]
    assert (stop["from"], stop["verdict"], stop["seed_spread"]) == (100, "unresolved", "one size")
    assert stop["gain_ci"][0] < 0 < stop["gain_ci"][1] and stop["gain_ci"][1] > 0.05
    last = s.diminishing_returns["steps"]["perplexity"][-1]
    assert last["gain_ci"][0] < 0 < last["gain_ci"][1]
    # noise is not a plateau: the report says the data cannot tell, not that more data stops paying
    assert ("**Perplexity: not resolvable with these 40 held-out answers and seeds from n=100 on**: the step n=100 -> n=200 "
            "gains") in text and "stops paying at" not in text
    # The size's interval now covers the seeds: wider than the study's own seed's bootstrap alone.
    level = s.diminishing_returns["per_size"][400]["perplexity"]
    assert level["ci"][1] / level["ci"][0] > 1.5


def test_a_rate_step_the_prompts_cannot_resolve_is_said_so_with_the_prompts_it_would_take():
    stop = {"from": 20, "to": 40, "gain": 0.02, "gain_ci": [-0.1, 0.14], "seeds": [1, 1], "seed_spread": "none",
            "verdict": "unresolved", "why": "not distinguishable from noise, nor from a gain of 5% or more",
            "levels": [0.08, 0.10], "then_stops_at": None}
    line = report.answer_line("pass_rate", [stop], stop, 50)
    assert line.startswith("- **Pass rate (strict): not resolvable with these 50 prompts from n=20 on**: the step "
                           "n=20 -> n=40 gains +2.0 [-10.0, +14.0] points, not distinguishable")
    assert f"would take about {stats.prompts_needed(0.08, 0.10):,} prompts per model" in line
    assert "no later step pays" not in line  # the step is the last one: said once
    last = stop | {"from": 40, "to": 80, "gain": 0.05, "gain_ci": [-0.02, 0.12], "seeds": [3, 3],
                   "seed_spread": "both sizes", "levels": [0.1, 0.15]}
    line = report.answer_line("pass_rate", [stop, last], stop, 50)
    assert "with these 50 prompts and seeds from n=20 on" in line
    assert "no later step pays, and the last, n=40 -> n=80, gains +5.0 [-2.0, +12.0] points (seeds 3 and 3)" in line
    assert f"telling the last step's rates apart (10%, 15%) would take about {stats.prompts_needed(0.1, 0.15):,}" in line
    assert "stops paying" not in line
    later = report.answer_line("pass_rate", [stop], stop | {"then_stops_at": 160}, 50)
    assert later.endswith("a later step stops paying, from n=160.")
    resolved = report.answer_line("pass_rate", [stop], stop | {"verdict": "stops", "why": "its whole interval "
                                                                "lies below a 5% gain"}, 50)
    assert resolved.startswith("- **Pass rate (strict): stops paying at n=20**")


def test_a_fit_that_fails_its_backtest_makes_no_extrapolation(study):
    params, students = study
    bent = {n: ({**m, "perplexity": 1.6 * m["perplexity"]} if n == SIZES[-1] else m) for n, m in students.items()}
    s = summary.summarize(params, bent, TEACHER, GENERATION)
    assert s.fit_backtest["passed"] is False and s.doubling_gain_below_threshold_at is None
    text = build(params, bent, s)
    assert "the fit fails its backtest and the report makes no extrapolation from it" in text


def test_a_swept_study_reports_each_round_against_its_prediction_and_why_it_stopped(study):
    """Each round's prediction beside what the report observed at its size and what the round measured, the
    coverage, and the stop in the answer."""
    from kdscale.records import SweepRound

    params, students = study
    s = summarized(params, students)
    seen = s.diminishing_returns["per_size"][400]["perplexity"]["value"]
    rounds = [SweepRound(0, "start", None, 300, None, {}, measured={"wall_seconds": 60.0, "overhead_share": 1.0}),
              SweepRound(1, "grow", 400, 450, {STUDENT: {"converged": True, "predicted": seen, "prediction_interval":
                                                         [seen * 0.9, seen * 1.1], "fitted_sizes": SIZES[1:-1]}},
                         {"teacher_answers": 150, "seconds": 600.0},
                         measured={"wall_seconds": 660.0, "teacher_answers": 150, "overhead_share": 0.05})]
    stop = {"reason": "source", "why": "the source ran out", "next_size": 800,
            "prediction": {STUDENT: {"converged": True, "predicted": 3.0, "prediction_interval": [2.0, 4.5]}}}
    text = build(params, students, s, SweepRecord("perplexity", rounds, stop))
    row = next(line for line in text.splitlines() if line.startswith("| 1 | n=400 |"))
    assert f"| {STUDENT} | {seen:.4g} [" in row and "| yes |" in row and "| 150 / 150 | 10.0 / 11.0 | 5% |" in row
    assert "Coverage: 1 of 1 observed values fell inside their 95% prediction interval." in text
    answer = text[text.index("## The answer"):text.index("## Results")]
    assert "- **The sweep** stopped after 1 round(s) (source): the source ran out.\n\nEvery model" in answer
    assert f"- {STUDENT}: the fit's forecast for the next size, n=800: perplexity 3 [2, 4.5]" in text
    plain = build(params, students, s)
    assert "## The sweep" not in plain and "**The sweep**" not in plain


def test_the_larger_adherence_set_compares_trained_sizes_and_the_teacher_on_the_same_prompts(tmp_path,
                                                                                               monkeypatch):
    """80 prompts: the teacher passes the first 40, the student 8 at its smallest trained size and 24 at its
    largest; the report gives each rate, each against the teacher, and the change with its paired test."""
    from kdscale import paths
    from kdscale.profile import rewrite_params

    in_study(tmp_path, monkeypatch)
    write_study_files(tmp_path)
    small, large = MAIN_SIZES[0], MAIN_SIZES[-1]
    rewrite_params({"eval": {"adherence_set_sizes": [small, large]}}, "params.yaml")
    passed = {None: 40, paths.Run(STUDENT, small, 0): 8, paths.Run(STUDENT, large, 0): 24}
    for run, count in passed.items():
        answers = [{"id": f"ifv-{i:03d}", "strict": i < count} for i in range(80)]
        paths.adherence_set_samples(run).parent.mkdir(parents=True, exist_ok=True)
        paths.adherence_set_samples(run).write_text("".join(json.dumps(a) + "\n" for a in answers))
        paths.adherence_set_details(run).parent.mkdir(parents=True, exist_ok=True)
        paths.adherence_set_details(run).write_text(json.dumps({
            "adherence_set": "adherence_250.jsonl", "adherence_prompts": 80, "pass_rate": count / 80,
            "pass_rate_ci_low": count / 80 - 0.05, "pass_rate_ci_high": count / 80 + 0.05,
            "degenerate_share": 0.1, "eval_seconds": 60.0}))

    report.main([])

    text = (tmp_path / "reports/report.md").read_text()
    assert "## Adherence on the larger set (80 prompts, `adherence_250.jsonl`)" in text
    assert "The teacher passes 50.0% [45.0%, 55.0%] of them" in text
    assert f"| {STUDENT} | {large} | 30.0% [25.0%, 35.0%] | 10% | 16 / 0, p = " in text  # only the teacher: 24-39
    assert (f"**{STUDENT}**, n={small} -> n={large}: +20.0 points (0 prompts passed only at n={small}, 16 only at "
            f"n={large}; exact McNemar p = 3.1e-05): a change these prompts resolve") in text
    assert "| the larger adherence set (80 prompts), 3 models with the teacher | 180 |" in text
