"""params.yaml parsed once into typed pydantic models and validated.

Every stage calls `load_params()` and reads its own section. A wrong key, type or
value stops the stage before it writes anything, with one line naming the key.
"""

from __future__ import annotations

import difflib
import math
import re
import typing
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kdscale.errors import UserError
from kdscale.paths import Run

PARAMS_FILE = "params.yaml"

# transformers' SchedulerType values that need no extra arguments
LrScheduler = Literal["linear", "cosine", "cosine_with_restarts", "polynomial", "constant",
                      "constant_with_warmup", "inverse_sqrt"]
PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]


class Section(BaseModel):
    """A params.yaml section: unknown keys, wrong types (no "2" for 2, no true for 1) and values outside a
    choice or bound are errors; an int stands for a float."""
    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_empty(cls, value, info):
        """`revision:` or `data:` with nothing after it reads as None in YAML: an empty string, or a section of
        defaults."""
        hint = cls.model_fields[info.field_name].annotation
        if value is None and hint is str:
            return ""
        if value is None and isinstance(hint, type) and issubclass(hint, BaseModel):
            return {}
        return value


class DataParams(Section):
    source: str = Field(
        "builtin", description="builtin | hub dataset id | local .json/.jsonl/.parquet (Alpaca schema)")
    pool_size: PositiveInt = Field(
        350, description="prompts the teacher answers (>= largest size; slack for filtered answers)")
    heldout_size: PositiveInt = Field(
        40, description="prompts never trained on; their teacher answers score perplexity")
    max_source_records: int = Field(0, description="0 = all")
    split_seed: int = 0  # fixes the pool/held-out split and the subsets' nested order (the pool's)


class FilterParams(Section):
    empty: bool = True  # drop empty answers
    echo: bool = True  # drop answers that repeat the prompt
    template_leak: bool = True  # drop answers that contain template markers
    repetition: bool = True  # drop answers stuck in an n-gram loop
    repetition_ngram: PositiveInt = 4
    repetition_max_fraction: float = 0.5  # share of n-grams that are repeats
    truncated: Literal["keep", "drop"] = Field("keep", description="keep | drop answers cut at max_new_tokens")


class TeacherParams(Section):
    model: str = Field("embedded", description="embedded | hub model id | local folder")
    revision: str = ""  # hub revision to pin ("" = the hub's current main, recorded)
    prompt_format: Literal["chat", "alpaca"] = Field("chat", description="chat (tokenizer's chat template) | alpaca")
    system_prompt: str = Field(
        "You are a helpful assistant. Answer briefly and completely, in a few sentences.",
        description="chat: the system turn written into the teacher's chat template (\"\" = the model's own)")
    backend: Literal["hf", "vllm", "openai"] = Field(
        "hf", description="hf | vllm (GPU machines) | openai (a served teacher)")
    max_new_tokens: PositiveInt = 96
    batch_size: PositiveInt = Field(
        64, description="prompts decoded at once; 64 measured 1.2x faster than 32 on 2 CPU cores")
    do_sample: bool = False
    temperature: PositiveFloat = 0.7
    top_p: PositiveFloat = 0.9
    seed: int = 0  # for sampled decoding
    tensor_parallel_size: PositiveInt = 1  # vllm only
    trust_remote_code: bool = False
    # backend openai (docs/scaling-out.md: "A served teacher"): the server, the name it serves the teacher under,
    # and the environment variable holding the API key (the key itself never goes in params)
    base_url: str = Field("", description="backend openai: the server's API root, e.g. http://127.0.0.1:8000/v1")
    served_model: str = Field("", description="the model's name as the server's /v1/models lists it")
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="the environment variable that holds the API key (local servers need none)")
    concurrency: PositiveInt = Field(8, description="requests in flight")
    request_timeout: PositiveFloat = Field(120.0, description="seconds per request")
    max_retries: int = Field(6, description="per request: 429, 5xx, timeouts, dropped connections, malformed bodies")
    max_total_retries: PositiveInt = Field(
        200, description="for the whole stage; past it the stage stops, keeping every finished answer")
    filters: FilterParams = Field(default_factory=FilterParams)


