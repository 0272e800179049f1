"""The study's figure, reports/scaling.png: perplexity, adherence, speed and training time against the
training-set size, with the models' 95% intervals from the metric registry."""

from __future__ import annotations

import numpy as np

from kdscale.jsonl import atomic_open
from kdscale.metrics import METRICS


PANELS = [("perplexity", "perplexity (held-out teacher answers, 95% CI)", True),
          ("pass_rate", "adherence pass rate (strict, 95% CI) and degenerate share", False),
          ("tokens_per_sec", "tokens/s (batch 1, greedy; one timing per model)", False),
          ("train_seconds", "training time (s)", False)]


def error_bars(key: str, ms: list[dict]):
    """matplotlib's yerr (below, above) from the models' interval keys; None where a model has none."""
    ci = f"{key}_ci"
    if key not in METRICS or not METRICS[key].interval or not all(f"{ci}_low" in m for m in ms):
        return None
    return [[max(m[key] - m[f"{ci}_low"], 0.0) for m in ms], [max(m[f"{ci}_high"] - m[key], 0.0) for m in ms]]


Curve = tuple[dict[int, dict], dict[tuple[int, int], dict]]  # one student's: size -> details, (size, seed) -> details


def draw_student(ax, key: str, name: str, curve: Curve, colour: str, x_zero: float, several: bool) -> None:
    """One student's curve on one panel: its sizes joined, its other seeds hollow, its untrained start apart."""
    students, replicas = curve
    sizes = sorted(n for n in students if n > 0)
    zero, ms = students.get(0), [students[n] for n in sizes]
    # Timings of one architecture differ by noise alone: points, not a line that suggests a trend.
    ax.errorbar(sizes, [m[key] for m in ms], yerr=error_bars(key, ms), marker="o", capsize=4, color=colour,
                label=name if several else "students", linestyle="none" if key == "tokens_per_sec" else "-")
    others = sorted(replicas.items())
    if others and key in ("perplexity", "pass_rate"):
        ax.plot([n for (n, _), _ in others], [m[key] for _, m in others], marker="o", markerfacecolor="none",
                color=colour, linestyle="none", label=None if several else "other seeds")
    if zero is not None and key in zero:
        ax.errorbar([x_zero], [zero[key]], yerr=error_bars(key, [zero]), marker="s", capsize=4, linestyle="none",
                    color=colour if several else "C3", label=None if several else "untrained (n=0)")
    if key == "pass_rate" and not several:  # with several students the panel stays one line per student
        ax.plot(sizes, [m.get("degenerate_share", float("nan")) for m in ms], marker="x", color="C2",
                label="degenerate share")
        if zero is not None and "degenerate_share" in zero:
            ax.plot([x_zero], [zero["degenerate_share"]], marker="x", color="C3", linestyle="none")
    if key == "tokens_per_sec" and len({m.get("architecture") for m in ms + [zero] if m}) == 1 and not several:
        ax.axhline(float(np.median([m[key] for m in ms + [zero] if m])), color=colour, linestyle=":",
                   label="students' median (the score's speed term)")


def draw_panel(ax, key: str, curves: dict[str, Curve], teacher: dict, x_zero: float) -> None:
    several = len(curves) > 1
    for i, (name, curve) in enumerate(curves.items()):
        draw_student(ax, key, name, curve, f"C{i}" if several else "C0", x_zero, several)
    if key == "tokens_per_sec":
        ax.set_ylim(bottom=0)
    if key in teacher:
        ax.axhline(teacher[key], color="gray", linestyle="--", label="teacher")
    ax.set_xscale("log")
    sizes = sorted({n for students, _ in curves.values() for n in students if n > 0})
    zero = any(0 in students for students, _ in curves.values())
    ax.set_xticks(([x_zero] if zero else []) + sizes, (["0"] if zero else []) + [str(n) for n in sizes])
    ax.minorticks_off()


def draw_curves(curves: dict[str, Curve], teacher: dict, out) -> None:
    """Four panels against samples on a log axis, one curve per student; the untrained student (n = 0) is drawn
    apart, as a square at the left edge labelled "0", not joined to the curve. Replicate seeds are hollow points
    beside the study's own seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({n for students, _ in curves.values() for n in students if n > 0})
    x_zero = (min(sizes) if sizes else 1) / 2.5  # left of the smallest size, on the log axis
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for ax, (key, title, log_y) in zip(axes.flat, PANELS):
        draw_panel(ax, key, curves, teacher, x_zero)
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel("training samples (teacher answers)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("kdscale: student quality and cost against teacher-written data")
    fig.tight_layout()
    with atomic_open(out, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
