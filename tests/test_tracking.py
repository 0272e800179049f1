"""Tracking: where the store is, runs reopened by id, concurrent writers, tags, the student pyfunc.

Every test gets its own store under tmp_path (DVC_ROOT), so the repository's mlflow.db is never touched.
"""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from kdscale import paths, tracking

SRC = Path(__file__).resolve().parents[1] / "src"
RUN = paths.Run("pruned10", 5, 0)  # a trained student: pruned10-n5-seed0
ENV_KEYS = ["MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID",
            "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV", "KDSCALE_STUDY"]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A fresh root for the store; no MLflow state leaks in from the environment or out to the next test."""
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.setattr(tracking, "_setup_uri", None)
    yield tmp_path
    while mlflow.active_run():
        mlflow.end_run()


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_tracking_uri_from_dvc_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_ROOT", "repo")  # relative: still an absolute uri
    root = (tmp_path / "repo").resolve()
    uri = tracking.tracking_uri()
    assert uri.startswith(f"sqlite:///{root}/mlflow.db") and uri.startswith("sqlite:////")
    assert tracking.project_root() == root
    assert tracking.artifact_location() == (root / "mlartifacts").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.tracking_uri() == "http://127.0.0.1:5000"
    assert tracking.artifact_location() is None  # a server decides for itself


def test_project_root_from_git_then_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv("DVC_ROOT")
    repo, plain = tmp_path / "repo", tmp_path / "plain"
    (repo / "sub").mkdir(parents=True)
    plain.mkdir()
    git(repo, "init", "-q")
    monkeypatch.chdir(repo / "sub")
    assert tracking.project_root() == repo.resolve()
    monkeypatch.chdir(plain)
    assert tracking.project_root() == plain.resolve()


def test_experiment_artifacts_absolute_under_root(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a cwd-relative location would land here
    exp_id = tracking.setup()
    assert tracking.setup() == exp_id  # idempotent
    exp = MlflowClient().get_experiment(exp_id)
    assert exp.name == "kdscale"
    # so MLflow 3's UI opens the experiment on its training runs, not on the GenAI "Traces" overview
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert exp.artifact_location == (tmp_path / "mlartifacts").as_uri()
    assert (tmp_path / "mlflow.db").is_file()
    note = tmp_path / "note.txt"
    note.write_text("hello")
    with tracking.start_run("report", "report", {}) as run:
        tracking.log_artifact(note)
    assert list((tmp_path / "mlartifacts").rglob("note.txt"))
    assert not list(elsewhere.iterdir())
    assert run.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())


def test_a_pipeline_in_a_subfolder_gets_its_own_experiment_in_the_same_store(tmp_path, monkeypatch):
    study = tmp_path / "studies" / "reference"
    study.mkdir(parents=True)
    (study / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(study)
    study_id = tracking.setup()
    exp = MlflowClient().get_experiment(study_id)
    assert exp.name == "kdscale/studies/reference"
    assert exp.artifact_location == (tmp_path / "mlartifacts").as_uri() and (tmp_path / "mlflow.db").is_file()
    monkeypatch.chdir(tmp_path)
    root_id = tracking.setup()
    assert root_id != study_id and MlflowClient().get_experiment(root_id).name == "kdscale"


def test_a_study_that_is_a_dvc_project_of_its_own_keeps_its_own_store(tmp_path, monkeypatch):
    """studies/embedded-sweep (`dvc init --subdir`): `kdscale ui` and `kdscale sync` run there by hand find the store
    its stages wrote under DVC (DVC_ROOT is the study's folder), not the repository's."""
    (tmp_path / ".dvc").mkdir()
    study = tmp_path / "studies" / "sweep"
    (study / ".dvc").mkdir(parents=True)
    (study / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(study)
    by_hand = tracking.tracking_uri()
    monkeypatch.setenv("DVC_ROOT", str(study))
    assert by_hand == tracking.tracking_uri() and str(study / "mlflow.db") in by_hand


def test_a_queued_experiments_copy_names_the_pipeline_as_its_checkout_has_it(tmp_path, monkeypatch):
    """`dvc queue` runs an experiment in a checkout of its own under .dvc/tmp/exps/, with DVC_ROOT at the
    real repository: its runs go to the pipeline's experiment, not to one named after the copy's folder."""
    import subprocess

    root = tmp_path / "repo"
    for copy in (root / ".dvc/tmp/exps/tmpab12", root / ".dvc/tmp/exps/tmpcd34"):
        (copy / "studies/reference").mkdir(parents=True)
        (copy / "dvc.yaml").write_text("stages: {}\n")
        (copy / "studies/reference/dvc.yaml").write_text("stages: {}\n")
        subprocess.run(["git", "init", "-q", str(copy)], check=True)
    monkeypatch.setenv("DVC_ROOT", str(root))
    monkeypatch.chdir(root / ".dvc/tmp/exps/tmpab12")
    assert tracking.experiment_name() == "kdscale"
    monkeypatch.chdir(root / ".dvc/tmp/exps/tmpcd34/studies/reference")
    assert tracking.experiment_name() == "kdscale/studies/reference"


def test_reopen_run_by_id(tmp_path):
    model_dir = tmp_path / "model"
    with tracking.start_run("train", RUN.name, tracking.common_tags("train", RUN, [])) as run:
        tracking.log_metrics({"train.loss": 2.0}, step=1)
        tracking.write_run_id(model_dir, run.info.run_id)
    run_id = tracking.read_run_id(model_dir)
    assert run_id == run.info.run_id

    with tracking.start_run("evaluate", "ignored", tracking.common_tags("evaluate", RUN, []), run_id=run_id) as again:
        assert again.info.run_id == run_id
        tracking.log_metrics({"eval.perplexity": 12.5})
    got = MlflowClient().get_run(run_id)
    assert got.info.status == "FINISHED"
    assert got.data.metrics == {"train.loss": 2.0, "eval.perplexity": 12.5}
    assert got.data.tags["kdscale.stage"] == "train"  # kept; the evaluate stage's goes beside it
    assert got.data.tags["kdscale.stage.evaluate"] == "evaluate"
    assert got.info.run_name == "pruned10-n5-seed0"
    assert tracking.read_run_id(tmp_path / "nowhere") is None


def test_a_run_made_by_a_dvc_experiment_is_named_after_it(monkeypatch):
    with tracking.start_run("train", RUN.name, tracking.common_tags("train", RUN, [])) as plain:
        pass
    monkeypatch.setenv("DVC_EXP_NAME", "lr-3e-4")
    with tracking.start_run("train", RUN.name, tracking.common_tags("train", RUN, [])) as queued:
        pass
    names = [MlflowClient().get_run(r.info.run_id).info.run_name for r in (plain, queued)]
    assert names == ["pruned10-n5-seed0", "pruned10-n5-seed0 (lr-3e-4)"]


def test_unknown_run_id_starts_new_run():
    with tracking.start_run("evaluate", RUN.name, {"kdscale.size": 5}, run_id="0" * 32) as run:
        pass
    got = MlflowClient().get_run(run.info.run_id)
    assert run.info.run_id != "0" * 32
    assert got.data.tags["kdscale.original_run_id"] == "0" * 32
    assert got.info.status == "FINISHED"


def test_exception_marks_run_failed():
    with pytest.raises(RuntimeError, match="boom"):
        with tracking.start_run("train", RUN.name, {}) as run:
            raise RuntimeError("boom")
    assert MlflowClient().get_run(run.info.run_id).info.status == "FAILED"
    assert mlflow.active_run() is None


@pytest.mark.slow
def test_concurrent_writers_on_fresh_db(tmp_path):
    """Three processes hit an empty database at the same moment (two `dvc queue` workers and more)."""
    go = tmp_path / "go"
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from kdscale import tracking
        Path({str(tmp_path)!r}, "ready" + sys.argv[1]).touch()
        while not Path({str(go)!r}).exists():
            time.sleep(0.01)
        tracking.setup()
        with tracking.start_run("train", "worker" + sys.argv[1], {{"kdscale.size": sys.argv[1]}}) as run:
            for step in range(5):
                tracking.log_metrics({{"loss": 1.0 / (step + 1)}}, step=step)
        print(run.info.run_id)
    """)
    env = {**os.environ, "PYTHONPATH": str(SRC), "DVC_ROOT": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(i)], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(3)]
    deadline = time.time() + 60  # let all three import mlflow, then release them together
    while len(list(tmp_path.glob("ready*"))) < 3 and time.time() < deadline:
        time.sleep(0.05)
    assert not (tmp_path / "mlflow.db").exists()
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    tracking.setup()
    runs = MlflowClient().search_runs([tracking.setup()])
    assert sorted(r.info.run_id for r in runs) == sorted(out.strip() for out, _ in outs)
    assert [r.info.status for r in runs] == ["FINISHED"] * 3
    assert all(len(MlflowClient().get_metric_history(r.info.run_id, "loss")) == 5 for r in runs)


