"""Stage `report`: combined score, scaling curves, diminishing returns and the written report.

combined_score = w_ppl * (1 / perplexity) + w_pass * pass_rate + w_speed * tokens_per_sec / max tokens_per_sec,
where the maximum runs over every model of the study (students and teacher).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import mlflow
import numpy as np
from sklearn.linear_model import LinearRegression

from kdscale import paths, tracking
from kdscale.config import ReportParams, load_params
from kdscale.jsonl import atomic_open, read_json, read_jsonl, write_json

OTHER_WEIGHTINGS = {  # (perplexity, pass rate, speed)
    "quality_only": (0.5, 0.5, 0.0),
    "adherence_only": (0.0, 1.0, 0.0),
    "speed_heavy": (0.2, 0.2, 0.6),
    "equal": (1 / 3, 1 / 3, 1 / 3),
}


def combined_scores(models: dict[str, dict], weights: tuple[float, float, float]) -> dict[str, float]:
    fastest = max(m["tokens_per_sec"] for m in models.values())
    w_ppl, w_pass, w_speed = weights
    return {name: w_ppl / m["perplexity"] + w_pass * m["pass_rate"] + w_speed * m["tokens_per_sec"] / fastest
            for name, m in models.items()}


def fit_saturating(sizes: list[int], values: list[float]) -> dict | None:
    """Fit value(N) = floor + b * N^(-alpha) by a log-log linear fit for each candidate floor."""
    if len(sizes) < 3:
        return None
    x = np.log(np.array(sizes, dtype=float)).reshape(-1, 1)
    y = np.array(values, dtype=float)
    best = None
    for floor in np.linspace(0.0, 0.999 * y.min(), 400):
        target = np.log(y - floor)
        fit = LinearRegression().fit(x, target)
        r2 = fit.score(x, target)
        if fit.coef_[0] < 0 and (best is None or r2 > best["r2"]):
            best = {"floor": float(floor), "b": float(math.exp(fit.intercept_)), "alpha": float(-fit.coef_[0]),
                    "r2": float(r2)}
    return best


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


def _fmt(value, digits=2):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def draw_curves(students: dict[int, dict], teacher: dict, out) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(students)
    panels = [("perplexity", "perplexity (held-out teacher answers)", True),
              ("pass_rate", "adherence pass rate (strict, 95% CI)", False),
              ("tokens_per_sec", "tokens/s (batch 1, greedy)", False),
              ("train_seconds", "training time (s)", False)]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for ax, (key, title, log_y) in zip(axes.flat, panels):
        ys = [students[n][key] for n in sizes]
        if key == "pass_rate":
            low = [max(students[n][key] - students[n]["pass_rate_ci_low"], 0.0) for n in sizes]
            high = [max(students[n]["pass_rate_ci_high"] - students[n][key], 0.0) for n in sizes]
            ax.errorbar(sizes, ys, yerr=[low, high], marker="o", capsize=4, label="students")
        else:
            ax.plot(sizes, ys, marker="o", label="students")
        if key in teacher:
            ax.axhline(teacher[key], color="gray", linestyle="--", label="teacher")
        ax.set_xscale("log")
        ax.set_xticks(sizes, [str(n) for n in sizes])  # the study's sizes, not crowded minor labels
        ax.minorticks_off()
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel("training samples (teacher answers)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle("kdscale: student quality and cost against teacher-written data")
    fig.tight_layout()
    with atomic_open(out, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


def side_by_side(teacher_samples: list[dict], student_samples: dict[int, list[dict]]) -> list[str]:
    lines = []
    by_size = {n: {s["id"]: s for s in samples} for n, samples in student_samples.items()}
    for t in teacher_samples:
        lines += [f"### {t['id']}: {t['instruction']}", ""]
        if t.get("input"):
            lines += [f"Input: {t['input']}", ""]
        answers = [("teacher", t)] + [(f"n={n}", by_size[n][t["id"]]) for n in sorted(by_size)]
        for who, s in answers:
            verdict = "pass" if s["strict"] else "fail"
            text = s["response"].replace("\n", " ")[:400] or "(empty)"
            lines.append(f"- **{who}** ({verdict}, {s['finish_reason']}): {text}")
        lines.append("")
    return lines


def build_report(params, students: dict[int, dict], teacher: dict, generation: dict, summary: dict,
                 student_samples: dict[int, list[dict]], teacher_samples: list[dict]) -> str:
    rp: ReportParams = params.report
    sizes = sorted(students)
    lines = ["# kdscale report", "",
             f"Teacher `{params.teacher.model}` ({params.teacher.prompt_format} prompts), student "
             f"`{params.student.model}`, prompts from `{params.data.source}`, sizes {sizes}, seed {params.seed}.", "",
             "## Results", "",
             "| model | samples | perplexity | pass rate [95% CI] | loose | instr. | tok/s | size MiB | combined |",
             "|---|---|---|---|---|---|---|---|---|"]
    rows = [(f"student-n{n}", n, students[n]) for n in sizes] + [("teacher", "-", teacher)]
    for name, n, m in rows:
        lines.append(f"| {name} | {n} | {_fmt(m['perplexity'])} | {m['pass_rate']:.0%} "
                     f"[{m['pass_rate_ci_low']:.0%}, {m['pass_rate_ci_high']:.0%}] | {m['pass_rate_loose']:.0%} | "
                     f"{m['instruction_pass_rate']:.0%} | {_fmt(m['tokens_per_sec'], 1)} | "
                     f"{_fmt(m['model_size_mb'], 1)} | {_fmt(summary['combined_score'][name], 3)} |")
    lines += ["", f"combined_score = {rp.weight_perplexity} x (1 / perplexity) + {rp.weight_pass_rate} x pass_rate + "
              f"{rp.weight_speed} x tokens_per_sec / {summary['max_tokens_per_sec']:.1f} (the fastest model's "
              "tokens/s in this study). Pass rates are prompt-level strict adherence on "
              f"{teacher['adherence_prompts']} prompts; intervals are 95% Wilson intervals.", "",
              "Rankings under other weightings (perplexity / pass rate / speed; best first):", ""]
    for name, ranking in summary["rankings"].items():
        w = OTHER_WEIGHTINGS.get(name, (rp.weight_perplexity, rp.weight_pass_rate, rp.weight_speed))
        lines.append(f"- {name} ({w[0]:.2f} / {w[1]:.2f} / {w[2]:.2f}): {', '.join(ranking)}")
    lines += ["", "## Students as a fraction of the teacher", "",
              "| model | perplexity ratio | pass-rate ratio | speedup | size ratio |", "|---|---|---|---|---|"]
    for n in sizes:
        r = summary["vs_teacher"][f"student-n{n}"]
        lines.append(f"| student-n{n} | {_fmt(r['perplexity_ratio'])} | {_fmt(r['pass_rate_ratio'])} | "
                     f"{_fmt(r['speedup'])} | {_fmt(r['size_ratio'], 3)} |")
    lines += ["", "## Scaling curves", "", "![scaling curves](scaling.png)", "", "## Diminishing returns", ""]
    fit = summary["perplexity_fit"]
    if fit:
        at = summary["doubling_gain_below_threshold_at"]
        lines.append(f"Fit: perplexity(N) = {fit['floor']:.2f} + {fit['b']:.2f} x N^-{fit['alpha']:.3f} "
                     f"(R^2 {fit['r2']:.3f} on log scale).")
        lines.append(f"Doubling the data lowers the fitted perplexity by less than {rp.doubling_gain_threshold:.0%} "
                     + (f"beyond about N = {at:,.0f} samples." if at else "nowhere below 10^9 samples."))
    elif len(sizes) < 3:
        lines.append("Too few sizes for a fit (at least 3 are needed).")
    else:
        lines.append("No saturating fit: perplexity does not fall with the sample count.")
    lines += ["", "## Cost", "", "| step | seconds |", "|---|---|",
              f"| teacher generation ({generation['answers']} answers, {generation['generated_tokens']} tokens) | "
              f"{generation['generation_seconds']:.0f} |"]
    lines += [f"| training n={n} ({students[n]['optimizer_steps']} steps) | {students[n]['train_seconds']:.0f} |"
              for n in sizes]
    lines += [f"| evaluation n={n} | {students[n]['eval_seconds']:.0f} |" for n in sizes]
    lines += [f"| evaluation teacher | {teacher['eval_seconds']:.0f} |", "",
              f"Teacher answers dropped by filters: {generation['dropped']} of {generation['answers']} "
              f"({', '.join(f'{k[8:]}: {v}' for k, v in generation.items() if k.startswith('dropped_') and v)})."]
    types = sorted({k for m in students.values() for k in m if k.startswith("type_pass_rate.")})
    lines += ["", "## Adherence by instruction type (strict)", "",
              "| type | " + " | ".join(f"n={n}" for n in sizes) + " | teacher |",
              "|---|" + "---|" * (len(sizes) + 1)]
    for t in types:
        cells = [f"{students[n].get(t, float('nan')):.0%}" for n in sizes] + [f"{teacher.get(t, float('nan')):.0%}"]
        lines.append(f"| {t.split('.', 1)[1]} | " + " | ".join(cells) + " |")
    lines += ["", "## Answers side by side", ""] + side_by_side(teacher_samples, student_samples)
    return "\n".join(lines) + "\n"


def summarize(params, students: dict[int, dict], teacher: dict, generation: dict) -> dict:
    rp = params.report
    models = {f"student-n{n}": m for n, m in sorted(students.items())} | {"teacher": teacher}
    weights = (rp.weight_perplexity, rp.weight_pass_rate, rp.weight_speed)
    scores = combined_scores(models, weights)
    rankings = {"params": sorted(scores, key=scores.get, reverse=True)}
    for name, other in OTHER_WEIGHTINGS.items():
        s = combined_scores(models, other)
        rankings[name] = sorted(s, key=s.get, reverse=True)
    sizes = sorted(students)
    fit = fit_saturating(sizes, [students[n]["perplexity"] for n in sizes])
    vs_teacher = {f"student-n{n}": {
        "perplexity_ratio": students[n]["perplexity"] / teacher["perplexity"],
        "pass_rate_ratio": students[n]["pass_rate"] / teacher["pass_rate"] if teacher["pass_rate"] else None,
        "speedup": students[n]["tokens_per_sec"] / teacher["tokens_per_sec"],
        "size_ratio": students[n]["model_size_mb"] / teacher["model_size_mb"]} for n in sizes}
    best = max((n for n in sizes), key=lambda n: scores[f"student-n{n}"])
    return {
        "weights": {"perplexity": weights[0], "pass_rate": weights[1], "speed": weights[2]},
        "max_tokens_per_sec": max(m["tokens_per_sec"] for m in models.values()),
        "normalisation": "q_ppl = 1 / perplexity; q_speed = tokens_per_sec / max_tokens_per_sec (the fastest "
                         "model of the study, teacher included); pass_rate as measured",
        "combined_score": scores,
        "best_student_size": best,
        "rankings": rankings,
        "vs_teacher": vs_teacher,
        "perplexity_fit": fit,
        "doubling_gain_below_threshold_at": doubling_threshold(fit, rp.doubling_gain_threshold) if fit else None,
        "teacher_generation_seconds": generation["generation_seconds"],
        "total_train_seconds": sum(students[n]["train_seconds"] for n in sizes),
    }


def stale_size_files(sizes: list[int]) -> list[Path]:
    """Metrics and loss curves of sizes no longer in scaling.sizes: DVC never deletes them, and
    `dvc metrics show` and `dvc exp show` would go on listing them beside the current study."""
    current = {paths.student_metrics(n) for n in sizes} | {paths.loss_plot(n) for n in sizes}
    found = [*paths.METRICS_DIR.glob("student-n*.json"), *paths.LOSS_PLOTS_DIR.glob("n*.json")]
    return sorted(p for p in found if p not in current)


def main(argv=None) -> None:
    argparse.ArgumentParser(prog="kdscale report", description=__doc__).parse_args(argv)
    params = load_params()
    sizes = sorted(params.scaling.sizes)
    stale = stale_size_files(sizes)
    if stale:
        print(f"report: warning: results of sizes no longer in scaling.sizes are still in the workspace; "
              f"remove them with `git rm {' '.join(map(str, stale))}`", file=sys.stderr)
    students = {n: read_json(paths.student_metrics(n)) for n in sizes}
    teacher = read_json(paths.TEACHER_EVAL_METRICS)
    generation = read_json(paths.TEACHER_METRICS)
    student_samples = {n: read_jsonl(paths.student_samples(n)) for n in sizes}
    teacher_samples = read_jsonl(paths.TEACHER_SAMPLES)
    summary = summarize(params, students, teacher, generation)

    scaling_rows = [{"size": n, **{k: students[n][k] for k in
                    ["perplexity", "pass_rate", "pass_rate_loose", "tokens_per_sec", "train_seconds", "final_train_loss"]},
                     "combined_score": summary["combined_score"][f"student-n{n}"]} for n in sizes]
    write_json(paths.PLOTS_DIR / "scaling.json", scaling_rows)
    paths.REPORTS_DIR.mkdir(parents=True, exist_ok=True)
    draw_curves(students, teacher, paths.REPORTS_DIR / "scaling.png")
    report = build_report(params, students, teacher, generation, summary, student_samples, teacher_samples)
    with atomic_open(paths.REPORTS_DIR / "report.md") as f:
        f.write(report)
    write_json(paths.REPORTS_DIR / "summary.json", summary)

    tracking.setup()
    tags = tracking.common_tags("report", None, [paths.METRICS_DIR, paths.SAMPLES_DIR])
    with tracking.start_run("report", "report", tags, outputs=[paths.REPORTS_DIR / "summary.json"]):
        tracking.log_params({"report": params.report.__dict__, "sizes": sizes})
        tracking.log_metrics({f"combined_score.{k}": v for k, v in summary["combined_score"].items()})
        for name in ["scaling.png", "report.md", "summary.json"]:
            tracking.log_artifact(paths.REPORTS_DIR / name)
        tracking.retry(mlflow.log_text, "\n".join(["# Answers side by side", ""] + side_by_side(
            teacher_samples, student_samples)) + "\n", "side_by_side.md")
    print(f"report: {paths.REPORTS_DIR / 'report.md'}; best combined score: n={summary['best_student_size']}")


if __name__ == "__main__":
    from kdscale.cli import run

    run(main)
