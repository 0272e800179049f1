"""The researcher's workflow around the pipeline (docs/design.md §1 and §7).

Sweeps through the DVC queue with two workers writing to one MLflow store, a push / fresh clone /
pull round trip, the MLflow UI on 127.0.0.1, `dvc plots show`, MLFLOW_TRACKING_URI, and the default
remote. They share test_pipeline's reproduced tiny project and change only copies of it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO, project_env
from test_pipeline import (REGISTERED_NAME, RUNS, SIZES, all_runs, assert_up_to_date, commit_all, copy_project,
                           mlflow_client, reproduced_project, sh, stage, stages_run)
from kdscale import paths

QUEUE_TIMEOUT_S = 1500  # two tiny experiments take 1-4 minutes on 2 shared cores


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory, tiny_gpt2_dir):
    return reproduced_project(tmp_path_factory, tiny_gpt2_dir)


# ----------------------------------------------------------------------------- sweeps through the queue

def queue_states(project: Path) -> dict[str, str]:
    """{experiment name: Queued | Running | Success | Failed | ...} from `dvc queue status`."""
    out = sh(["dvc", "queue", "status"], project).stdout
    states = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and re.fullmatch(r"[0-9a-f]{7,}", parts[0]):
            states[parts[1]] = parts[-1]
    return states


def show_experiments(project: Path) -> dict[str, dict]:
    """{experiment name: its data} from `dvc exp show --json`."""
    found = {}
    for baseline in json.loads(sh(["dvc", "exp", "show", "--json"], project).stdout):
        for exp in baseline.get("experiments") or []:
            for rev in exp.get("revs") or []:
                found[rev.get("name") or exp.get("name")] = rev
    return found


def assert_exp_show_fits_a_terminal(project: Path) -> None:
    """Only the headline numbers are DVC metrics, so two experiments compare in one screen's width."""
    csv = sh(["dvc", "exp", "show", "--only-changed", "--csv"], project).stdout
    header = csv.splitlines()[0].split(",")
    table = sh(["dvc", "exp", "show", "--only-changed", "--no-pager"], project, env={"COLUMNS": "2000"}).stdout
    print(f"$ dvc exp show --only-changed\n{table}\n$ dvc exp show --only-changed --csv\n{csv}")
    assert len(header) <= 40, header
    assert "train.learning_rate" in header
    assert not [c for c in header if "type_pass_rate" in c or "latency" in c or c.endswith(("threads", "cpu"))]
    assert any(c.endswith("perplexity_ci_high") for c in header)
    # the combined scores are normalised within a study: in its details, not across experiments
    assert not any("combined_score" in c or "tokens_per_sec" in c for c in header)