def test_common_tags(tmp_path, monkeypatch):
    git(tmp_path, "init", "-q")
    (tmp_path / "README").write_text("x")
    git(tmp_path, "add", "README")
    git(tmp_path, "commit", "-q", "-m", "init")
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.jsonl").write_text('{"a": 1}\n')
    (data / "sub" / "b.jsonl").write_text('{"b": 2}\n')
    extra = tmp_path / "extra.json"
    extra.write_text("{}")

    trained = paths.Run("pruned10", 500, 1)  # a replicate: its own seed
    tags = tracking.common_tags("train", trained, [data, extra])
    assert tags["kdscale.stage"] == "train"
    assert (tags["kdscale.student"], tags["kdscale.size"], tags["kdscale.seed"]) == ("pruned10", "500", "1")
    assert tags["kdscale.dvc_exp"] == tags["kdscale.study"] == "workspace"
    assert tags["mlflow.source.git.commit"] == git(tmp_path, "rev-parse", "HEAD")
    assert tracking.common_tags("report", None, []).keys().isdisjoint(
        {"kdscale.student", "kdscale.size", "kdscale.seed", "kdscale.data_md5"})

    # Deterministic, and follows the content (not mtimes).
    md5 = tags["kdscale.data_md5"]
    os.utime(data / "a.jsonl", (1, 1))
    assert tracking.common_tags("train", trained, [data, extra])["kdscale.data_md5"] == md5
    (data / "sub" / "b.jsonl").write_text('{"b": 3}\n')
    assert tracking.common_tags("train", trained, [data, extra])["kdscale.data_md5"] != md5
    import hashlib
    assert tracking.data_md5([extra]) == hashlib.md5(b"{}").hexdigest()  # a file: what dvc.lock says
    with pytest.raises(FileNotFoundError):
        tracking.data_md5([tmp_path / "missing"])

    monkeypatch.setenv("DVC_EXP_NAME", "tidal-dune")
    assert tracking.common_tags("train", RUN)["kdscale.study"] == "tidal-dune"
    monkeypatch.setenv("KDSCALE_STUDY", "scaling-v1")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "f" * 40)
    tags = tracking.common_tags("train", RUN)
    assert (tags["kdscale.dvc_exp"], tags["kdscale.study"]) == ("tidal-dune", "scaling-v1")
    assert tags["mlflow.source.git.commit"] == "f" * 40


