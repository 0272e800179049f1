"""The whole pipeline on the tiny configuration: `dvc repro` in a temporary copy of the project.

One reproduced project is shared by the tests of this module, test_workflow.py, test_sync.py
and test_server.py (`reproduced_project`); a test that runs a command in it works on a copy
(`copy_project`).
The paths test at the top needs no run.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO, STUDENT, make_project, project_env, run_of
from kdscale import paths
from kdscale.metrics import headline_keys

SIZES = [8, 16]  # conftest.tiny_params
RUNS = [run_of(n) for n in SIZES]  # its one student at each size, with the project's seed
REGISTERED_NAME = "kdscale-student"
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "kdscale tests", "GIT_AUTHOR_EMAIL": "tests@kdscale.invalid",
                "GIT_COMMITTER_NAME": "kdscale tests", "GIT_COMMITTER_EMAIL": "tests@kdscale.invalid"}


# ----------------------------------------------------------------------------- helpers (shared with test_workflow)

def sh(cmd: list[str], cwd: Path, env: dict | None = None, check: bool = True,
       timeout: float | None = 900) -> subprocess.CompletedProcess:
    """conftest.run with a git identity and extra environment variables."""
    full_env = {**project_env(cwd), **GIT_IDENTITY, **(env or {})}
    result = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def commit_all(project: Path, message: str) -> str:
    sh(["git", "add", "-A"], project)
    sh(["git", "-c", "commit.gpgsign=false", "commit", "-q", "--allow-empty", "-m", message], project)
    return sh(["git", "rev-parse", "HEAD"], project).stdout.strip()


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def stage(family: str, run: paths.Run) -> str:
    """The name of a per-model stage of dvc.yaml for one run: `train@pruned1-8-0`."""
    return f"{family}@{run.student}-{run.size}-{run.seed}"


def stages_changed(status_output: str) -> set[str]:
    """Stage names of `dvc status` (lines `name:` at column 0)."""
    return {m.group(1) for m in re.finditer(r"^(\S[^\n]*?):\s*$", status_output, re.M)}


def assert_up_to_date(project: Path) -> None:
    status = sh(["dvc", "status"], project).stdout
    assert "Data and pipelines are up to date." in status, status
    repro = sh(["dvc", "repro"], project)
    assert not stages_run(repro.stdout), repro.stdout
    assert "Data and pipelines are up to date." in repro.stdout, repro.stdout


_REPRODUCED: dict[str, tuple[Path, str]] = {}


def reproduced_project(tmp_path_factory, teacher_dir: Path) -> tuple[Path, str]:
    """A tiny project after a full `dvc repro`, committed (dvc.lock included); built once a session.

    Under pytest-xdist (`make test` runs two workers) it is built once for all workers: the
    first to take the lock builds it in the session's shared folder, the others wait and
    reuse it (or its error). Tests read it in place; a test that runs a command in it
    works on a copy (`copy_project`). Returns the project and the commit the pipeline ran on
    (its runs carry it as a tag).
    """
    from filelock import FileLock

    if "project" not in _REPRODUCED:
        base = tmp_path_factory.getbasetemp()
        shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
        project, record = shared / "reproduced" / "project", shared / "reproduced.json"
        with FileLock(str(shared / "reproduced.lock")):
            if not record.exists():
                try:
                    project.mkdir(parents=True)
                    make_project(project, teacher_dir)
                    commit = commit_all(project, "tiny kdscale project")
                    repro = sh(["dvc", "repro"], project, timeout=1800)
                    assert "report" in stages_run(repro.stdout), repro.stdout
                    commit_all(project, "dvc repro")
                    record.write_text(json.dumps({"commit": commit}))
                except Exception as e:  # the next module (or worker) fails at once instead of minutes later
                    record.write_text(json.dumps({"error": f"{type(e).__name__}: {e}"}))
                    raise
        built = json.loads(record.read_text())
        if "error" in built:
            raise AssertionError(f"building the reproduced project failed: {built['error']}")
        _REPRODUCED["project"] = (project, built["commit"])
    return _REPRODUCED["project"]


def copy_project(project: Path, dest: Path, fresh_store: bool = True) -> Path:
    """A copy to change (git, DVC cache and all) without DVC's transient state (.dvc/tmp: locks
    another test's command may be writing). fresh_store drops the copied MLflow store: its
    experiment's artifact location is absolute and points into the original."""
    shutil.copytree(project, dest, symlinks=True,
                    ignore=lambda folder, names: ["tmp"] if Path(folder).name == ".dvc" else [])
    if fresh_store:
        for p in dest.glob("mlflow.db*"):
            p.unlink()
        shutil.rmtree(dest / "mlartifacts", ignore_errors=True)
    return dest


