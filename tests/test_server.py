"""A team's tracking server: a real `mlflow server` on 127.0.0.1 (a free port, its own backend store and
artifact root, stopped at the end) takes `kdscale sync`, the model registry and two `dvc queue`
workers at once, as MLFLOW_TRACKING_URI=http://127.0.0.1:PORT.

The backend is a temporary SQLite file, with two report-only experiments; where a local PostgreSQL
(initdb, pg_ctl) and the psycopg driver are available, the study also runs on PostgreSQL with an
experiment that trains every student through the server, else that test is skipped with the reason.
(Training stages logging live to the default store run in test_workflow's queue test.)
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from test_pipeline import RUNS, SIZES, all_runs, copy_project, reproduced_project, sh

NAME = "kdscale-student"
QUEUE_TIMEOUT_S = 1200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory, tiny_gpt2_dir):
    return reproduced_project(tmp_path_factory, tiny_gpt2_dir)


def start_server(backend: str, artifacts: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
           "--artifacts-destination", str(artifacts), "--serve-artifacts",
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job runner: see kdscale.tracking.ui
    proc = subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(1)
    stop_server(proc)
    raise AssertionError(f"mlflow server did not start:\n{log.read_text()[-3000:]}")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_for_queue(project: Path, names: list[str]) -> dict[str, str]:
    from test_workflow import queue_states

    deadline, states = time.monotonic() + QUEUE_TIMEOUT_S, {}
    try:
        while time.monotonic() < deadline:
            states = queue_states(project)
            if all(states.get(n) in {"Success", "Failed"} for n in names):
                return states
            time.sleep(5)
        pytest.fail(f"queued experiments did not finish in {QUEUE_TIMEOUT_S}s: {states}")
    finally:
        if not all(states.get(n) in {"Success", "Failed"} for n in names):
            sh(["dvc", "queue", "kill", *names], project, check=False)
            sh(["dvc", "queue", "stop", "--kill"], project, check=False)


# Two queue workers at once. The training experiment reruns train, evaluate and report for every size
# (minutes); the report-only ones take seconds, so the SQLite server, which runs in CI, uses two of them.
TRAINING_AND_REPORT = {"lr-high": "train.learning_rate=0.003", "threshold": "report.doubling_gain_threshold=0.1"}
TWO_REPORTS = {"threshold": "report.doubling_gain_threshold=0.1",
               "threshold-low": "report.doubling_gain_threshold=0.01"}


def study_through_server(project: Path, url: str, experiments: dict[str, str]) -> None:
    """sync, then two queued experiments with two workers, all against the server at `url`."""
    from mlflow.tracking import MlflowClient

    env = {"MLFLOW_TRACKING_URI": url, "OMP_NUM_THREADS": "1"}  # one thread per queue worker
    sh(["kdscale", "sync"], project, env=env)  # the reproduced outputs: every run and the registry
    client = MlflowClient(url)
    synced = all_runs(client)
    assert sorted(r.data.tags["kdscale.stage"] for r in synced) == sorted(
        ["teacher", "teacher_filter", "evaluate_teacher", "report"] + ["train"] * len(SIZES))

    for name, setting in experiments.items():
        sh(["dvc", "exp", "run", "--queue", "-n", name, "-S", setting], project, env=env)
    sh(["dvc", "queue", "start", "-j", "2"], project, env=env)
    states = wait_for_queue(project, list(experiments))
    for name in experiments:
        log = sh(["dvc", "queue", "logs", name], project, check=False)
        assert states[name] == "Success", f"{name}: {states[name]}\n{(log.stdout + log.stderr)[-4000:]}"

    runs = all_runs(client)
    assert {r.info.status for r in runs} == {"FINISHED"}, [(r.info.run_name, r.info.status) for r in runs]
    by_exp = {}
    for r in runs:
        by_exp.setdefault(r.data.tags["kdscale.dvc_exp"], []).append(r.data.tags["kdscale.stage"])
    retrained = [name for name, setting in experiments.items() if setting.startswith("train.")]
    for name in experiments:  # a train param reruns every student (evaluate reopens the train run); report always
        assert sorted(by_exp[name]) == ["report"] + ["train"] * len(SIZES) * (name in retrained), by_exp
    for r in runs:  # artifacts went through the server, into its artifact root
        assert r.info.artifact_uri.startswith("mlflow-artifacts:"), r.info.artifact_uri
    versions = client.search_model_versions(f"name = '{NAME}'")
    assert len(versions) == (1 + len(retrained)) * len(SIZES)  # the synced students, and those trained in the queue
    script = (f"import mlflow; print(mlflow.pyfunc.load_model('models:/{NAME}@{RUNS[0].name}')"
              f".predict(['Say hi.'], params={{'max_new_tokens': 2}}))")
    assert sh([sys.executable, "-c", script], project, env=env).stdout.startswith("[")
    sh(["kdscale", "sync"], project, env=env)  # the workspace was synced already: nothing more
    assert len(all_runs(client)) == len(runs)


@pytest.mark.slow
def test_study_through_a_tracking_server_on_sqlite(reproduced, tmp_path):
    project = copy_project(reproduced[0], tmp_path / "project")
    server, url = start_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts", tmp_path / "server.log")
    try:
        study_through_server(project, url, TWO_REPORTS)
        assert not (project / "mlflow.db").exists()  # nothing went to the local store
        assert list((tmp_path / "artifacts").rglob("MLmodel"))
    finally:
        stop_server(server)


def pg_tool(name: str) -> str | None:
    """A PostgreSQL program: on PATH, or in Debian's versioned folder (the newest version)."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    return shutil.which(name) or (str(found[-1]) if found else None)