def test_params_and_metrics():
    params = {"student": {"hidden_size": 64, "tokenizer": "x"}, "HF_TOKEN": "hf_secret", "api_key": "k",
              "db": {"password": "p"}, "max_new_tokens": 128, "pad_token": "<pad>", "note": "z" * 7000}
    with tracking.start_run("train", "p", {}) as run:
        tracking.log_params(params)
        tracking.log_params({f"many.p{i}": i for i in range(150)})  # more than one MLflow batch
        tracking.log_metrics({"loss": 1.5, "eval": {"ppl": 3}, "nan": float("nan"), "inf": float("inf"),
                              "text": "x", "none": None, "flag": True}, step=2)
    got = MlflowClient().get_run(run.info.run_id).data
    assert got.params["student.hidden_size"] == "64" and got.params["max_new_tokens"] == "128"
    assert got.params["pad_token"] == "<pad>" and got.params["student.tokenizer"] == "x"
    assert not {"HF_TOKEN", "api_key", "db.password"} & got.params.keys()
    assert "hf_secret" not in got.params.values()
    assert len(got.params["note"]) == 6000
    assert len([k for k in got.params if k.startswith("many.")]) == 150
    assert got.metrics == {"loss": 1.5, "eval.ppl": 3.0}


def test_retry_waits_out_a_locked_database():
    from mlflow.exceptions import MlflowException

    calls = []

    def flaky(x, scale=1):
        calls.append(x)
        if len(calls) < 3:
            raise MlflowException("(sqlite3.OperationalError) database is locked")
        return x * scale

    assert tracking.retry(flaky, 2, scale=3, delay=0) == 6 and len(calls) == 3
    calls.clear()
    with pytest.raises(MlflowException, match="locked"):  # bounded
        tracking.retry(flaky, 1, attempts=2, delay=0)
    with pytest.raises(ValueError):  # not a busy store: no retry
        tracking.retry(lambda: calls.append(0) or int("x"), delay=0)
    assert calls == [1, 1, 0]


def test_disable_hf_integrations(monkeypatch):
    monkeypatch.delenv("DISABLE_MLFLOW_INTEGRATION", raising=False)
    tracking.disable_hf_integrations()
    from transformers.integrations import is_mlflow_available

    assert os.environ["DISABLE_MLFLOW_INTEGRATION"] == "TRUE"
    assert not is_mlflow_available()


