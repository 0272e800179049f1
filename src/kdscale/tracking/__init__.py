"""MLflow tracking: one store per repository, one run per model. Two writers use it: the train stage
logs its run live (params, per-step curve, the registered model), and `kdscale sync` (the report
stage's last step) logs everything else from the files the stages wrote.

The store is `sqlite:///<repo root>/mlflow.db` with artifacts in `<repo root>/mlartifacts/`
unless MLFLOW_TRACKING_URI says otherwise. Queued DVC experiments run in a temporary copy
of the repository, so the root comes from DVC_ROOT (which DVC points at the real one).

The train stage writes its run's id next to the checkpoint (`mlflow_run.json`); sync finds the run
by it, or by the key of the outputs it describes. Two `dvc queue` workers train at once, so two
processes can write one SQLite file: the first connection (schema migrations), the experiment's
creation and each sync happen under a file lock, and calls retry "database is locked". An MLflow
server (MLFLOW_TRACKING_URI=http://...) is the one writer of its database and needs neither.

    setup()
    run = paths.Run("pruned10", 500, 0)
    with start_run("train", run.name, common_tags("train", run, [data])) as active:
        log_params(cfg); log_metrics({"loss": 1.2}, step=10)
        log_student_model(model_dir, "kdscale-student", run)
        write_run_id(model_dir, active.info.run_id)
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path

# Stage logs show our own progress; MLflow's per-file download bars only add noise.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import mlflow  # noqa: E402
import mlflow.pyfunc  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from kdscale import paths  # noqa: E402
from kdscale.checkout import git, pipeline_folder, project_root  # noqa: E402
from kdscale.config import flatten, to_dict  # noqa: E402
from kdscale.digest import data_md5  # noqa: E402

try:
    import fcntl
except ImportError:  # Windows: no lock, and MLflow's own retries only
    fcntl = None

RUN_ID_FILE = "mlflow_run.json"
PID_TAG, HOST_TAG = "kdscale.pid", "kdscale.host"  # who holds a RUNNING run: a dead pid on this host = killed
KEY_TAG = "kdscale.key"  # stage/run/md5 of the outputs a run describes: how `kdscale sync` finds it
DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
# sqlite3's own wait for a lock, in seconds. It covers the connections MLflow opens outside its
# sessions (schema migrations, inspection); its sessions set PRAGMA busy_timeout = 20 s themselves.
SQLITE_TIMEOUT_S = 60

SECRET_WORDS = {"TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "APIKEY", "CREDENTIALS"}
SPECIAL_TOKENS = {"PAD", "EOS", "BOS", "UNK", "SEP", "CLS", "MASK"}  # pad_token etc. are not secrets


# ----------------------------------------------------------------------------- where the store is

def tracking_uri() -> str:
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    # An absolute path gives four slashes: sqlite:////abs/path/mlflow.db
    return f"sqlite:///{project_root() / DB_FILE}?timeout={SQLITE_TIMEOUT_S}"


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite URI (absolute), or None for other stores."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path).expanduser().resolve()


def artifact_location(uri: str | None = None) -> str | None:
    """Where a new experiment keeps its artifacts: `mlartifacts/` beside a SQLite file.

    MLflow's own default for SQLite is ./mlartifacts relative to the working directory,
    which a queued experiment's temporary copy would take with it when it is deleted.
    Other stores (a server) choose for themselves: None.
    """
    db = _sqlite_path(uri or tracking_uri())
    return (db.parent / ARTIFACTS_DIR).as_uri() if db else None


# ----------------------------------------------------------------------------- concurrency

def _transient(e: Exception) -> bool:
    if "is locked" in str(e):  # sqlite3: "database is locked", "database table is locked"
        return True
    if isinstance(e, MlflowException):
        return e.error_code == "TEMPORARILY_UNAVAILABLE"
    import sqlalchemy.exc

    return isinstance(e, sqlalchemy.exc.OperationalError)


def retry(fn, *args, attempts: int = 6, delay: float = 0.5, **kwargs):
    """fn(*args, **kwargs), retried with backoff (0.5, 1, 2, 4, 8 s and jitter) while the store is busy."""
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            if attempt == attempts - 1 or not _transient(e):
                raise
            time.sleep(delay * 2**attempt * (1 + random.random() / 2))


@contextlib.contextmanager
def _file_lock(path: Path):
    if fcntl is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def store_lock(name: str):
    """A file lock beside a SQLite store (`mlflow.db-<name>.lock`, matched by the ignore rule /mlflow.db-*),
    held by one process at a time; other stores (a server) need none: nothing."""
    db = _sqlite_path(tracking_uri())
    return _file_lock(db.with_name(f"{db.name}-{name}.lock")) if db else contextlib.nullcontext()


_setup_uri: str | None = None  # the store of the last setup() in this process


# MLflow 3's UI opens an experiment without this tag on its GenAI overview ("Traces 0"); tagged,
# it opens on the training runs.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
DESCRIPTION_TAG = "mlflow.note.content"  # the experiment's description in the UI
DESCRIPTION = """A kdscale study: students distilled from a teacher's answers at growing data sizes.