def postgres_missing() -> str | None:
    if not (pg_tool("initdb") and pg_tool("pg_ctl")):
        return "no local PostgreSQL (initdb, pg_ctl not found; Debian: apt-get install postgresql)"
    try:
        import psycopg  # noqa: F401  (SQLAlchemy 2.1's default driver for postgresql:// URIs)
    except ImportError:
        return "the psycopg driver is not installed (pip install 'psycopg[binary]')"
    if os.geteuid() == 0 and not shutil.which("runuser"):
        return "PostgreSQL refuses to run as root and runuser is missing"
    return None


@pytest.mark.slow
@pytest.mark.skipif(postgres_missing() is not None, reason=postgres_missing() or "")
def test_study_through_a_tracking_server_on_postgresql(reproduced, tmp_path):
    """The team setup of docs/scaling-out.md, on one machine: a PostgreSQL cluster in tmp_path as the backend."""
    # As root, PostgreSQL runs as the postgres user, which cannot enter pytest's private tmp_path.
    cluster = Path(tempfile.mkdtemp(prefix="kdscale-pg-"))
    data, port = cluster / "data", free_port()
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        os.chmod(cluster, 0o777)
    subprocess.run([*as_user, pg_tool("initdb"), "-A", "trust", "-U", "mlflow", "-D", str(data)], check=True,
                   capture_output=True)
    subprocess.run([*as_user, pg_tool("pg_ctl"), "-D", str(data), "-o", f"-p {port} -k {cluster} -h 127.0.0.1",
                    "-l", str(cluster / "pg.log"), "-w", "start"], check=True, capture_output=True)
    try:
        subprocess.run([pg_tool("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", "mlflow"], check=True)
        project = copy_project(reproduced[0], tmp_path / "project")
        server, url = start_server(f"postgresql://mlflow@127.0.0.1:{port}/mlflow", tmp_path / "artifacts",
                                   tmp_path / "server.log")
        try:
            study_through_server(project, url, TRAINING_AND_REPORT)
        finally:
            stop_server(server)
    finally:
        subprocess.run([*as_user, pg_tool("pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(cluster, ignore_errors=True)