@pytest.mark.slow
def test_queued_experiments_with_two_workers(reproduced, tmp_path):
    project = copy_project(reproduced[0], tmp_path / "project")  # a fresh MLflow store, at the project root
    baseline = sh(["git", "rev-parse", "HEAD"], project).stdout.strip()
    assert sh(["git", "status", "--porcelain"], project).stdout == ""
    rates = {"lr-high": "0.003", "lr-low": "0.0003"}
    for name, lr in rates.items():
        sh(["dvc", "exp", "run", "--queue", "-n", name, "-S", f"train.learning_rate={lr}"], project)
    assert set(queue_states(project)) == set(rates)

    sh(["dvc", "queue", "start", "-j", "2"], project)
    deadline = time.monotonic() + QUEUE_TIMEOUT_S
    states = {}
    try:
        while time.monotonic() < deadline:
            states = queue_states(project)
            if all(states.get(n) in {"Success", "Failed"} for n in rates):
                break
            time.sleep(5)
        else:
            pytest.fail(f"queued experiments did not finish in {QUEUE_TIMEOUT_S}s: {states}")
    finally:
        if not all(states.get(n) in {"Success", "Failed"} for n in rates):
            sh(["dvc", "queue", "kill", *rates], project, check=False)
            sh(["dvc", "queue", "stop", "--kill"], project, check=False)
    logs = {n: sh(["dvc", "queue", "logs", n], project, check=False) for n in rates}
    for name, log in logs.items():
        text = log.stdout + log.stderr
        assert states[name] == "Success", f"{name}: {states[name]}\n{text[-4000:]}"
        assert "database is locked" not in text, text
        # the stages that depend on the learning rate ran; what it does not touch came from the cache
        ran = set(re.findall(r"Running stage '([^']+)'", text))
        assert ran == {stage(family, run) for family in ("train", "evaluate") for run in RUNS} | {"report"}, ran

    experiments = show_experiments(project)
    assert set(rates) <= set(experiments)
    for name, lr in rates.items():
        data = experiments[name]["data"]
        assert data["params"]["params.yaml"]["data"]["train"]["learning_rate"] == float(lr)
        for run in RUNS:
            student = data["metrics"][str(paths.student_metrics(run))]["data"]
            assert {"perplexity", "pass_rate", "degenerate_share"} <= student.keys()
    table = sh(["dvc", "exp", "show", "--no-pager", "--drop", ".*", "--keep",
                r"(Experiment|State|train\.learning_rate|.*-n\d+-seed\d+\.json:(perplexity|pass_rate|degenerate_share))$"],
               project, env={"COLUMNS": "300"})
    print(table.stdout)
    assert_exp_show_fits_a_terminal(project)

    # Both workers wrote to the store at the project root (DVC_ROOT), not in their temporary copies,
    # and into the pipeline's experiment, not one named after a temporary copy's folder
    client = mlflow_client(project / "mlflow.db")
    assert {e.name for e in client.search_experiments()} - {"Default"} == {"kdscale"}  # MLflow's own Default
    runs = all_runs(client)
    assert {r.info.status for r in runs} == {"FINISHED"}, [(r.info.run_name, r.info.status) for r in runs]
    assert {r.data.tags["kdscale.dvc_exp"] for r in runs} == set(rates)
    # each experiment's own runs; the teacher's, which they share, once (the first report's sync made them)
    shared = sorted(r.data.tags["kdscale.stage"] for r in runs if r.data.tags["kdscale.stage"] not in {"train", "report"})
    assert shared == ["evaluate_teacher", "teacher", "teacher_filter"], shared
    for name in rates:
        mine = [r for r in runs if r.data.tags["kdscale.dvc_exp"] == name and r.data.tags["kdscale.stage"] in {"train", "report"}]
        assert sorted(r.data.tags["kdscale.stage"] for r in mine) == ["report"] + ["train"] * len(SIZES)
        assert sorted(int(r.data.tags["kdscale.size"]) for r in mine if "kdscale.size" in r.data.tags) == SIZES
        for r in mine:
            assert r.data.tags["mlflow.source.git.commit"] == baseline
            if r.data.tags["kdscale.stage"] == "train":  # opened by train, completed by the report's sync
                assert float(r.data.params["train.learning_rate"]) == float(rates[name])
                assert "eval/perplexity" in r.data.metrics
            assert r.info.artifact_uri.startswith((project / "mlartifacts").as_uri()), r.info.artifact_uri
    assert not list((project / ".dvc" / "tmp").rglob("mlflow.db"))
    client = mlflow_client(project / "mlflow.db")
    versions = client.search_model_versions(f"name='{REGISTERED_NAME}'")
    trained = [r.info.run_id for r in runs if r.data.tags["kdscale.stage"] == "train"]
    assert sorted(v.run_id for v in versions) == sorted(trained)  # every student registered, once


# ----------------------------------------------------------------------------- push, fresh clone, pull