def tiny_student(folder: Path) -> Path:
    """A random 1-layer Llama and a byte-level BPE tokenizer trained on three sentences, offline."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<eos>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["Say hi.", "Below is an instruction that describes a task.", "### Response: hello"],
                            trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>")
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=2, intermediate_size=64, max_position_embeddings=512,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_student_pyfunc_round_trip(tmp_path):
    model_dir = tiny_student(tmp_path / "student")
    with tracking.start_run("train", RUN.name, {}) as run:
        uri = tracking.log_student_model(model_dir, "kdscale-student", RUN)
    assert uri == "models:/kdscale-student/1"
    client = MlflowClient()
    version = client.get_model_version_by_alias("kdscale-student", "pruned10-n5-seed0")  # the run's name
    assert str(version.version) == "1"
    assert (version.tags["kdscale.student"], version.tags["kdscale.size"]) == ("pruned10", "5")
    assert version.run_id == run.info.run_id
    assert client.get_run(run.info.run_id).data.tags["kdscale.model_uri"] == uri

    model = mlflow.pyfunc.load_model("models:/kdscale-student@pruned10-n5-seed0")
    answers = model.predict(["Say hi."], params={"max_new_tokens": 4})
    assert isinstance(answers, list) and len(answers) == 1 and isinstance(answers[0], str)
    assert len(model.predict(["Say hi.", "Say bye."], params={"max_new_tokens": 2})) == 2

    # The package travels with the model (code_paths), so it loads where kdscale is not installed.
    local = Path(mlflow.artifacts.download_artifacts("models:/kdscale-student@pruned10-n5-seed0"))
    assert (local / "code" / "kdscale" / "tracking" / "serving.py").is_file()
    assert not list(local.rglob("__pycache__"))
    script = ("import importlib.util, os, sys; "  # hide kdscale however it is installed (PYTHONPATH, .pth)
              "sys.path = [p for p in sys.path if not os.path.isdir(os.path.join(p or '.', 'kdscale'))]; "
              "import mlflow; assert importlib.util.find_spec('kdscale') is None; "
              "m = mlflow.pyfunc.load_model('models:/kdscale-student@pruned10-n5-seed0'); "
              "import kdscale; print(kdscale.__file__); print(m.predict(['Say hi.'], params={'max_new_tokens': 2}))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["MLFLOW_TRACKING_URI"] = tracking.tracking_uri()
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "/code/kdscale/" in out.stdout


def test_runs_of_a_killed_process_are_closed_by_the_next_setup(tmp_path):
    """A stage killed with SIGKILL cannot end its run; the next stage (or sync) marks it KILLED."""
    script = textwrap.dedent("""
        import os, signal
        from kdscale import tracking
        tracking.setup()
        with tracking.start_run("teacher", "teacher-generation", {}) as run:
            print(run.info.run_id, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    env = {**os.environ, "PYTHONPATH": str(SRC), "DVC_ROOT": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == -9, out.stderr[-2000:]
    killed = out.stdout.split()[0]
    client = MlflowClient(tracking.tracking_uri())
    assert client.get_run(killed).info.status == "RUNNING"
    assert client.get_run(killed).data.tags[tracking.PID_TAG].isdigit()
    experiment = client.get_run(killed).info.experiment_id
    foreign = client.create_run(experiment, tags={tracking.PID_TAG: "999999999", tracking.HOST_TAG: "elsewhere"})
    with tracking.start_run("train", "alive", {}) as alive:  # this process: alive, left alone
        tracking.setup()
        assert client.get_run(alive.info.run_id).info.status == "RUNNING"
    assert client.get_run(killed).info.status == "KILLED"
    assert client.get_run(foreign.info.run_id).info.status == "RUNNING"  # another host: nothing tells
    assert client.get_run(alive.info.run_id).info.status == "FINISHED"


def test_a_live_process_of_another_user_keeps_its_run(monkeypatch):
    """os.kill(pid, 0) on another user's live process raises PermissionError: alive, its run stays
    RUNNING; only a pid that is gone (ProcessLookupError) is KILLED. Runs without a pid are left alone."""
    import socket

    experiment = tracking.setup()
    client = MlflowClient()
    host = socket.gethostname()

    def holder(pid: str | None):
        tags = {tracking.HOST_TAG: host, **({tracking.PID_TAG: pid} if pid else {})}
        return client.create_run(experiment, tags=tags).info.run_id

    other_user, gone, no_pid = holder("1000001"), holder("1000002"), holder(None)
    probes = []

    def kill(pid, sig):
        probes.append((pid, sig))
        if pid == 1000001:
            raise PermissionError(1, "Operation not permitted")
        if pid == 1000002:
            raise ProcessLookupError(3, "No such process")
        raise AssertionError(f"unexpected os.kill({pid}, {sig})")

    monkeypatch.setattr(tracking.os, "kill", kill)
    assert tracking.close_dead_runs(experiment) == [gone]
    assert sorted(probes) == [(1000001, 0), (1000002, 0)]  # signal 0: a probe, never a real signal
    assert client.get_run(other_user).info.status == "RUNNING"
    assert client.get_run(gone).info.status == "KILLED"
    assert "1000002 gone" in client.get_run(gone).data.tags["kdscale.closed_by"]
    assert client.get_run(no_pid).info.status == "RUNNING"

    tracking.setup()  # the next stage's setup probes again: the other user's run still stands
    assert client.get_run(other_user).info.status == "RUNNING"
    assert {sig for _, sig in probes} == {0}
