"""The report stage on fake metrics: combined score, diminishing-returns fit, report.md and main()."""

from __future__ import annotations

import json

import pytest
import yaml

from kdscale import report
from kdscale.config import parse_params
from conftest import REPO

SIZES = [25, 50, 100, 200, 400]
TYPES = ["lowercase", "title", "json"]


def ppl(n: int) -> float:
    return 3 + 50 * n**-0.5


def student_metrics(n: int, i: int) -> dict:
    pass_rate = 0.1 + 0.1 * i
    return {
        "size": n, "perplexity": ppl(n), "pass_rate": pass_rate, "pass_rate_loose": pass_rate + 0.05,
        "instruction_pass_rate": pass_rate + 0.1, "pass_rate_ci_low": pass_rate - 0.08,
        "pass_rate_ci_high": pass_rate + 0.1, "adherence_prompts": 50,
        "tokens_per_sec": [120.0, 100.0, 110.0, 90.0, 105.0][i],  # n=25 is the fastest model of the study
        "model_size_mb": 60.0, "peak_memory_mb": 400.0, "device": "cpu", "dtype": "float32", "threads": 2,
        "train_seconds": 10.0 * n, "optimizer_steps": n // 8, "final_train_loss": 2.0 - 0.1 * i,
        "eval_seconds": 30.0,
        **{f"type_pass_rate.{t}": 0.2 * i / (k + 1) for k, t in enumerate(TYPES)},
    }


TEACHER = {
    "perplexity": 2.5, "pass_rate": 0.6, "pass_rate_loose": 0.66, "instruction_pass_rate": 0.7,
    "pass_rate_ci_low": 0.46, "pass_rate_ci_high": 0.72, "adherence_prompts": 50, "tokens_per_sec": 7.0,
    "model_size_mb": 520.0, "peak_memory_mb": 1200.0, "device": "cpu", "dtype": "float32", "threads": 2,
    "eval_seconds": 300.0, **{f"type_pass_rate.{t}": 0.6 for t in TYPES},
}
GENERATION = {"answers": 440, "kept": 430, "dropped": 10, "dropped_empty": 4, "dropped_echo": 0,
              "dropped_template_leak": 0, "dropped_repetition": 6, "dropped_truncated": 0,
              "generated_tokens": 30000, "generation_seconds": 900.0, "tokens_per_sec": 33.3}
PROMPTS = [("adh-001", "Answer in lowercase.", ""), ("adh-002", "Give a title.", "Spring")]


def samples(who: str) -> list[dict]:
    return [{"id": pid, "instruction": ins, "input": inp, "response": f"answer of {who} to {pid}",
             "finish_reason": "eos", "n_tokens": 5, "strict": who == "teacher", "loose": True, "checks": []}
            for pid, ins, inp in PROMPTS]


def raw_params() -> dict:
    raw = yaml.safe_load((REPO / "src/kdscale/profiles/embedded.yaml").read_text())
    raw["scaling"]["sizes"] = SIZES
    raw["data"]["pool_size"] = max(SIZES)
    return raw


@pytest.fixture()
def study():
    students = {n: student_metrics(n, i) for i, n in enumerate(SIZES)}
    return parse_params(raw_params()), students


def test_combined_score_by_hand(study):
    _, students = study
    models = {f"student-n{n}": m for n, m in students.items()} | {"teacher": TEACHER}
    scores = report.combined_scores(models, (0.4, 0.4, 0.2))
    fastest = 120.0  # student-n25
    for name, m in models.items():
        expected = 0.4 * (1 / m["perplexity"]) + 0.4 * m["pass_rate"] + 0.2 * (m["tokens_per_sec"] / fastest)
        assert scores[name] == pytest.approx(expected)
    assert scores["student-n25"] == pytest.approx(0.4 / ppl(25) + 0.4 * 0.1 + 0.2)
    # Normalised by the fastest model, whoever it is: a faster teacher changes every student's score.
    fast_teacher = models | {"teacher": {**TEACHER, "tokens_per_sec": 240.0}}
    assert report.combined_scores(fast_teacher, (0.0, 0.0, 1.0))["student-n25"] == pytest.approx(0.5)
    assert report.combined_scores(fast_teacher, (0.0, 0.0, 1.0))["teacher"] == pytest.approx(1.0)