- **STUDENT-nN-seedS**: the student STUDENT (params.yaml `students`) trained on N teacher answers with seed S. Its
  charts: the training loss per step (`Training/loss`, first), the gradient norm, learning rate and
  tokens/s per step (`Training steps/...`), its evaluation (`eval/perplexity` on the held-out
  teacher answers, `eval/pass_rate` on the adherence prompts, with 95% intervals, speed and size), and
  the training summary (final loss, steps, seconds, tokens/s, padding). The per-type pass rates are the
  artifact `adherence_by_type.json`, every number the details file, every answer the samples file. Its
  model is registered with the run's name as its alias.
- **teacher-generation**: the teacher answering the prompts (throughput, tokens).
- **teacher-filter**: the filters that keep or drop those answers (counts by reason).
- **teacher-eval**: the teacher scored as the students are.
- **report**: the study's combined scores and fit, with the report, its figure and the answers side by side.

The study's record is its git repository (DVC); this view is rebuilt from it by `kdscale sync`."""


def experiment_name() -> str:
    """`kdscale` for the root pipeline; a pipeline in a subfolder (a dvc.yaml there, as in
    studies/reference) gets its own experiment in the same store, named by its folder, so two
    studies' runs never mix. A queued experiment's copy names the folder as its checkout has it."""
    folder = pipeline_folder()
    return f"kdscale/{folder.rstrip('/')}" if folder else "kdscale"


def setup(experiment: str | None = None) -> str:
    """Point MLflow at the store and make the experiment (default: this pipeline's) the active one;
    returns its id."""
    global _setup_uri
    name = experiment or experiment_name()
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    # The first process on a fresh database runs MLflow's schema migrations, unlocked in
    # MLflow 3.17: a second process doing the same at the same time fails. One at a time, then.
    with store_lock("setup"):
        client = MlflowClient(uri)
        exp = retry(client.get_experiment_by_name, name)
        if exp is None:
            try:
                exp_id = retry(client.create_experiment, name, artifact_location=artifact_location(uri))
            except MlflowException as e:  # another process won the race (no lock on a server store)
                if "already exists" not in str(e).lower():
                    raise
                exp_id = retry(client.get_experiment_by_name, name).experiment_id
        else:
            exp_id = exp.experiment_id
            if exp.lifecycle_stage == "deleted":  # deleted in the UI: bring it back rather than fail
                retry(client.restore_experiment, exp_id)
        for tag, value in ((EXPERIMENT_KIND_TAG, EXPERIMENT_KIND), (DESCRIPTION_TAG, DESCRIPTION)):
            if exp is None or exp.tags.get(tag) != value:
                retry(client.set_experiment_tag, exp_id, tag, value)
    retry(mlflow.set_experiment, experiment_id=exp_id)
    _setup_uri = uri
    close_dead_runs(exp_id)
    return exp_id


# ----------------------------------------------------------------------------- runs that died