# The served backend's keys: how requests are sent (no answer depends on them, so no stage reruns on
# them), and, with the server and its model, what the local engine's fingerprint leaves out
REQUEST_KEYS = {"api_key_env", "concurrency", "request_timeout", "max_retries", "max_total_retries"}
SERVING_KEYS = REQUEST_KEYS | {"base_url", "served_model"}


class StudentParams(Section):
    """One student of the study. Every key changes the model, so its stages track the whole section."""
    # pruned (the teacher cut to num_layers of its layers) | scratch (a small random Llama with the
    # teacher's tokenizer) | hub id | folder
    model: str = Field(
        "pruned", description="pruned (teacher layers) | scratch (small random Llama) | hub model id | local folder")
    revision: str = ""
    trust_remote_code: bool = False
    # pruned: the teacher layers to keep; [] = the num_layers of highest block influence
    keep_layers: list[int] = Field(
        default_factory=list, description="pruned: teacher layers to keep; [] = the num_layers of highest block influence")
    num_layers: PositiveInt = Field(10, description="pruned and scratch")
    # Shape of the from-scratch student; ignored for the others.
    hidden_size: PositiveInt = Field(256, description="scratch only, like the three below")
    num_heads: PositiveInt = 4
    intermediate_size: PositiveInt = 768
    max_position_embeddings: PositiveInt = 512


class TeacherTopkParams(Section):
    k: PositiveInt = 20  # teacher log-probs kept per answer token, for train.objective kd | mixed
    batch_size: PositiveInt = 16


STUDENT_NAME = re.compile(r"[A-Za-z0-9_.]+")  # no "-": it joins a run's parts (pruned10-n640-seed0)


class ScalingParams(Section):
    sizes: list[int] = Field(
        default_factory=lambda: [0, 20, 40, 80, 160, 320], description="every student's; 0: the untrained student")
    # Replicates: these sizes trained again with each of these seeds (besides `seed`), on the same subsets
    # in each seed's own data order, so the report can tell a step in data from seed-to-seed noise.
    replicate_sizes: list[int] = Field(
        default_factory=list, description="these sizes trained again with each replicate seed (besides `seed`)")
    replicate_seeds: list[int] = Field(
        default_factory=list, description="same subsets, own data order: the report's seed-to-seed spread")


class TrainParams(Section):
    epochs: PositiveFloat = 2.0
    learning_rate: PositiveFloat = Field(
        1e-3, description="chosen by the pilot in docs/studies.md (\"The embedded student\")")
    batch_size: PositiveInt = 16
    schedule: Literal["epochs", "steps"] = Field(
        "epochs", description="epochs | steps (same optimizer steps for every size)")
    max_steps: int = Field(0, description="with schedule: steps")
    max_length: PositiveInt = 256  # tokens of prompt + response + EOS
    freeze_embeddings: bool = Field(True, description="a pretrained start keeps its tied embeddings and head")
    overlong: Literal["truncate", "drop"] = Field("truncate", description="truncate | drop")
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    lr_scheduler: LrScheduler = "cosine"
    logging_steps: PositiveInt = 2
    save_steps: PositiveInt = 25  # checkpoints so that an interrupted run resumes
    objective: Literal["sft", "kd", "mixed"] = Field(
        "sft", description="sft | kd (teacher's top-k log-probs) | mixed (kd_weight * kd + rest sft)")
    kd_temperature: PositiveFloat = Field(1.0, description="KL at temperature T on answer tokens, scaled by T^2")
    kd_weight: float = Field(0.5, description="the KD share with objective: mixed")


NEW_TOKENS = 128  # an evaluated answer's length limit, and the timing's; generation's default too