def mlflow_client(db: Path):
    from mlflow.tracking import MlflowClient

    assert db.is_file(), f"no MLflow store at {db}"
    return MlflowClient(f"sqlite:///{db}")


def all_runs(client) -> list:
    exps = client.search_experiments()
    return client.search_runs([e.experiment_id for e in exps], max_results=1000) if exps else []


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ----------------------------------------------------------------------------- paths.py and dvc.yaml agree

def _out_paths(entries) -> set[str]:
    out = set()
    for entry in entries or []:
        out.update([entry] if isinstance(entry, str) else entry.keys())
    return out


STUDY_MATRIX = {"student": "${students}", "size": "${scaling.sizes}", "seed": ["${seed}"]}
REPLICATE_MATRIX = {"student": "${students}", "size": "${scaling.replicate_sizes}", "seed": "${scaling.replicate_seeds}"}
MATRICES = {"subsets": {"size": "${scaling.sizes}"}, "student_init": {"student": "${students}"},
            "train": STUDY_MATRIX, "evaluate": STUDY_MATRIX, "train_replicate": REPLICATE_MATRIX,
            "evaluate_replicate": REPLICATE_MATRIX,
            "adherence_set": {"student": "${students}", "size": "${eval.adherence_set_sizes}", "seed": ["${seed}"]}}


def declared(run: paths.Run) -> dict[str, dict[str, set[str]]]:
    """Per stage of dvc.yaml (matrix stages for one student, size and seed): outputs (outs, metrics, plots) and
    data deps."""
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())
    stages = {}
    for name, stage in spec["stages"].items():
        def sub(s):
            return (s.replace("${item.student}", run.student).replace("${item.size}", str(run.size))
                    .replace("${item.seed}", str(run.seed)))
        assert stage.get("matrix") == MATRICES.get(name), name
        outs = {sub(p) for key in ("outs", "metrics", "plots") for p in _out_paths(stage.get(key))}
        deps = {sub(p) for p in _out_paths(stage.get("deps")) if not p.startswith("src/")}
        stages[name] = {"outs": outs, "deps": deps}
    return stages


