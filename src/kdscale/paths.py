"""Where each stage reads and writes, relative to the project root (where dvc.yaml is).

dvc.yaml names the same paths; tests/test_pipeline.py checks that the two agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

POOL_PROMPTS = Path("data/prompts/pool.jsonl")
HELDOUT_PROMPTS = Path("data/prompts/heldout.jsonl")
PREPARE_STATS = Path("data/prompts/stats.json")
TEACHER_DIR = Path("models/teacher")
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


@dataclass(frozen=True, order=True)
class Run:
    """One trained student: which student (params.yaml `students`), on how many answers, with which seed."""
    student: str
    size: int
    seed: int

    @property
    def name(self) -> str:
        """`pruned10-n640-seed0`: its stages' outputs, its MLflow run and its registry alias."""
        return f"{self.student}-n{self.size}-seed{self.seed}"

    @classmethod
    def parse(cls, name: str) -> Run | None:
        """The run `name` names, or None for any other name (the teacher's files, say)."""
        match = re.fullmatch(r"([A-Za-z0-9_.]+)-n(\d+)-seed(\d+)", name)
        return None if match is None else cls(match[1], int(match[2]), int(match[3]))


def subset_file(size: int) -> Path:
    """The first `size` kept answers: every student and seed of a size trains on this one file
    (kdscale.stages.subsets)."""
    return SUBSETS_DIR / f"n{size}.jsonl"


def subset_topk(size: int) -> Path:
    """The teacher's top-k log-probs of that subset's answers (empty under train.objective sft)."""
    return SUBSETS_DIR / f"n{size}.topk.safetensors"


def student_init_dir(student: str) -> Path:
    """The student before training: each of its runs starts here."""
    return Path("models") / student / "init"


def student_dir(run: Run) -> Path:
    return Path("models") / run.student / f"n{run.size}-seed{run.seed}"


def student_metrics(run: Run) -> Path:
    return METRICS_DIR / f"{run.name}.json"


def student_details(run: Run) -> Path:
    return DETAILS_DIR / f"{run.name}.json"


def student_samples(run: Run) -> Path:
    return SAMPLES_DIR / f"{run.name}.jsonl"


def loss_plot(run: Run) -> Path:
    return LOSS_PLOTS_DIR / f"{run.name}.json"


# eval.adherence_set: the larger set's pass rates and answers, per model (not DVC metrics: the models' table
# stays one set wide)
def adherence_set_details(run: Run | None) -> Path:
    """None: the teacher's."""
    return DETAILS_DIR / "adherence_set" / f"{'teacher' if run is None else run.name}.json"


def adherence_set_samples(run: Run | None) -> Path:
    return SAMPLES_DIR / "adherence_set" / f"{'teacher' if run is None else run.name}.jsonl"


TEACHER_EVAL_METRICS = METRICS_DIR / "teacher.json"
TEACHER_EVAL_DETAILS = DETAILS_DIR / "teacher.json"
TEACHER_SAMPLES = SAMPLES_DIR / "teacher.jsonl"