class EvalParams(Section):
    max_new_tokens: PositiveInt = NEW_TOKENS
    batch_size: PositiveInt = Field(50, description="the 50 adherence prompts in one batch: 1.6x faster than 16 here")
    adherence_file: str = Field("", description="\"\" = the project's 50-prompt set")
    # A second, larger set answered only at a few sizes and by the teacher: 50 prompts cannot resolve a step of a
    # few points in pass rate; 250 can resolve about 12 (docs/metrics.md, "The adherence set")
    adherence_set: str = Field("", description="\"\" = the project's 250-prompt set, across the IFEval families")
    adherence_set_sizes: list[int] = Field(
        default_factory=list, description="every student at these sizes answers it (the teacher always does)")
    speed_runs: PositiveInt = Field(
        1, description="timed runs per model (the score uses the median over an architecture)")
    speed_new_tokens: PositiveInt = NEW_TOKENS


class ReportParams(Section):
    # combined_score = w_perplexity * (1 / ppl) + w_pass_rate * pass_rate + w_speed * tok/s / max tok/s
    weight_perplexity: float = 0.4
    weight_pass_rate: float = 0.4
    weight_speed: float = 0.2
    doubling_gain_threshold: float = 0.05  # relative perplexity gain below which more data "stops paying"


class SweepParams(Section):
    """`kdscale sweep`: how the study grows, and when it stops (0 = no such limit)."""
    metric: Literal["perplexity", "pass_rate", "degenerate_share"] = Field(
        "perplexity", description="the metric the rule reads: perplexity | pass_rate | degenerate_share")
    growth: float = Field(2.0, description="the next size: the largest times this")
    confirm_seeds: list[int] = Field(
        default_factory=list, description="replicates at the last two sizes before the rule's stop stands")
    target: float = Field(0.0, description="stop once the metric reaches it (at or below; a rate: at or above)")
    floor_share: float = Field(0.0, description="perplexity: stop within this share above the fitted floor")
    max_size: int = Field(0, description="budget: the largest training set")
    max_teacher_tokens: int = Field(0, description="budget: teacher tokens generated over the whole study")
    max_hours: float = Field(0.0, description="budget: wall hours over all rounds")
    price_per_million_tokens: float = Field(0.0, description="a hosted teacher's price, for the cost line")
    stop_on_prediction: bool = Field(
        True, description="stop unspent when the fit's best case for the next size gains under the threshold")


class Params(Section):
    seed: int = Field(0, description="replicate seed: data order, a scratch student's init (not the subsets)")
    # Where every model runs (teacher generation, training, evaluation), chosen once:
    # auto = CUDA + bfloat16 where a GPU is visible, CPU + float32 otherwise.
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto (CUDA + bfloat16 if a GPU is visible, else CPU + float32) | cpu | cuda")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="auto | float32 | bfloat16 | float16")
    registered_name: str = Field(
        "kdscale-student", description="the MLflow registry entry of the students (alias: a run's name)")
    data: DataParams = Field(default_factory=DataParams)
    teacher: TeacherParams = Field(default_factory=TeacherParams)
    teacher_topk: TeacherTopkParams = Field(
        default_factory=TeacherTopkParams, description="the teacher's top-k log-probs per answer token (for kd | mixed)")
    # DVC's matrix runs every student at every size, so adding a student runs only that student's stages
    students: dict[str, StudentParams] = Field(
        default_factory=lambda: {"pruned10": StudentParams()},
        description="the study's students by name (letters, digits, _ and .): each trains at every size")
    scaling: ScalingParams = Field(default_factory=ScalingParams)
    train: TrainParams = Field(default_factory=TrainParams)
    eval: EvalParams = Field(default_factory=EvalParams)
    report: ReportParams = Field(default_factory=ReportParams)
    sweep: SweepParams = Field(default_factory=SweepParams)