def test_paths_agree_with_dvc_yaml():
    run = paths.Run("pruned10", 8, 3)
    n, init = run.size, paths.student_init_dir(run.student)
    s = lambda *ps: {str(p) for p in ps}  # noqa: E731
    expected = {
        "prepare": {"outs": s(paths.POOL_PROMPTS.parent), "deps": set()},
        "teacher_model": {"outs": s(paths.TEACHER_DIR), "deps": set()},
        "teacher": {"outs": s(paths.TEACHER_RAW, paths.TEACHER_GENERATION, paths.TEACHER_GENERATED_TOPK),
                    "deps": s(paths.POOL_PROMPTS, paths.HELDOUT_PROMPTS, paths.TEACHER_DIR)},
        "teacher_filter": {"outs": s(paths.TEACHER_POOL, paths.TEACHER_HELDOUT, paths.TEACHER_METRICS),
                           "deps": s(paths.TEACHER_RAW, paths.TEACHER_GENERATION)},
        "teacher_topk": {"outs": s(paths.TOPK_FILE.parent),
                         "deps": s(paths.TEACHER_POOL, paths.TEACHER_GENERATED_TOPK, paths.TEACHER_DIR)},
        "subsets": {"outs": s(paths.subset_file(n), paths.subset_topk(n)), "deps": s(paths.TEACHER_POOL, paths.TOPK_FILE)},
        "student_init": {"outs": s(init), "deps": s(paths.TEACHER_DIR, paths.TEACHER_POOL)},
        "train": {"outs": s(paths.student_dir(run)),
                  "deps": s(paths.subset_file(n), paths.subset_topk(n), init, paths.TEACHER_DIR)},
        "evaluate": {"outs": s(paths.student_samples(run), paths.student_metrics(run), paths.student_details(run),
                               paths.loss_plot(run)),
                     "deps": s(paths.student_dir(run), paths.TEACHER_HELDOUT)},
        "adherence_set": {"outs": s(paths.adherence_set_details(run), paths.adherence_set_samples(run)),
                          "deps": s(paths.student_dir(run))},
        "adherence_set_teacher": {"outs": s(paths.adherence_set_details(None), paths.adherence_set_samples(None)),
                                  "deps": s(paths.TEACHER_DIR)},
        "evaluate_teacher": {"outs": s(paths.TEACHER_SAMPLES, paths.TEACHER_EVAL_METRICS, paths.TEACHER_EVAL_DETAILS),
                             "deps": s(paths.TEACHER_DIR, paths.TEACHER_HELDOUT)},
        "report": {"outs": s(paths.REPORT, paths.ANSWERS, paths.SCALING_FIGURE, paths.SUMMARY,
                             paths.SUMMARY_DETAILS, paths.PLOTS_DIR / "scaling.json", paths.LOSS_PLOT),
                   "deps": s(paths.METRICS_DIR, paths.SAMPLES_DIR, paths.LOSS_PLOTS_DIR, paths.SWEEP)},
    }
    # The replicate stages are the study's own, over other sizes and seeds: the same files, named by the run
    expected["train_replicate"], expected["evaluate_replicate"] = expected["train"], expected["evaluate"]
    assert declared(run) == expected
    # A run's files are named by its student, size and seed: a replicate's sit beside the study's own, and
    # each student's models in a folder of its own, beside its untrained start
    assert run.name == "pruned10-n8-seed3" and paths.Run.parse(run.name) == run
    assert paths.student_dir(run) == Path("models/pruned10/n8-seed3") != paths.student_dir(paths.Run("pruned10", 8, 0))
    assert paths.student_dir(run).parent == init.parent != paths.student_dir(paths.Run("scratch1", 8, 3)).parent
    # Files that live inside a declared folder output
    prompts_dir = {paths.POOL_PROMPTS.parent, paths.HELDOUT_PROMPTS.parent, paths.PREPARE_STATS.parent}
    assert prompts_dir == {Path("data/prompts")}
    assert paths.TEACHER_HELDOUT.parent == paths.TEACHER_POOL.parent
    # The raw answers are the teacher stage's own files, so the filter stage can own the filtered ones
    assert paths.TEACHER_RAW.parent == paths.TEACHER_GENERATION.parent == paths.TEACHER_POOL.parent
    for p in (paths.student_metrics(run), paths.TEACHER_EVAL_METRICS, paths.TEACHER_METRICS):
        assert p.parent == paths.METRICS_DIR
    for p in (paths.student_details(run), paths.TEACHER_EVAL_DETAILS):
        assert p.parent.parent == paths.METRICS_DIR  # the report reads them through its `metrics` dependency
    for p in (paths.student_samples(run), paths.TEACHER_SAMPLES):
        assert p.parent == paths.SAMPLES_DIR
    for who in (run, None):  # the larger adherence set: the report reads it through `metrics` and `samples`
        assert paths.METRICS_DIR in paths.adherence_set_details(who).parents
        assert paths.SAMPLES_DIR in paths.adherence_set_samples(who).parents
    # Resume state is nobody's output (dvc repro deletes outputs before it reruns a stage) and git ignores it
    outs = {Path(o) for stage in expected.values() for o in stage["outs"]}
    for state in (paths.PROGRESS_DIR, paths.CHECKPOINTS_DIR):
        assert not any(state == o or o in state.parents or state in o.parents for o in outs), state
        assert subprocess.run(["git", "check-ignore", "-q", str(state / "x")], cwd=REPO).returncode == 0, state
    # Top-level plot definitions name the files the report and evaluate stages write
    plot_files = set()
    for entry in yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]:
        name, spec = (entry, None) if isinstance(entry, str) else next(iter(entry.items()))
        ys = (spec or {}).get("y")
        plot_files.update(ys.keys() if isinstance(ys, dict) else [name])
    assert str(paths.PLOTS_DIR / "scaling.json") in plot_files
    assert str(paths.LOSS_PLOT) in plot_files