def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def close_dead_runs(experiment_id: str) -> list[str]:
    """Mark KILLED the RUNNING runs of this host whose process is gone (a SIGKILL, a lost machine
    leaves them RUNNING forever); returns their ids. Runs of other hosts, or without a pid tag,
    are left alone: nothing here can tell whether they still live."""
    client = MlflowClient()
    running = retry(client.search_runs, [experiment_id], "attributes.status = 'RUNNING'", max_results=1000)
    closed = []
    for run in running:
        tags = run.data.tags
        if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
            continue
        if not _alive(int(tags[PID_TAG])):
            retry(client.set_terminated, run.info.run_id, "KILLED")
            retry(client.set_tag, run.info.run_id, "kdscale.closed_by", f"pid {os.getpid()}: process {tags[PID_TAG]} gone")
            closed.append(run.info.run_id)
    if closed:
        print(f"tracking: marked {len(closed)} run(s) KILLED whose process had died: {', '.join(closed)}")
    return closed


# ----------------------------------------------------------------------------- tags

def git_commit() -> str | None:
    # A queued experiment runs on its baseline commit, whatever HEAD of the real repo is now.
    return os.environ.get("DVC_EXP_BASELINE_REV") or git("rev-parse", "HEAD", cwd=project_root())


def common_tags(stage: str, run: paths.Run | None = None, data_paths: list[Path] = ()) -> dict:
    """`run`: the student a per-model stage trains or evaluates; None for the study-wide stages."""
    exp = os.environ.get("DVC_EXP_NAME") or "workspace"
    tags = {"kdscale.stage": stage, "kdscale.dvc_exp": exp, "kdscale.study": os.environ.get("KDSCALE_STUDY") or exp}
    if run is not None:
        tags |= {"kdscale.student": run.student, "kdscale.size": str(run.size), "kdscale.seed": str(run.seed)}
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    if data_paths:
        tags["kdscale.data_md5"] = data_md5(list(data_paths))
    return tags


# ----------------------------------------------------------------------------- runs

def display_name(name: str, tags: dict) -> str:
    """A run's name in the UI: what it describes, plus the DVC experiment that made it when that is not
    the workspace, so that `student-n20` runs of three experiments side by side tell apart."""
    exp = tags.get("kdscale.dvc_exp") or "workspace"
    return name if exp == "workspace" else f"{name} ({exp})"

def _existing_run(run_id: str):
    try:
        run = retry(MlflowClient().get_run, run_id)
    except MlflowException as e:
        if e.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise
    return None if run.info.lifecycle_stage == "deleted" else run