@pytest.mark.slow
def test_push_clone_pull_has_nothing_to_do(reproduced, tmp_path):
    project = copy_project(reproduced[0], tmp_path / "project")
    remote = Path(sh(["dvc", "config", "remote.local.url"], project).stdout.strip())
    assert remote.is_absolute() and remote != Path.home() / ".cache/kdscale/dvc-remote"  # make_project's own
    sh(["dvc", "push", "--run-cache"], project)
    assert (remote / "runs").is_dir(), "the run-cache went to the remote"
    commit_all(project, "pushed")

    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    sh(["dvc", "remote", "add", "-f", "-d", "local", str(remote)], clone)
    assert not (clone / "models" / "teacher").exists()
    sh(["dvc", "pull"], clone)
    assert_up_to_date(clone)
    assert sh(["git", "status", "--porcelain"], clone).stdout.strip() == ""


@pytest.mark.slow
def test_sweeps_on_two_machines_meet_in_one_view(reproduced, tmp_path):
    """Two clones of one bare Git repository (two machines) each run an experiment and `dvc exp push` it:
    Git refs to the team's repository, outputs to one DVC remote, runs to one MLflow store (the team's
    server). A third clone, with both machines gone, `dvc exp pull`s both: `kdscale compare` shows them
    side by side and `kdscale sync` finds their runs complete, and nothing names a machine's folder."""
    seed = copy_project(reproduced[0], tmp_path / "seed")
    origin, remote, store = tmp_path / "origin.git", tmp_path / "dvc-remote", tmp_path / "team" / "mlflow.db"
    store.parent.mkdir()
    team = {"MLFLOW_TRACKING_URI": f"sqlite:///{store}"}
    sh(["git", "init", "-q", "--bare", str(origin)], tmp_path)
    sh(["dvc", "remote", "add", "-f", "-d", "local", str(remote)], seed)
    commit_all(seed, "the team's remote")
    sh(["git", "remote", "add", "origin", str(origin)], seed)
    sh(["git", "push", "-q", "origin", "HEAD:main"], seed)
    sh(["dvc", "push"], seed)

    machines = {"lr-a": "0.003", "lr-b": "0.0003"}
    for name, lr in machines.items():
        machine = tmp_path / f"machine-{name}"
        sh(["git", "clone", "-q", "-b", "main", str(origin), str(machine)], tmp_path)
        sh(["dvc", "pull"], machine)
        sh(["dvc", "exp", "run", "-n", name, "-S", f"train.learning_rate={lr}"], machine, env=team, timeout=1500)
        sh(["dvc", "exp", "push", "origin", name], machine)
    for name in machines:
        shutil.rmtree(tmp_path / f"machine-{name}")  # gone: nothing below may need their folders

    here = tmp_path / "analyst"
    sh(["git", "clone", "-q", "-b", "main", str(origin), str(here)], tmp_path)
    for name in machines:
        sh(["dvc", "exp", "pull", "origin", name], here)
    experiments = show_experiments(here)
    assert set(machines) <= set(experiments)
    for name, lr in machines.items():
        data = experiments[name]["data"]
        assert data["params"]["params.yaml"]["data"]["train"]["learning_rate"] == float(lr)
        assert {"perplexity", "pass_rate"} <= data["metrics"][str(paths.student_metrics(RUNS[-1]))]["data"].keys()
    sh(["kdscale", "compare"], here, env=team)
    compare = (here / "reports" / "compare.md").read_text()
    assert "train.learning_rate=0.003" in compare and "train.learning_rate=0.0003" in compare, compare

    runs = all_runs(mlflow_client(store))
    trained = [r for r in runs if r.data.tags["kdscale.stage"] == "train"]
    assert sorted(r.data.tags["kdscale.dvc_exp"] for r in trained) == sorted([*machines] * len(SIZES))
    assert all("eval/perplexity" in r.data.metrics for r in trained)  # each machine's report synced its runs
    assert {r.info.status for r in runs} == {"FINISHED"}
    folders = [str(tmp_path / f"machine-{name}") for name in machines]
    for r in runs:  # no run points into a machine's folder: params, tags, artifacts
        values = [*r.data.params.values(), *r.data.tags.values(), r.info.artifact_uri]
        assert not [v for v in values for f in folders if f in v], r.info.run_name
    # Checked out here, an experiment's outputs are the ones its machine logged: sync finds every run by
    # the md5 of what it describes and makes none (it only moves the aliases to this checkout's models)
    sh(["dvc", "exp", "apply", "lr-a"], here)
    sh(["dvc", "pull"], here)
    sync = sh(["kdscale", "sync"], here, env=team).stdout
    added = [line.split(": ", 2)[2] for line in sync.splitlines() if line.startswith("sync: ") and line.count(": ") >= 2]
    assert len(added) >= len(SIZES) + 4, sync  # teacher, filter, teacher eval, students, report
    assert not [a for a in added if a == "run" or "model" in a], sync
    assert len(all_runs(mlflow_client(store))) == len(runs)