def test_teacher_stage_depends_on_every_decoding_param_but_no_filter():
    from kdscale.config import FilterParams, TeacherParams

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    from kdscale.config import REQUEST_KEYS

    # how a served teacher's requests are sent shapes no answer
    decoding = {f"teacher.{name}" for name in TeacherParams.model_fields
                if name != "filters" and name not in REQUEST_KEYS}
    # teacher_topk.k: the top-k log-probs the teacher keeps at every token it generates
    assert set(stages["teacher"]["params"]) == decoding | {"device", "dtype", "teacher_topk.k"}
    filters = {f"teacher.filters.{name}" for name in FilterParams.model_fields}
    assert set(stages["teacher_filter"]["params"]) == filters


# ----------------------------------------------------------------------------- the reproduced pipeline

@pytest.fixture(scope="module")
def reproduced(tmp_path_factory, tiny_gpt2_dir):
    return reproduced_project(tmp_path_factory, tiny_gpt2_dir)


@pytest.mark.slow
def test_repro_writes_every_output(reproduced):
    project, _ = reproduced
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["scaling"]["sizes"] == SIZES

    pool, heldout = read_jsonl(project / paths.POOL_PROMPTS), read_jsonl(project / paths.HELDOUT_PROMPTS)
    assert len(pool) == params["data"]["pool_size"] and len(heldout) == params["data"]["heldout_size"]
    assert not {r["id"] for r in pool} & {r["id"] for r in heldout}
    for name in ("config.json", "model.safetensors"):
        assert (project / paths.TEACHER_DIR / name).is_file(), name

    answers = read_jsonl(project / paths.TEACHER_POOL)
    assert [r["id"] for r in answers] == [r["id"] for r in pool]
    assert [r["id"] for r in read_jsonl(project / paths.TEACHER_HELDOUT)] == [r["id"] for r in heldout]
    for r in answers:
        assert {"response", "finish_reason", "n_tokens"} <= r.keys() and r["finish_reason"] in {"eos", "stop", "length"}
    assert json.loads((project / paths.TEACHER_METRICS).read_text())["answers"] == len(pool) + len(heldout)

    subsets = {n: read_jsonl(project / paths.subset_file(n)) for n in SIZES}
    assert [len(subsets[n]) for n in SIZES] == SIZES
    assert subsets[8] == subsets[16][:8]  # nested

    for run in RUNS:
        assert (project / paths.student_init_dir(run.student) / "config.json").is_file()
        folder = project / paths.student_dir(run)
        for name in ("model.safetensors", "config.json", "tokenizer_config.json", "training_log.json",
                     "mlflow_run.json"):
            assert (folder / name).is_file(), folder / name
        assert (folder / "tokenizer.json").is_file() or (folder / "vocab.json").is_file()
        loss = json.loads((project / paths.loss_plot(run)).read_text())
        assert loss and all({"step", "loss"} <= row.keys() for row in loss)
        assert len(read_jsonl(project / paths.student_samples(run))) > 0

    for metrics in [paths.student_metrics(r) for r in RUNS] + [paths.TEACHER_EVAL_METRICS]:
        m = json.loads((project / metrics).read_text())
        assert list(m) == headline_keys(), metrics  # only the headline; the rest is in metrics/details/
        for key in ("perplexity", "pass_rate", "degenerate_share"):
            assert isinstance(m[key], (int, float)) and math.isfinite(m[key]), (metrics, key)
        assert m["perplexity"] > 1 and 0 <= m["pass_rate"] <= 1 and 0 <= m["degenerate_share"] <= 1
        d = json.loads((project / metrics.parent / "details" / metrics.name).read_text())
        assert d["tokens_per_sec"] > 0 and d["model_size_mb"] > 0
    assert len(read_jsonl(project / paths.TEACHER_SAMPLES)) > 0

    for name in ("report.md", "scaling.png", "summary.json"):
        assert (project / paths.REPORTS_DIR / name).stat().st_size > 0, name
    assert (project / paths.REPORTS_DIR / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for details in [paths.student_details(r) for r in RUNS] + [paths.TEACHER_EVAL_DETAILS]:
        m = json.loads((project / details).read_text())
        assert set(headline_keys()) < m.keys() and any(k.startswith("type_pass_rate.") for k in m), details
    # The larger adherence set: the teacher always answers it; no student here (eval.adherence_set_sizes is empty)
    assert json.loads((project / paths.adherence_set_details(None)).read_text())
    assert len(read_jsonl(project / paths.adherence_set_samples(None))) > 0
    assert not [p for p in (project / paths.adherence_set_details(None)).parent.iterdir() if p.stem != "teacher"]
    summary = json.loads((project / paths.REPORTS_DIR / "summary.json").read_text())
    details = json.loads((project / paths.SUMMARY_DETAILS).read_text())
    assert list(summary) == list(details["students"]) == [STUDENT]  # one entry per student of params.yaml
    assert summary[STUDENT]["best_student"] in SIZES
    assert set(details["students"][STUDENT]["combined_score"]) >= {f"student-n{n}" for n in SIZES}
    assert "combined_score_seed" in details["students"][STUDENT]
    rows = json.loads((project / paths.PLOTS_DIR / "scaling.json").read_text())
    assert [(r["student"], r["size"]) for r in rows] == [(STUDENT, n) for n in SIZES]
    assert all({"perplexity", "pass_rate", "tokens_per_sec"} <= r.keys() for r in rows)


@pytest.mark.slow
def test_repro_records_runs_and_models(reproduced):
    project, commit = reproduced
    client = mlflow_client(project / "mlflow.db")
    runs = all_runs(client)
    assert runs
    assert {r.info.status for r in runs} == {"FINISHED"}
    for r in runs:
        tags = r.data.tags
        assert tags["kdscale.dvc_exp"] == "workspace" and tags["kdscale.study"] == "workspace", tags
        assert tags["mlflow.source.git.commit"] == commit, tags
        assert re.fullmatch(r"[0-9a-f]{32}", tags["kdscale.data_md5"]), tags
        assert r.info.artifact_uri.startswith((project / "mlartifacts").as_uri()), r.info.artifact_uri

    stages = [r.data.tags["kdscale.stage"] for r in runs]
    assert stages.count("teacher") == 1 and stages.count("report") == 1 and stages.count("evaluate_teacher") == 1
    versions = {str(v.version): v for v in client.search_model_versions(f"name='{REGISTERED_NAME}'")}
    model = client.get_registered_model(REGISTERED_NAME)
    for trained in RUNS:
        n = trained.size
        students = [r for r in runs
                    if r.data.tags["kdscale.stage"] == "train" and r.data.tags.get("kdscale.size") == str(n)]
        assert len(students) == 1, f"one run for {trained.name}, got {len(students)}"
        run = students[0]
        assert run.info.run_name == trained.name
        assert (run.data.tags["kdscale.student"], run.data.tags["kdscale.seed"]) == (STUDENT, str(trained.seed))
        # The train stage opened it and wrote its id next to the checkpoint; the report's sync found it there
        assert json.loads((project / paths.student_dir(trained) / "mlflow_run.json").read_text())["run_id"] == \
            run.info.run_id
        assert "kdscale.synced" not in run.data.tags  # logged live, completed by sync
        evaluated = {f"eval/{k}" for k in ("perplexity", "pass_rate", "tokens_per_sec", "model_size_mb")}
        assert evaluated <= run.data.metrics.keys()
        assert len(client.get_metric_history(run.info.run_id, "Training/loss")) >= 1  # per-step training metrics
        assert run.data.params["train.learning_rate"] and run.data.params["size"] == str(n)
        version = model.aliases[trained.name]  # models:/kdscale-student@pruned1-n8-seed0
        assert versions[str(version)].run_id == run.info.run_id
        assert versions[str(version)].tags.get("kdscale.size") == str(n)
        assert versions[str(version)].tags.get("kdscale.student") == STUDENT
    assert len(versions) == len(SIZES)


@pytest.mark.slow
def test_second_repro_has_nothing_to_do(reproduced, tmp_path):
    project = copy_project(reproduced[0], tmp_path / "project", fresh_store=False)
    assert_up_to_date(project)
    assert sh(["git", "status", "--porcelain"], project).stdout == ""


@pytest.mark.slow
def test_adding_a_size_runs_only_that_size(reproduced, tmp_path):
    project = copy_project(reproduced[0], tmp_path / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["scaling"]["sizes"] = [8, 16, 12]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    twelve = run_of(12)
    new = {"subsets@12", stage("train", twelve), stage("evaluate", twelve), "report"}
    status = sh(["dvc", "status"], project).stdout
    assert stages_changed(status) == new, status
    repro = sh(["dvc", "repro"], project)
    assert stages_run(repro.stdout) == new, repro.stdout
    for run in RUNS:
        assert f"Stage '{stage('train', run)}' didn't change, skipping" in repro.stdout

    assert read_jsonl(project / paths.subset_file(12)) == read_jsonl(project / paths.subset_file(16))[:12]
    assert json.loads((project / paths.student_metrics(twelve)).read_text())["perplexity"] > 1
    assert [r["size"] for r in json.loads((project / paths.PLOTS_DIR / "scaling.json").read_text())] == [8, 12, 16]
    client = mlflow_client(project / "mlflow.db")
    # a fresh store: the report's last step (kdscale sync) leaves the whole view, each run once
    stages = sorted(r.data.tags["kdscale.stage"] for r in all_runs(client))
    assert stages == sorted(["teacher", "teacher_filter", "evaluate_teacher", "report"] + ["train"] * 3), stages
    found = [r for r in all_runs(client) if r.data.tags.get("kdscale.size") == "12"]
    assert len(found) == 1 and "eval/perplexity" in found[0].data.metrics
    assert twelve.name in client.get_registered_model(REGISTERED_NAME).aliases
    assert_up_to_date(project)


@pytest.mark.slow
def test_adding_a_student_runs_only_that_student(reproduced, tmp_path):
    """A second student in params.yaml `students`: its own init, train and evaluate stages at every size, and the
    report (which reads every student); the first student's models and evaluations stay as they are."""
    project = copy_project(reproduced[0], tmp_path / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["students"]["scratch1"] = {"model": "scratch", "num_layers": 1, "hidden_size": 32, "num_heads": 2,
                                      "intermediate_size": 64}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    kept = {p: (project / p).read_bytes() for run in RUNS
            for p in (paths.student_dir(run) / "model.safetensors", paths.student_metrics(run))}

    added = [run_of(n, student="scratch1") for n in SIZES]
    new = {"student_init@scratch1", "report"} | {stage(family, run) for family in ("train", "evaluate") for run in added}
    status = sh(["dvc", "status"], project).stdout
    assert stages_changed(status) == new, status
    repro = sh(["dvc", "repro"], project)
    assert stages_run(repro.stdout) == new, repro.stdout
    assert f"Stage 'student_init@{STUDENT}' didn't change, skipping" in repro.stdout
    for run in RUNS:
        assert f"Stage '{stage('train', run)}' didn't change, skipping" in repro.stdout
    assert {p: (project / p).read_bytes() for p in kept} == kept  # nothing of pruned1 retrained or re-evaluated

    for run in added:
        assert (project / paths.student_dir(run) / "model.safetensors").is_file()
        assert json.loads((project / paths.student_metrics(run)).read_text())["perplexity"] > 1
    assert (project / paths.student_init_dir("scratch1") / "config.json").is_file()
    summary = json.loads((project / paths.SUMMARY).read_text())
    assert list(summary) == [STUDENT, "scratch1"] and summary["scratch1"]["best_student"] in SIZES
    report = (project / paths.REPORT).read_text()
    assert f"## Student {STUDENT}" in report and "## Student scratch1" in report, report
    rows = json.loads((project / paths.PLOTS_DIR / "scaling.json").read_text())
    assert sorted((r["student"], r["size"]) for r in rows) == sorted((s, n) for s in (STUDENT, "scratch1") for n in SIZES)
    client = mlflow_client(project / "mlflow.db")  # a fresh store: the report's sync made every run, once each
    trained = {r.info.run_name for r in all_runs(client) if r.data.tags["kdscale.stage"] == "train"}
    assert trained == {run.name for run in RUNS + added}
    assert {run.name for run in added} <= set(client.get_registered_model(REGISTERED_NAME).aliases)
    assert_up_to_date(project)


@pytest.mark.slow
def test_replicate_seeds_run_only_their_stages_and_reach_the_report(reproduced, tmp_path):
    project = copy_project(reproduced[0], tmp_path / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["scaling"].update(replicate_sizes=[16], replicate_seeds=[1])
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    replicate = run_of(16, seed=1)
    new = {stage("train_replicate", replicate), stage("evaluate_replicate", replicate), "report"}
    repro = sh(["dvc", "repro"], project)
    assert stages_run(repro.stdout) == new, repro.stdout
    # Seed 1 trains on the same 16 answers in its own order, to a model of its own
    assert (project / paths.student_dir(replicate) / "model.safetensors").read_bytes() != \
        (project / paths.student_dir(run_of(16)) / "model.safetensors").read_bytes()
    for path in (paths.student_metrics(replicate), paths.student_details(replicate), paths.student_samples(replicate),
                 paths.loss_plot(replicate), paths.student_dir(replicate) / "model.safetensors"):
        assert (project / path).is_file(), path
    summary = json.loads((project / paths.SUMMARY_DETAILS).read_text())["students"][STUDENT]
    assert summary["seeds"] == {"8": 1, "16": 2}
    assert summary["diminishing_returns"]["steps"]["perplexity"][0]["seeds"] == [1, 2]
    report = (project / paths.REPORTS_DIR / "report.md").read_text()
    assert "| 16 | 2 |" in report and "## The answer" in report and "The rule: a step in data pays when" in report
    client = mlflow_client(project / "mlflow.db")
    runs = {r.info.run_name: r for r in all_runs(client)}
    assert runs[replicate.name].data.tags["kdscale.seed"] == "1"
    assert runs[run_of(16).name].data.tags["kdscale.seed"] == "0"
    assert "eval/perplexity" in runs[replicate.name].data.metrics  # the report's sync put them there
    assert replicate.name in client.get_registered_model(REGISTERED_NAME).aliases
    assert_up_to_date(project)
    # kdscale sync rebuilds the replicate's run and alias from the checkout alone
    for db in project.glob("mlflow.db*"):
        db.unlink()
    shutil.rmtree(project / "mlartifacts", ignore_errors=True)
    synced = sh(["kdscale", "sync"], project).stdout
    assert f"sync: {replicate.name}: run" in synced
    client = mlflow_client(project / "mlflow.db")
    aliases = client.get_registered_model(REGISTERED_NAME).aliases
    assert {r.name for r in RUNS + [replicate]} <= set(aliases), synced  # every model the checkout holds


@pytest.mark.slow
def test_changing_a_filter_refilters_without_regenerating(reproduced, tmp_path):
    project = copy_project(reproduced[0], tmp_path / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["teacher"]["filters"]["repetition_max_fraction"] = 0.9
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    status = sh(["dvc", "status"], project).stdout
    assert stages_changed(status) == {"teacher_filter"}, status
    repro = sh(["dvc", "repro"], project)
    assert "teacher_filter" in stages_run(repro.stdout), repro.stdout
    assert "Stage 'teacher' didn't change, skipping" in repro.stdout
    assert stages_run(repro.stdout) <= {"teacher_filter", "report", "evaluate_teacher"} | {
        f"subsets@{n}" for n in SIZES} | {stage(family, run) for family in ("train", "evaluate") for run in RUNS}
    # The refiltered answers are the same here, so nothing downstream reran, report and its sync included:
    # `kdscale sync` (as `make run` does after `dvc repro`) records the new filter run.
    sh(["kdscale", "sync"], project)
    stages = {r.data.tags["kdscale.stage"] for r in all_runs(mlflow_client(project / "mlflow.db"))}
    assert "teacher_filter" in stages
    filtered = [r for r in all_runs(mlflow_client(project / "mlflow.db")) if r.data.tags["kdscale.stage"] == "teacher_filter"]
    assert [r.data.params["teacher.filters.repetition_max_fraction"] for r in filtered] == ["0.9"]