def owner_tags() -> dict[str, str]:
    """This process as the holder of a run: close_dead_runs ends the run once it is gone."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def run_key(stage: str, run: paths.Run | None, outputs: list[Path]) -> str:
    """What a run describes, e.g. `train/pruned10-n320-seed0/<md5 of its model>`: equal outputs, equal key."""
    return f"{stage}/{'-' if run is None else run.name}/{data_md5(list(outputs))}"


@contextlib.contextmanager
def start_run(stage: str, run_name: str, tags: dict, run_id: str | None = None,
              outputs: list[Path] | None = None, student: paths.Run | None = None):
    """The active run of a stage: a new one, or the run `run_id` reopened when the store has it.

    A run id the store does not know (a checkpoint pulled from a DVC remote onto another
    machine) starts a new run that records it as `kdscale.original_run_id`. A reopened run
    keeps its tags: a tag of this stage that would change one goes under `<key>.<stage>`.
    The run records this process (pid, host), so a later stage can close it if the process dies.
    Given `outputs`, a run that ends well is tagged with their key (run_key), so `kdscale sync`
    knows it already describes them (`student`: the run of a per-model stage). The run ends FINISHED, or FAILED when the block raises
    (KILLED on Ctrl-C).
    """
    if _setup_uri != tracking_uri():  # a stage that forgot setup() still writes to the right store
        setup()
    tags = {"kdscale.stage": stage, **{k: str(v) for k, v in tags.items()}}
    owner = owner_tags()
    existing = _existing_run(run_id) if run_id else None
    if existing:
        run = retry(mlflow.start_run, run_id=run_id)
        old = existing.data.tags
        retry(mlflow.set_tags, {**{k if k not in old or old[k] == v else f"{k}.{stage}": v for k, v in tags.items()},
                                **owner})
    else:
        if run_id:
            tags["kdscale.original_run_id"] = run_id
        run = retry(mlflow.start_run, run_name=display_name(run_name, tags), tags={**tags, **owner})
    try:
        yield run
    except KeyboardInterrupt:
        retry(mlflow.end_run, "KILLED")
        raise
    except BaseException:
        retry(mlflow.end_run, "FAILED")
        raise
    if outputs:
        retry(mlflow.set_tag, KEY_TAG if not existing or KEY_TAG not in existing.data.tags else f"{KEY_TAG}.{stage}",
              run_key(stage, student, outputs))
    retry(mlflow.end_run, "FINISHED")


def is_secret(key: str) -> bool:
    """HF_TOKEN, api_key, db.password... but not max_new_tokens or pad_token."""
    words = [w for w in re.split(r"[^A-Za-z0-9]+", key.upper()) if w]
    return any(w in SECRET_WORDS and not (w == "TOKEN" and i > 0 and words[i - 1] in SPECIAL_TOKENS)
               for i, w in enumerate(words))


def flat_params(d: dict) -> dict[str, str]:
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    return {k: str(v)[:MAX_PARAM_VAL_LENGTH] for k, v in flatten(d).items() if not is_secret(k)}


# What the MLflow UI's compare view groups by: train.py tags each student's run with these,
# and kdscale compare groups experiments the same way.
RECIPE_TAGS = {"objective": "train.objective", "schedule": "train.schedule", "learning_rate": "train.learning_rate",
               "seed": "seed"}


def recipe_tags(params) -> dict:
    """The recipe as MLflow tags (`kdscale.recipe.<name>`), so the UI groups runs as compare does (the student
    is the run's own tag, kdscale.student)."""
    flat = flatten({"seed": params.seed, "train": to_dict(params.train)})
    return {f"kdscale.recipe.{tag}": str(flat[key]) for tag, key in RECIPE_TAGS.items()}


def teacher_run_params(params) -> dict:
    """The params of the teacher stage's run, logged by the stage and by `kdscale sync` when it rebuilds
    the run: decoding, device, dtype and top-k. The filters go to teacher_filter's run."""
    decoding = {k: v for k, v in to_dict(params.teacher).items() if k != "filters"}
    return {"teacher": decoding, "device": params.device, "dtype": params.dtype, "topk_k": params.teacher_topk.k}


def filter_run_params(params) -> dict:
    """The params of the teacher_filter stage's run (the stage and `kdscale sync`)."""
    return {"teacher": {"filters": to_dict(params.teacher.filters)}}


def log_params(d: dict) -> None:
    params = flat_params(d)
    if params:
        retry(mlflow.log_params, params)


def log_params_to(run_id: str, d: dict) -> None:
    """log_params on a run that is not the active one (kdscale sync)."""
    from mlflow.entities import Param

    params = [Param(k, v) for k, v in flat_params(d).items()]
    for start in range(0, len(params), 100):  # log_batch takes at most 100 params
        retry(MlflowClient().log_batch, run_id, params=params[start:start + 100])


def flat_metrics(d: dict) -> dict[str, float]:
    """The finite numbers of a nested dict, under dotted keys; strings and booleans are left out."""
    metrics = {}
    for k, v in flatten(d).items():
        try:
            x = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(x) and not isinstance(v, (str, bool)):
            metrics[k] = x
    return metrics


# What a student's run shows of its training: the summary's numbers below (the rest of the summary stays
# in training_log.json, with the model) and, per logging step, the Trainer's loss, gradient norm and
# learning rate and the real (unpadded) tokens per second since the last log. MLflow's run page groups
# charts by the name before "/" and sorts the groups as text, unprefixed last: "Training" (the loss alone)
# comes first, then "Training steps", then "eval", so the loss is the first chart a run shows.
TRAINING_METRICS = ["final_loss", "train_loss", "optimizer_steps", "train_seconds", "real_tokens_per_sec",
                    "padding_fraction"]
CURVES = {"loss": "Training/loss", "grad_norm": "Training steps/grad_norm",
          "learning_rate": "Training steps/learning_rate", "tokens_per_sec": "Training steps/tokens_per_sec"}


def training_metrics(summary: dict) -> dict[str, float]:
    return {k: float(summary[k]) for k in TRAINING_METRICS if isinstance(summary.get(k), (int, float))}


def log_metrics(d: dict, step: int | None = None) -> None:
    metrics = flat_metrics(d)
    if metrics:
        retry(mlflow.log_metrics, metrics, step=step)


def log_artifact(path: Path, artifact_path: str | None = None) -> None:
    path = Path(path)
    if path.is_dir():
        retry(mlflow.log_artifacts, str(path), artifact_path=artifact_path or path.name)
    else:
        retry(mlflow.log_artifact, str(path), artifact_path=artifact_path)


def log_dict(d: dict, artifact_file: str) -> None:
    retry(mlflow.log_dict, d, artifact_file)


def log_dataset(path: Path, context: str, run_id: str | None = None) -> None:
    """The data file a run read, as an MLflow dataset input: the DVC path as name and source, its
    md5 (what dvc.lock records for a file) as digest. The UI's Dataset column shows it."""
    from mlflow.data.dataset_source_registry import get_registered_sources
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    path = Path(path)
    # MLflow makes its "local" source class at import time; it is not importable by name.
    local = next(s for s in get_registered_sources() if s._get_source_type() == "local")
    dataset = MetaDataset(local(path.as_posix()), name=path.as_posix(), digest=data_md5([path]))
    if run_id is None:
        retry(mlflow.log_input, dataset, context=context)
    else:
        entity = DatasetInput(dataset._to_mlflow_entity(), [InputTag(MLFLOW_DATASET_CONTEXT, context)])
        retry(MlflowClient().log_inputs, run_id, [entity])


def write_run_id(folder: Path, run_id: str) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RUN_ID_FILE).write_text(json.dumps({"run_id": run_id}, indent=2) + "\n")