def _choices_and_bounds(model: type[BaseModel], prefix: str = "") -> tuple[dict[str, set], set[str]]:
    """{key: allowed values} of every Literal field and the keys that must be positive, read off the models."""
    choices, positive = {}, set()
    for name, info in model.model_fields.items():
        key, hint = prefix + name, info.annotation
        if typing.get_origin(hint) is dict:  # students: any name
            key, hint = key + ".*", typing.get_args(hint)[1]
        if isinstance(hint, type) and issubclass(hint, BaseModel):
            inner = _choices_and_bounds(hint, key + ".")
            choices |= inner[0]
            positive |= inner[1]
        elif typing.get_origin(hint) is Literal:
            choices[key] = set(typing.get_args(hint))
        elif any(getattr(m, "gt", None) == 0 for m in info.metadata):
            positive.add(key)
    return choices, positive


CHOICES, POSITIVE = _choices_and_bounds(Params)
TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _field(loc: list[str]):
    """The model class holding the key at `loc` and the key's FieldInfo (None for the file itself)."""
    model, info, mapping = Params, None, None
    for part in loc:
        if mapping is not None:  # a name in a mapping of sections (students)
            model, mapping = mapping, None
            continue
        info = model.model_fields[part]
        if typing.get_origin(info.annotation) is dict:
            mapping = typing.get_args(info.annotation)[1]
        elif isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            model = info.annotation
    return model, info


def _raw_value(raw, loc: list[str]):
    for part in loc:
        raw = raw.get(part) if isinstance(raw, dict) else None
    return raw


def _error_line(error: dict, raw, where: str) -> str:
    """One pydantic error as one line that names the key, what it must be, and what it got."""
    loc = [p for p in error["loc"] if isinstance(p, str)]  # a list item's error names the list
    key, kind = ".".join(loc), error["type"]
    if kind == "extra_forbidden":
        model, _ = _field(loc[:-1])
        names = list(model.model_fields)
        prefix = key.rpartition(".")[0] + "." if "." in key else ""
        close = difflib.get_close_matches(loc[-1], names, n=1)
        hint = f" (did you mean '{prefix}{close[0]}'?)" if close else f"; known keys: {', '.join(names)}"
        return f"{where}: unknown key '{key}'{hint}"
    value = _raw_value(raw, loc) if loc else raw
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{where}: '{key or 'params'}' must be a mapping, got {value!r}"
    if kind == "literal_error":
        return f"{where}: '{key}' must be one of {sorted(CHOICES[key])}, got {value!r}"
    if kind == "greater_than":
        return f"{where}: '{key}' must be positive, got {value!r}"
    hint = _field(loc)[1].annotation
    if typing.get_origin(hint) is list:
        item = typing.get_args(hint)[0]
        want = "a list of " + {int: "integers", float: "numbers", str: "strings"}.get(item, str(item))
    else:
        want = TYPE_WORDS.get(hint, str(hint))
    return f"{where}: '{key}' must be {want}, got {value!r}"