def test_default_remote_expands_home(tmp_path):
    """The committed remote (~/.cache/kdscale/dvc-remote) works on a fresh clone: DVC expands ~ (here a fake HOME)."""
    config = (REPO / ".dvc" / "config").read_text()
    assert "~/.cache/kdscale/dvc-remote" in config
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(REPO), str(clone)], tmp_path)
    (clone / ".dvc" / "config").write_text(config)  # the working copy's, in case it is not committed yet
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home)}
    listed = sh(["dvc", "remote", "list"], clone, env=env).stdout
    assert str(home / ".cache/kdscale/dvc-remote") in "".join(listed.split()), listed  # a narrow table wraps
    data = clone / "hello.txt"
    data.write_text("hello\n")
    sh(["dvc", "add", "hello.txt"], clone, env=env)
    sh(["dvc", "push", "hello.txt.dvc"], clone, env=env)
    assert list((home / ".cache/kdscale/dvc-remote/files/md5").rglob("*")), "pushed under HOME"
    data.unlink()
    shutil.rmtree(clone / ".dvc" / "cache")
    sh(["dvc", "pull", "hello.txt.dvc"], clone, env=env)
    assert data.read_text() == "hello\n"


# ----------------------------------------------------------------------------- the MLflow UI

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def listening_addresses(port: int) -> set[str]:
    """Local addresses of LISTEN sockets on a TCP port, from /proc/net/tcp and tcp6 (Linux)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hexport = local.split(":")
            if state == "0A" and int(hexport, 16) == port:  # 0A: LISTEN
                if len(address) == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1]))
                else:
                    raw = b"".join(bytes.fromhex(address[i:i + 8])[::-1] for i in range(0, 32, 8))
                    found.add(socket.inet_ntop(socket.AF_INET6, raw))
    return found


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_ui_serves_on_localhost_and_stops_cleanly(reproduced, tmp_path):
    from kdscale.tracking import ui

    project = copy_project(reproduced[0], tmp_path / "project", fresh_store=False)
    port = free_port()
    assert ui.command("127.0.0.1", port)[ui.command("127.0.0.1", port).index("--host") + 1] == "127.0.0.1"
    log = open(tmp_path / "ui.log", "w")
    proc = subprocess.Popen(["kdscale", "ui", "--port", str(port)], cwd=project, env=project_env(project),
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    children: set[int] = set()
    try:
        deadline, status = time.monotonic() + 120, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, _ = get(f"http://127.0.0.1:{port}/", timeout=5)
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(1)
        assert status == 200, f"UI did not answer (exit {proc.poll()}):\n{(tmp_path / 'ui.log').read_text()[-3000:]}"
        status, body = get(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=10")
        assert status == 200
        (exp,) = [e for e in json.loads(body)["experiments"] if e["name"] == "kdscale"]
        # it opens on the training runs (not MLflow 3's GenAI overview), and says what each run is
        tags = {t["key"]: t["value"] for t in exp["tags"]}
        assert tags["mlflow.experimentKind"] == "custom_model_development"
        assert "**STUDENT-nN-seedS**" in tags["mlflow.note.content"] and "**report**" in tags["mlflow.note.content"]
        url = f"http://127.0.0.1:{port}/#/experiments/{exp['experiment_id']}/runs"
        assert f"ui: the training runs at {url}" in (tmp_path / "ui.log").read_text()

        # Bound to the loopback interface only: the UI has no authentication
        addresses = listening_addresses(port)
        if addresses:  # Linux
            assert addresses <= {"127.0.0.1"}, addresses
        children = descendants(proc.pid)

        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        time.sleep(1)
        assert not [pid for pid in children if alive(pid)], "the UI left processes behind"
        with pytest.raises(OSError):
            get(f"http://127.0.0.1:{port}/", timeout=5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        log.close()


# ----------------------------------------------------------------------------- plots

@pytest.mark.slow
def test_dvc_plots_show_renders_scaling_curves(reproduced, tmp_path):
    project = copy_project(reproduced[0], tmp_path / "project")
    out = tmp_path / "plots"
    result = sh(["dvc", "plots", "show", "--json", "-o", str(out)], project)
    plots = json.loads(result.stdout)["data"]
    assert "errors" not in json.loads(result.stdout), result.stdout
    for name, y in (("perplexity", "perplexity"), ("pass_rate", "pass_rate"), ("tokens_per_sec", "tokens_per_sec")):
        (plot,) = plots[name]
        assert plot["type"] == "vega"
        values = plot["content"]["data"]["values"]
        assert sorted({v["size"] for v in values}) == SIZES and all(y in v for v in values), name
    # Each curve once: the stage outputs are plotted only through dvc.yaml's top-level definitions
    assert set(plots) == {"perplexity", "pass_rate", "tokens_per_sec", "loss", "reports/scaling.png"}
    (speed,) = plots["tokens_per_sec"]  # timings of one architecture are noise: points, not a trend line
    assert speed["content"]["mark"]["type"] == "point"
    (perplexity,) = plots["perplexity"]  # log axes, size 0 included (symlog)
    assert perplexity["content"]["encoding"]["x"]["scale"]["type"] == "symlog"
    assert perplexity["content"]["encoding"]["y"]["scale"]["type"] == "log"
    (loss,) = plots["loss"]  # one chart, one line per size, labelled by size
    assert loss["content"]["encoding"]["x"]["field"] == "step"
    assert loss["content"]["encoding"]["color"]["field"] == "samples"
    values = loss["content"]["data"]["values"]
    assert sorted({v["samples"] for v in values}) == SIZES and all("loss" in v for v in values)
    (image,) = plots["reports/scaling.png"]
    assert image["type"] == "image" and Path(image["url"]).is_file()

    html = tmp_path / "html"
    sh(["dvc", "plots", "show", "-o", str(html)], project)
    assert "perplexity" in (html / "index.html").read_text()
    assert sh(["git", "status", "--porcelain"], project).stdout == ""


# ----------------------------------------------------------------------------- MLFLOW_TRACKING_URI

@pytest.mark.slow
def test_tracking_uri_from_environment(reproduced, tmp_path):
    project = copy_project(reproduced[0], tmp_path / "project", fresh_store=False)
    before = len(all_runs(mlflow_client(project / "mlflow.db")))
    elsewhere = tmp_path / "elsewhere" / "store.db"
    elsewhere.parent.mkdir()
    result = sh(["dvc", "repro", "--single-item", "--force", "report"], project,
                env={"MLFLOW_TRACKING_URI": f"sqlite:///{elsewhere}"})
    assert stages_run(result.stdout) == {"report"}
    # the report's sync filled that store, and only that one
    runs = all_runs(mlflow_client(elsewhere))
    assert sorted(r.data.tags["kdscale.stage"] for r in runs) == sorted(
        ["teacher", "teacher_filter", "evaluate_teacher", "report"] + ["train"] * len(SIZES))
    assert {r.info.status for r in runs} == {"FINISHED"}
    for r in runs:
        assert r.info.artifact_uri.startswith((elsewhere.parent / "mlartifacts").as_uri()), r.info.artifact_uri
    assert len(all_runs(mlflow_client(project / "mlflow.db"))) == before
