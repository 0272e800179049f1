"""Where each stage reads and writes, relative to the project root (where dvc.yaml is).

dvc.yaml names the same paths; tests/test_pipeline.py checks that the two agree.
"""

import re
from pathlib import Path

POOL_PROMPTS = Path("data/prompts/pool.jsonl")
HELDOUT_PROMPTS = Path("data/prompts/heldout.jsonl")
PREPARE_STATS = Path("data/prompts/stats.json")
TEACHER_DIR = Path("models/teacher")
STUDENT_INIT_DIR = Path("models/student-init")  # the student before training: every size starts here
TEACHER_RAW = Path("data/teacher/raw.jsonl")  # stage teacher: every answer, unfiltered
TEACHER_GENERATION = Path("data/teacher/generation.json")  # stage teacher: timing, device, skipped prompts
# stage teacher: its top-k log-probs at every token it generated (stage teacher_topk reuses them)
TEACHER_GENERATED_TOPK = Path("data/teacher/topk.safetensors")
TEACHER_OUTPUTS = [TEACHER_RAW, TEACHER_GENERATION, TEACHER_GENERATED_TOPK]  # its MLflow run's key (kdscale sync)
TEACHER_POOL = Path("data/teacher/pool.jsonl")  # stage teacher_filter: the answers with drop marks
TEACHER_HELDOUT = Path("data/teacher/heldout.jsonl")
TEACHER_METRICS = Path("metrics/teacher_generation.json")
FILTER_OUTPUTS = [TEACHER_POOL, TEACHER_HELDOUT, TEACHER_METRICS]  # its MLflow run's key (kdscale sync)
TOPK_FILE = Path("data/topk/pool.safetensors")  # the teacher's top-k log-probs, for train.objective kd | mixed
TOPK_STATS = Path("data/topk/stats.json")
SUBSETS_DIR = Path("data/subsets")
METRICS_DIR = Path("metrics")
# Everything an evaluation measures; metrics/*.json hold only the headline numbers DVC shows.
DETAILS_DIR = METRICS_DIR / "details"
SAMPLES_DIR = Path("samples")
REPORTS_DIR = Path("reports")
PLOTS_DIR = Path("plots")
LOSS_PLOTS_DIR = PLOTS_DIR / "loss"
LOSS_PLOT = PLOTS_DIR / "loss.json"  # every size's loss curve in one file: one chart, one line per size
REPORT = REPORTS_DIR / "report.md"  # the answer first, then the tables
ANSWERS = REPORTS_DIR / "answers.md"  # every adherence prompt answered by every model, side by side
SCALING_FIGURE = REPORTS_DIR / "scaling.png"
SUMMARY = REPORTS_DIR / "summary.json"  # the study's headline numbers (a DVC metric)
SUMMARY_DETAILS = REPORTS_DIR / "summary_details.json"  # everything else the report computes
SWEEP = REPORTS_DIR / "sweep.json"  # `kdscale sweep`'s rounds, predictions and decisions: the report's input
# Resume state lives outside DVC's outputs, so `dvc repro` does not delete it before a rerun.
PROGRESS_DIR = Path(".kdscale/progress")
CHECKPOINTS_DIR = Path(".kdscale/checkpoints")


TRAINING_LOG = "training_log.json"  # in each student's folder: the train summary and per-step log


def student_tag(size: int, seed: int | None = None) -> str:
    """`n640` for the study's own seed; `n640-seed1` for a replicate trained with seed 1
    (scaling.replicate_seeds)."""
    return f"n{size}" if seed is None else f"n{size}-seed{seed}"


def student_name(size: int, seed: int | None = None) -> str:
    return f"student-{student_tag(size, seed)}"


def parse_student_name(name: str) -> tuple[int, int | None] | None:
    """(size, replicate seed or None) of a name student_name wrote; None for any other name."""
    match = re.fullmatch(r"student-n(\d+)(?:-seed(\d+))?", name)
    return None if match is None else (int(match[1]), None if match[2] is None else int(match[2]))


def subset_file(size: int) -> Path:
    """The first `size` kept answers: every seed of a size trains on this one file (kdscale.stages.subsets)."""
    return SUBSETS_DIR / f"n{size}.jsonl"


def subset_topk(size: int) -> Path:
    """The teacher's top-k log-probs of that subset's answers (empty under train.objective sft)."""
    return SUBSETS_DIR / f"n{size}.topk.safetensors"


def student_dir(size: int, seed: int | None = None) -> Path:
    return Path("models") / student_name(size, seed)


def student_metrics(size: int, seed: int | None = None) -> Path:
    return METRICS_DIR / f"{student_name(size, seed)}.json"


def student_details(size: int, seed: int | None = None) -> Path:
    return DETAILS_DIR / f"{student_name(size, seed)}.json"


def student_samples(size: int, seed: int | None = None) -> Path:
    return SAMPLES_DIR / f"{student_name(size, seed)}.jsonl"


def loss_plot(size: int, seed: int | None = None) -> Path:
    return LOSS_PLOTS_DIR / f"{student_tag(size, seed)}.json"


TEACHER_EVAL_METRICS = METRICS_DIR / "teacher.json"
TEACHER_EVAL_DETAILS = DETAILS_DIR / "teacher.json"
TEACHER_SAMPLES = SAMPLES_DIR / "teacher.jsonl"