def validate(params: Params, where: str = PARAMS_FILE) -> Params:
    """The rules that tie keys together (types, choices and bounds are the models' own)."""
    if params.data.max_source_records < 0:
        raise UserError(f"{where}: 'data.max_source_records' must be 0 (no cap) or positive")
    sizes = params.scaling.sizes
    if not sizes:
        raise UserError(f"{where}: 'scaling.sizes' is empty; give at least one sample count, e.g. [25, 50, 100]")
    bad = [s for s in sizes if s < 0]
    if bad:
        raise UserError(f"{where}: 'scaling.sizes' must be sample counts >= 0 (0: the untrained student), "
                        f"got {bad[0]}")
    repeated = sorted({s for s in sizes if sizes.count(s) > 1})
    if repeated:
        raise UserError(f"{where}: 'scaling.sizes' repeats {repeated[0]}; list each sample count once")
    if max(sizes) > params.data.pool_size:
        raise UserError(
            f"{where}: 'scaling.sizes' asks for {max(sizes)} samples but 'data.pool_size' is "
            f"{params.data.pool_size}; raise data.pool_size or lower the largest size"
        )
    _validate_students(params, where)
    outside = [n for n in params.eval.adherence_set_sizes if n not in sizes]
    if outside:
        raise UserError(f"{where}: 'eval.adherence_set_sizes' has {outside[0]}, which is not in 'scaling.sizes' "
                        f"{sizes}; list sizes the study trains")
    _validate_replicates(params.scaling, params.seed, where)
    _validate_served(params.teacher, where)
    _validate_sweep(params, where)
    if params.device == "cpu" and params.dtype == "float16":
        raise UserError(f"{where}: 'dtype: float16' does not run on the CPU; use 'dtype: auto' or float32")
    if params.train.schedule == "steps" and params.train.max_steps <= 0:
        raise UserError(f"{where}: 'train.schedule: steps' needs a positive 'train.max_steps'")
    if not 0 <= params.train.kd_weight <= 1:
        raise UserError(f"{where}: 'train.kd_weight' is the KD share of the mixed loss, between 0 and 1; "
                        f"got {params.train.kd_weight!r}")
    weights = [params.report.weight_perplexity, params.report.weight_pass_rate, params.report.weight_speed]
    if min(weights) < 0 or abs(sum(weights) - 1.0) > 1e-6:
        raise UserError(
            f"{where}: 'report.weight_perplexity', 'report.weight_pass_rate' and 'report.weight_speed' "
            f"must be non-negative and sum to 1, got {weights}"
        )
    return params


def _validate_students(params: Params, where: str) -> None:
    if not params.students:
        raise UserError(f"{where}: 'students' is empty; name at least one, e.g. pruned10: {{num_layers: 10}}")
    for name, student in params.students.items():
        if not STUDENT_NAME.fullmatch(name):
            raise UserError(f"{where}: student name {name!r} must be letters, digits, _ and . only "
                            "(a run's name joins it to its size with -)")
        if student.hidden_size % student.num_heads:
            raise UserError(f"{where}: 'students.{name}.hidden_size' must be a multiple of its 'num_heads'")


def _validate_replicates(scaling: ScalingParams, seed: int, where: str) -> None:
    if bool(scaling.replicate_sizes) != bool(scaling.replicate_seeds):
        raise UserError(f"{where}: 'scaling.replicate_sizes' and 'scaling.replicate_seeds' go together; "
                        "give both, or leave both empty")
    outside = [n for n in scaling.replicate_sizes if n not in scaling.sizes or n == 0]
    if outside:
        raise UserError(f"{where}: 'scaling.replicate_sizes' has {outside[0]}, which is not a trained size of "
                        f"'scaling.sizes' {scaling.sizes}; replicate only sizes > 0 that the study trains")
    for key, values in (("replicate_sizes", scaling.replicate_sizes), ("replicate_seeds", scaling.replicate_seeds)):
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise UserError(f"{where}: 'scaling.{key}' repeats {repeated[0]}; list each once")
    if seed in scaling.replicate_seeds:
        raise UserError(f"{where}: 'scaling.replicate_seeds' has {seed}, the study's own 'seed'; "
                        "replicate seeds are the extra ones")