def test_fit_saturating_recovers_floor_and_exponent():
    fit = report.fit_saturating(SIZES, [ppl(n) for n in SIZES])
    assert fit["floor"] == pytest.approx(3.0, abs=0.05)
    assert fit["alpha"] == pytest.approx(0.5, abs=0.02)
    assert fit["b"] == pytest.approx(50.0, rel=0.03)
    assert fit["r2"] > 0.999
    assert report.fit_saturating(SIZES[:2], [ppl(n) for n in SIZES[:2]]) is None  # too few sizes
    assert report.fit_saturating(SIZES, [1.0 + n for n in SIZES]) is None  # rising: no saturating fit


def analytic_threshold(floor, b, alpha, t):
    return (b * (1 - 2**-alpha - t) / (t * floor)) ** (1 / alpha)


@pytest.mark.parametrize("threshold", [0.02, 0.05, 0.1])
def test_doubling_threshold_matches_the_analytic_size(threshold):
    exact = {"floor": 3.0, "b": 50.0, "alpha": 0.5}
    n = report.doubling_threshold(exact, threshold)
    assert n == pytest.approx(analytic_threshold(3.0, 50.0, 0.5, threshold), rel=0.05)

    def v(x):
        return 3.0 + 50.0 * x**-0.5

    assert (v(n * 1.01) - v(2 * n * 1.01)) / v(n * 1.01) < threshold < (v(n / 1.01) - v(2 * n / 1.01)) / v(n / 1.01)
    fitted = report.fit_saturating(SIZES, [v(s) for s in SIZES])  # the same from the fit of the data
    assert report.doubling_threshold(fitted, threshold) == pytest.approx(n, rel=0.05)


def test_doubling_threshold_edge_cases():
    assert report.doubling_threshold({"floor": 0.0, "b": 50.0, "alpha": 0.5}, 0.05) is None  # pure power law
    assert report.doubling_threshold({"floor": 3.0, "b": 50.0, "alpha": 0.01}, 0.05) == 1.0  # never pays
    assert report.doubling_threshold({"floor": 1e-12, "b": 50.0, "alpha": 0.5}, 0.05) is None  # beyond the limit


def test_summarize_ranks_and_compares_with_the_teacher(study):
    params, students = study
    s = report.summarize(params, students, TEACHER, GENERATION)
    names = [f"student-n{n}" for n in SIZES] + ["teacher"]
    assert set(s["combined_score"]) == set(names)
    assert s["max_tokens_per_sec"] == 120.0
    assert "max_tokens_per_sec" in s["normalisation"]
    assert s["weights"] == {"perplexity": 0.4, "pass_rate": 0.4, "speed": 0.2}
    scores = s["combined_score"]
    assert s["rankings"]["params"] == sorted(names, key=lambda k: -scores[k])
    assert all(sorted(r) == sorted(names) for r in s["rankings"].values())
    assert set(s["rankings"]) >= {"params", "adherence_only", "speed_heavy", "equal", "quality_only"}
    # adherence only: by pass rate, the teacher (0.6) first, then the largest student
    assert s["rankings"]["adherence_only"][:2] == ["teacher", "student-n400"]
    speed_heavy = {k: 0.2 / m["perplexity"] + 0.2 * m["pass_rate"] + 0.6 * m["tokens_per_sec"] / 120.0
                   for k, m in ({f"student-n{n}": m for n, m in students.items()} | {"teacher": TEACHER}).items()}
    assert s["rankings"]["speed_heavy"] == sorted(names, key=lambda k: -speed_heavy[k])
    assert s["best_student_size"] == max(SIZES, key=lambda n: scores[f"student-n{n}"])
    r = s["vs_teacher"]["student-n100"]
    assert r["perplexity_ratio"] == pytest.approx(ppl(100) / 2.5)
    assert r["pass_rate_ratio"] == pytest.approx(0.3 / 0.6)
    assert r["speedup"] == pytest.approx(110.0 / 7.0)
    assert r["size_ratio"] == pytest.approx(60.0 / 520.0)
    assert s["perplexity_fit"]["alpha"] == pytest.approx(0.5, abs=0.02)
    assert s["doubling_gain_below_threshold_at"] == pytest.approx(analytic_threshold(3, 50, 0.5, 0.05), rel=0.05)
    assert s["total_train_seconds"] == 10.0 * sum(SIZES)
    json.dumps(s)


