"""The typed records stages hand each other through JSON files, written and read in one place.

Flat files stay flat (`type_pass_rate.json`, `dropped_echo`), so `dvc exp show` and MLflow show each
number as a column; the stage that reads a group gets it back as a typed object, not by prefix. The
report's summary is one dataclass that report writes and sync reads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from kdscale.errors import UserError
from kdscale.jsonl import read_json, write_json

TYPE_RATE, TYPE_PROMPTS = "type_pass_rate.", "type_prompts."
DROPPED = "dropped_"
DROP_REASONS = ["empty", "echo", "template_leak", "repetition", "truncated", "context"]


@dataclass
class TypeRates:
    """Per instruction type: the strict pass rate over its checks, and how many prompts carry it
    (evaluate's details)."""
    pass_rate: dict[str, float]
    prompts: dict[str, int]

    def flat(self) -> dict:
        return {**{f"{TYPE_RATE}{t}": r for t, r in sorted(self.pass_rate.items())},
                **{f"{TYPE_PROMPTS}{t}": n for t, n in sorted(self.prompts.items())}}

    @classmethod
    def read(cls, details: dict) -> TypeRates:
        return cls({k.removeprefix(TYPE_RATE): v for k, v in details.items() if k.startswith(TYPE_RATE)},
                   {k.removeprefix(TYPE_PROMPTS): v for k, v in details.items() if k.startswith(TYPE_PROMPTS)})


def dropped_flat(counts: dict[str, int]) -> dict[str, int]:
    """The filters' drop counts by reason (teacher_filter's metrics), every reason listed."""
    return {f"{DROPPED}{r}": counts.get(r, 0) for r in DROP_REASONS}


def dropped_read(metrics: dict) -> dict[str, int]:
    return {k.removeprefix(DROPPED): v for k, v in metrics.items() if k.startswith(DROPPED)}


@dataclass
class StudySummary:
    """Everything the report computes about one student of the study (StudyRecord holds one per student).

    Its models are named student-nN (student-nN-seedS for a replicate) and teacher. Nested entries (a fit, a
    step) stay dicts: their keys are documented where report computes them."""
    weights: dict[str, float]  # perplexity, pass_rate, speed
    lowest_perplexity: float
    speed_term: dict[str, float]  # model -> its architecture's median tokens/s
    fastest_architecture_speed: float
    max_tokens_per_sec: float
    normalisation: str  # the two combined-score formulas, in words
    combined_score: dict[str, float]
    combined_score_ci: dict[str, list[float]] | None  # None without per-answer scores
    combined_score_seed: dict[str, float]
    best_student_size: int
    runner_up: str | None
    best_student_separated: bool | None  # does the bootstrap order the best and the runner-up
    rankings: dict[str, list[str]]  # weighting -> models, best first
    rankings_with_ties: dict[str, str]
    score_uncertainty: str
    vs_teacher: dict[str, dict]
    optimizer_steps: dict[str, int]
    perplexity_steps: list[dict]  # one per doubling: from, to, ratio [ratio_ci]
    perplexity_fit: dict | None  # the saturating power law, None where it cannot be fitted
    fit_backtest: dict | None
    doubling_gain_below_threshold_at: float | None
    seeds: dict[int, int]  # size -> seeds behind it
    diminishing_returns: dict | None
    adherence_power: dict
    teacher_generation_seconds: float
    total_train_seconds: float
    replicates_missing: list[str] = field(default_factory=list)

    def headline(self) -> dict:
        """The student's answer in two numbers: its best size, and the size beyond which the fit's doubling gain is
        under the threshold (None: no extrapolation). The combined scores are normalised within the study, so they
        do not compare across experiments: they stay in the details."""
        at = self.doubling_gain_below_threshold_at
        return {"best_student": self.best_student_size, "fit_stops_at": None if at is None else round(at)}

    @classmethod
    def parse(cls, data: dict) -> StudySummary:
        expected = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or not expected >= set(data) >= expected - {"replicates_missing"}:
            raise ValueError("not a student's summary")
        data = dict(data, seeds={int(n): count for n, count in data["seeds"].items()})  # JSON keys are strings
        return cls(**data)


@dataclass
class StudyRecord:
    """reports/summary_details.json: each student's summary (StudySummary, by the names of params.yaml `students`)
    and what the report computes across them (the joint fit, the iso-perplexity table; None with one student).
    Its headline, reports/summary.json, is each student's."""
    students: dict[str, StudySummary]
    across: dict | None = None

    def headline(self) -> dict:
        return {name: summary.headline() for name, summary in self.students.items()}

    def write(self, details: Path, headline: Path) -> None:
        write_json(details, asdict(self))
        write_json(headline, self.headline())

    @classmethod
    def read(cls, path: Path) -> StudyRecord:
        data = read_json(path)
        try:
            return cls({name: StudySummary.parse(s) for name, s in data["students"].items()}, data.get("across"))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise UserError(f"{path}: not the summary this kdscale writes; rebuild it with `dvc repro report`") from None


@dataclass
class SweepRound:
    """One round of `kdscale sweep`: what it added, what the fit and the measured costs said before it ran, and
    what it measured. Round 0 is the study as the sweep found it (no size added, nothing predicted)."""
    round: int
    kind: str                 # start | grow | confirm (replicate seeds at the last two sizes)
    size: int | None          # the size it adds (None: round 0 and confirm rounds)
    pool_size: int            # data.pool_size it runs with
    prediction: dict | None   # student -> stats.predict at `size`: predicted, prediction_interval [95%], fitted_sizes
    predicted_cost: dict      # teacher_answers, teacher_tokens, teacher_seconds, train_seconds, eval_seconds, money
    # student -> the metric at `size` after the round: value, ci, inside (its prediction interval)
    observed: dict | None = None
    measured: dict | None = None  # wall, work and overhead seconds, teacher answers and tokens added, train, eval


@dataclass
class SweepRecord:
    """reports/sweep.json: the sweep's rounds, each student's stop, and why the sweep stopped (None while it runs, or
    before any sweep)."""
    metric: str
    rounds: list[SweepRound] = field(default_factory=list)
    # reason (budget | source | students: every student stopped), why, and the next size's forecast per student
    stop: dict | None = None
    # student -> its stop: reason (rule | target | prediction), why, and the round after which it stopped
    student_stops: dict[str, dict] = field(default_factory=dict)

    def write(self, path: Path) -> None:
        write_json(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> SweepRecord:
        if not Path(path).is_file():
            raise UserError(f"{path}: not found; a study that was never swept keeps an empty record there (the "
                            f"report reads it): echo '{{\"metric\": \"perplexity\", \"rounds\": []}}' > {path}")
        data = read_json(path)
        try:
            return cls(data["metric"], [SweepRound(**r) for r in data["rounds"]], data.get("stop"),
                       data.get("student_stops", {}))
        except (KeyError, TypeError) as e:
            raise UserError(f"{path}: not a sweep record this kdscale writes ({e}); move it aside and run "
                            "`kdscale sweep` again") from None