def _validate_sweep(params: Params, where: str) -> None:
    sweep = params.sweep
    if sweep.growth <= 1:
        raise UserError(f"{where}: 'sweep.growth' must be above 1 (2 doubles the largest size), got {sweep.growth}")
    for key in ("target", "floor_share", "max_size", "max_teacher_tokens", "max_hours", "price_per_million_tokens"):
        if getattr(sweep, key) < 0:
            raise UserError(f"{where}: 'sweep.{key}' must be 0 (none) or positive, got {getattr(sweep, key)}")
    if sweep.metric != "perplexity" and (sweep.target > 1 or sweep.floor_share):
        raise UserError(f"{where}: 'sweep.metric: {sweep.metric}' is a rate: its 'sweep.target' lies in 0..1 and it "
                        "has no fitted floor ('sweep.floor_share' is for perplexity)")
    if params.seed in sweep.confirm_seeds or len(set(sweep.confirm_seeds)) < len(sweep.confirm_seeds):
        raise UserError(f"{where}: 'sweep.confirm_seeds' must list extra seeds once each, not the study's 'seed' "
                        f"{params.seed}; got {sweep.confirm_seeds}")


def _validate_served(teacher: TeacherParams, where: str) -> None:
    if teacher.backend != "openai":
        return
    for key in ("base_url", "served_model", "api_key_env"):
        if not getattr(teacher, key).strip():
            raise UserError(f"{where}: 'teacher.backend: openai' needs 'teacher.{key}' "
                            "(the server's URL, the model name its /v1/models lists, the key's variable)")
    if not teacher.base_url.startswith(("http://", "https://")):
        raise UserError(f"{where}: 'teacher.base_url' must start with http:// or https://, got {teacher.base_url!r}")
    if teacher.max_retries < 0:
        raise UserError(f"{where}: 'teacher.max_retries' must be 0 or more, got {teacher.max_retries}")


def suggested_pool_size(largest: int, kept: int, answered: int, margin: float = 1.1) -> int:
    """The data.pool_size that leaves `largest` answers after the measured drop rate, with 10% to spare."""
    return math.ceil(largest / max(kept / answered, 1e-3) * margin)


def check_size(params: Params, size: int) -> int:
    """A per-size stage's --size must be one of scaling.sizes."""
    if size not in params.scaling.sizes:
        raise UserError(f"--size {size} is not in scaling.sizes {params.scaling.sizes}; add it there first")
    return size


def check_run(params: Params, student: str, size: int, seed: int | None = None) -> tuple[Run, Params]:
    """A per-model stage's --student/--size/--seed, checked against params.yaml: the run, and the params it runs
    under (`seed` replaced by a replicate's)."""
    if student not in params.students:
        raise UserError(f"--student {student} is not in students ({', '.join(params.students)}); add it there first")
    check_size(params, size)
    if seed is None or seed == params.seed:
        return Run(student, size, params.seed), params
    if size not in params.scaling.replicate_sizes or seed not in params.scaling.replicate_seeds:
        raise UserError(f"--size {size} --seed {seed} is not a replicate: scaling.replicate_sizes is "
                        f"{params.scaling.replicate_sizes} and scaling.replicate_seeds {params.scaling.replicate_seeds}")
    return Run(student, size, seed), params.model_copy(update={"seed": seed})


def runs(params: Params) -> list[Run]:
    """Every student the study trains, in the order the report lists them: each at every size with `seed`,
    then its replicates."""
    return [Run(student, n, seed) for student in params.students
            for n, seed in [(n, params.seed) for n in sorted(params.scaling.sizes)]
            + [(n, s) for n in sorted(params.scaling.replicate_sizes) for s in params.scaling.replicate_seeds]]


def parse_params(raw, where: str = PARAMS_FILE) -> Params:
    try:
        params = Params.model_validate({} if raw is None else raw)
    except ValidationError as e:
        raise UserError(_error_line(e.errors()[0], raw, where)) from None
    return validate(params, where)


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: not found; run from the project root or pass the params file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise UserError(f"{path}{line}: not valid YAML ({getattr(e, 'problem', e)}); fix the syntax") from None
    return parse_params(raw, str(path))


def to_dict(params: BaseModel) -> dict:
    return params.model_dump()


def flatten(d: dict, prefix: str = "") -> dict:
    """{'train': {'epochs': 2}} -> {'train.epochs': 2}, for MLflow params."""
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