def test_build_report_sections(study):
    params, students = study
    s = report.summarize(params, students, TEACHER, GENERATION)
    student_samples = {n: samples(f"n{n}") for n in SIZES}
    text = report.build_report(params, students, TEACHER, GENERATION, s, student_samples, samples("teacher"))
    assert "| model | samples | perplexity | pass rate [95% CI] |" in text
    assert "| student-n100 | 100 | 8.00 | 30% [22%, 40%] |" in text  # the interval beside the rate
    assert "| teacher | - | 2.50 | 60% [46%, 72%] |" in text
    assert "tokens_per_sec / 120.0 (the fastest model's tokens/s" in text  # the normalisation, stated
    assert "## Adherence by instruction type (strict)" in text
    assert "| type | n=25 | n=50 | n=100 | n=200 | n=400 | teacher |" in text
    for t in TYPES:
        assert f"| {t} | " in text
    at = s["doubling_gain_below_threshold_at"]
    assert f"Doubling the data lowers the fitted perplexity by less than 5% beyond about N = {at:,.0f} samples." \
        in text
    assert "## Cost" in text and "| training n=400 (50 steps) | 4000 |" in text
    assert "## Students as a fraction of the teacher" in text
    assert "![scaling curves](scaling.png)" in text
    side = text.split("## Answers side by side", 1)[1]
    for pid, instruction, _ in PROMPTS:
        block = side.split(f"### {pid}: {instruction}", 1)[1].split("###", 1)[0]
        assert f"- **teacher** (pass, eos): answer of teacher to {pid}" in block
        for n in SIZES:
            assert f"- **n={n}** (fail, eos): answer of n{n} to {pid}" in block
    assert "Input: Spring" in side


def test_report_says_why_there_is_no_fit(study):
    params, students = study
    rising = {n: {**m, "perplexity": 2.0 + n} for n, m in students.items()}
    s = report.summarize(params, rising, TEACHER, GENERATION)
    assert s["perplexity_fit"] is None and s["doubling_gain_below_threshold_at"] is None
    text = report.build_report(params, rising, TEACHER, GENERATION, s, {n: samples("s") for n in SIZES},
                               samples("teacher"))
    assert "No saturating fit" in text


def test_main_writes_every_output(tmp_path, monkeypatch, capsys):
    import mlflow

    from kdscale import paths

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("DVC_ROOT", raising=False)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw_params(), sort_keys=False))
    for dirname in ["metrics", "samples"]:
        (tmp_path / dirname).mkdir()
    for i, n in enumerate(SIZES):
        paths.student_metrics(n).write_text(json.dumps(student_metrics(n, i)))
        paths.student_samples(n).write_text("".join(json.dumps(r) + "\n" for r in samples(f"n{n}")))
    paths.TEACHER_EVAL_METRICS.write_text(json.dumps(TEACHER))
    paths.TEACHER_METRICS.write_text(json.dumps(GENERATION))
    paths.TEACHER_SAMPLES.write_text("".join(json.dumps(r) + "\n" for r in samples("teacher")))
    paths.student_metrics(7).write_text(json.dumps(student_metrics(7, 0)))  # left by an earlier scaling.sizes

    report.main([])

    warning = capsys.readouterr().err
    assert "results of sizes no longer in scaling.sizes are still in the workspace" in warning
    assert "`git rm metrics/student-n7.json`" in warning

    text = (tmp_path / "reports/report.md").read_text()
    assert text.startswith("# kdscale report") and "## Answers side by side" in text
    png = (tmp_path / "reports/scaling.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    summary = json.loads((tmp_path / "reports/summary.json").read_text())
    assert set(summary["combined_score"]) == {f"student-n{n}" for n in SIZES} | {"teacher"}
    assert all(isinstance(v, float) for v in summary["combined_score"].values())
    rows = json.loads((tmp_path / "plots/scaling.json").read_text())
    assert [r["size"] for r in rows] == SIZES
    assert rows[2]["perplexity"] == pytest.approx(ppl(100))
    assert rows[2]["combined_score"] == summary["combined_score"]["student-n100"]
    assert not list(tmp_path.glob("reports/.*.tmp")) and not list(tmp_path.glob("plots/.*.tmp"))

    runs = mlflow.search_runs(experiment_names=["kdscale"], output_format="list")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.tags["kdscale.stage"] == "report"
    assert runs[0].data.metrics["combined_score.teacher"] == pytest.approx(summary["combined_score"]["teacher"])
    client = mlflow.MlflowClient()
    artifacts = {a.path for a in client.list_artifacts(runs[0].info.run_id)}
    assert {"report.md", "scaling.png", "summary.json", "side_by_side.md"} <= artifacts
    side = mlflow.artifacts.load_text(f"runs:/{runs[0].info.run_id}/side_by_side.md")
    assert "- **teacher** (pass, eos): answer of teacher to adh-002" in side
    assert "- **n=400** (fail, eos): answer of n400 to adh-002" in side