def read_run_id(folder: Path) -> str | None:
    try:
        return json.loads((Path(folder) / RUN_ID_FILE).read_text())["run_id"] or None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def disable_hf_integrations() -> None:
    """Keep HF Trainer's MLflow callback from opening a second run (and logging every argument).

    The train stage also passes report_to="none"; this covers code paths that do not.
    """
    os.environ["DISABLE_MLFLOW_INTEGRATION"] = "TRUE"
    os.environ["HF_MLFLOW_LOG_ARTIFACTS"] = "FALSE"


# ----------------------------------------------------------------------------- models

def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for name in ("mlflow", "torch", "transformers", "safetensors", "tokenizers", "accelerate"):
        try:
            reqs.append(f"{name}=={version(name).split('+')[0]}")  # 2.13.0+cpu -> 2.13.0
        except PackageNotFoundError:
            pass
    return reqs


def log_student_model(model_dir: Path, registered_name: str, run: paths.Run | None = None) -> str:
    """Log a checkpoint folder on the active run as a pyfunc, register it; returns models:/name/version.

    The model version gets the tags kdscale.student and kdscale.size and the run's name as its alias (so
    `mlflow.pyfunc.load_model("models:/<name>@pruned10-n500-seed0")` is the latest such student).
    kdscale itself travels as code_paths, so the model loads where kdscale is not installed.
    """
    import kdscale

    code = Path(kdscale.__file__).parent
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)  # a clean copy of the package: no __pycache__ in the model
        shutil.copytree(code, tmp / "kdscale", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        # Not retried: a retry after a half-done registration would add a second version.
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("serving.py")),  # models from code: no pickle
            artifacts={"checkpoint": str(Path(model_dir).resolve())},
            code_paths=[str(tmp / "kdscale")],
            input_example=(["Say hi."], {"max_new_tokens": 8}),  # log_model checks that it loads and answers
            pip_requirements=_requirements(),
            registered_model_name=registered_name,
        )
    version = info.registered_model_version
    client = MlflowClient()
    if run is not None:
        retry(client.set_model_version_tag, registered_name, version, "kdscale.student", run.student)
        retry(client.set_model_version_tag, registered_name, version, "kdscale.size", str(run.size))
        retry(client.set_registered_model_alias, registered_name, run.name, version)
    uri = f"models:/{registered_name}/{version}"
    if mlflow.active_run():
        retry(mlflow.set_tag, "kdscale.model_uri", uri)
    return uri
