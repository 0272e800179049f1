"""Train stage: completion-only labels, overlong policies, step schedules, a tiny student that
overfits and stops at EOS, the registered pyfunc model, one MLflow run per model, 2-process
DDP on CPU, and a killed run that resumes. Every project is a tiny copy under tmp_path."""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from mlflow.tracking._tracking_service import utils as mlflow_uri_state

from conftest import STUDENT, make_project, project_env, run, run_of, tiny_params
from kdscale import paths, tracking
from kdscale.config import parse_params
from kdscale.examples import CompletionCollator, tokenize_example, tokenize_records
from kdscale.models import load_model, load_tokenizer
from kdscale.prompts import alpaca_prompt
from kdscale.stages.train import LengthGroupedSampler, last_checkpoint, optimizer_steps

# Three answers a tiny student learns by heart.
MEMORISE = [("Name a colour.", "Blue."), ("Describe the sea.", "The sea is wide and deep."),
            ("Say hi.", "Hi there!")]
WORDS = ["sea", "sky", "tree", "stone", "river", "cloud", "sun", "moon"]
STORE_ENV = ["MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID",
             "DVC_ROOT", "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV", "KDSCALE_STUDY"]


def record(i: int, instruction: str, response: str) -> dict:
    return {"id": f"r{i}", "instruction": instruction, "input": "", "response": response,
            "finish_reason": "eos", "n_tokens": 0, "dropped": False, "drop_reason": None}


def varied_records(n: int) -> list[dict]:
    """Answers of different lengths, so batches need padding."""
    return [record(i, f"Describe the {WORDS[i % 8]}.", "It is " + " and ".join(WORDS[: i % 6 + 1]) + ".")
            for i in range(n)]


def train_project(tmp_path: Path, teacher: Path, subsets: dict[int, list[dict]], **overrides) -> Path:
    """A tiny project whose teacher folder and subset files already exist (the stages before train)."""
    root = tmp_path / "project"
    root.mkdir()
    make_project(root, teacher, scaling={"sizes": sorted(subsets)}, **overrides)
    shutil.copytree(teacher, root / "models" / "teacher")
    for size, records in subsets.items():
        path = root / "data" / "subsets" / f"n{size}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    pool = root / "data" / "teacher" / "pool.jsonl"  # the pruned student calibrates on the teacher's answers
    pool.parent.mkdir(parents=True, exist_ok=True)
    pool.write_text("".join(json.dumps(r) + "\n" for r in subsets[max(subsets)]))
    with in_project(root):
        from kdscale.stages import student_init

        student_init.main(["--student", STUDENT])
    return root


def students_with(teacher: Path, **keys) -> dict:
    """The tiny project's `students`, its one student with `keys` changed."""
    return {STUDENT: tiny_params(teacher)["students"][STUDENT] | keys}


def student_dir(root: Path, size: int) -> Path:
    """The tiny project's student trained on `size` answers with the project's seed."""
    return root / paths.student_dir(run_of(size))


@contextlib.contextmanager
def in_project(root: Path):
    """Run stage code in-process inside `root`, with its own MLflow store; nothing leaks out after."""
    with pytest.MonkeyPatch.context() as mp:
        for key in STORE_ENV:
            mp.delenv(key, raising=False)
        mp.setenv("DISABLE_MLFLOW_INTEGRATION", "FALSE")  # main() must turn HF's MLflow callback off itself
        mp.setenv("HF_MLFLOW_LOG_ARTIFACTS", "FALSE")
        mp.setattr(tracking, "_setup_uri", None)
        mp.setattr(mlflow_uri_state, "_tracking_uri", mlflow_uri_state._tracking_uri)
        mp.chdir(root)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny models: a second thread only spins, ~50x slower on a busy machine
        try:
            yield
        finally:
            torch.set_num_threads(threads)
            while mlflow.active_run():
                mlflow.end_run()
            mlflow.set_tracking_uri(None)  # also unsets the MLFLOW_TRACKING_URI that set_tracking_uri exported


def training_log(root: Path, size: int) -> dict:
    return json.loads((student_dir(root, size) / "training_log.json").read_text())


def runs_of(root: Path, size: int) -> list:
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("kdscale")
    return client.search_runs([exp.experiment_id], filter_string=f"tags.`kdscale.size` = '{size}'")


# ----------------------------------------------------------------------------- labels

@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer_dir):
    return load_tokenizer(str(tiny_tokenizer_dir), "tokenizer")


def test_labels_mask_prompt_and_padding_and_keep_eos(tokenizer):
    assert tokenizer.pad_token_id == tokenizer.eos_token_id  # the case where padding by token id would lose EOS
    prompts = [alpaca_prompt("Say hi."), alpaca_prompt("Describe the sea in one long sentence.")]
    responses = ["Hi.", "The sea is wide and deep and blue and full of fish."]
    examples = [tokenize_example(tokenizer, p, r, 128)[0] for p, r in zip(prompts, responses)]
    batch = CompletionCollator(tokenizer.pad_token_id)(examples)
    width = batch["input_ids"].shape[1]
    assert width == max(len(e["input_ids"]) for e in examples)
    for row, (prompt, response, e) in enumerate(zip(prompts, responses, examples)):
        n_prompt, n = len(tokenizer(prompt).input_ids), len(e["input_ids"])
        labels, ids = batch["labels"][row].tolist(), batch["input_ids"][row].tolist()
        assert labels[:n_prompt] == [-100] * n_prompt  # prompt
        assert labels[n:] == [-100] * (width - n)  # padding
        assert labels[n_prompt:n] == ids[n_prompt:n]  # every response token counts...
        assert labels[n - 1] == tokenizer.eos_token_id  # ...and the EOS that ends it, though pad == eos
        assert -100 not in labels[n_prompt:n]
        assert tokenizer.decode(labels[n_prompt : n - 1]) == response
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (width - n)
    collator = CompletionCollator(tokenizer.pad_token_id)
    collator(examples)
    real = sum(len(e["input_ids"]) for e in examples)
    assert (collator.real_tokens, collator.padded_tokens) == (real, 2 * width)


def test_no_eos_label_where_the_teacher_was_cut_off(tokenizer):
    ended = record(0, "Describe the sea.", "The sea is wide.")
    cut = {**record(1, "Describe the sky.", "The sky is blue and"), "finish_reason": "length"}
    stopped = {**record(2, "Say hi.", "Hi."), "finish_reason": "stop"}  # a base model's stop string ends it too
    examples, _ = tokenize_records(tokenizer, [ended, cut, stopped], 128)
    assert [e["labels"][-1] == tokenizer.eos_token_id for e in examples] == [True, False, True]
    assert tokenizer.decode(examples[1]["labels"][-3:]) .endswith("and")
    # A source's reference output is complete, whatever the teacher's answer did.
    reference = {**cut, "reference": "The sky is blue."}
    (example,), _ = tokenize_records(tokenizer, [reference], 128, response_key="reference")
    assert example["labels"][-1] == tokenizer.eos_token_id


def test_overlong_truncate_and_drop_are_counted(tokenizer):
    long = record(0, "Describe the sea.", " ".join(["the sea is wide"] * 30))
    short = record(1, "Say hi.", "Hi.")
    prompt_len = len(tokenizer(alpaca_prompt(long["instruction"])).input_ids)
    max_length = prompt_len + 10

    examples, counts = tokenize_records(tokenizer, [long, short], max_length, "truncate")
    assert counts == {"prefix_mismatch": 0, "truncated": 1, "dropped": 0}
    cut = examples[0]
    assert len(cut["input_ids"]) == cut["length"] == max_length
    assert cut["labels"][:prompt_len] == [-100] * prompt_len and -100 not in cut["labels"][prompt_len:]
    assert cut["input_ids"][-1] != tokenizer.eos_token_id  # a cut answer has no EOS to learn
    assert examples[1]["input_ids"][-1] == tokenizer.eos_token_id

    examples, counts = tokenize_records(tokenizer, [long, short], max_length, "drop")
    assert counts == {"prefix_mismatch": 0, "truncated": 0, "dropped": 1}
    assert len(examples) == 1 and examples[0]["labels"][-1] == tokenizer.eos_token_id

    # A prompt that alone fills max_length leaves no answer to learn: dropped even under truncate.
    short_prompt = len(tokenizer(alpaca_prompt(short["instruction"])).input_ids)
    examples, counts = tokenize_records(tokenizer, [long, short], short_prompt, "truncate")
    assert counts["dropped"] == 2 and examples == []


# ----------------------------------------------------------------------------- schedules

def test_step_schedules(tiny_gpt2_dir):
    steps = parse_params(tiny_params(tiny_gpt2_dir, train={"schedule": "steps", "max_steps": 37, "batch_size": 4}))
    assert optimizer_steps(steps, 8) == optimizer_steps(steps, 16) == optimizer_steps(steps, 16, 2) == 37

    epochs = parse_params(tiny_params(tiny_gpt2_dir, train={"schedule": "epochs", "epochs": 3, "batch_size": 4}))
    assert optimizer_steps(epochs, 8) == 2 * 3
    assert optimizer_steps(epochs, 9) == math.ceil(9 / 4) * 3 == 9
    assert optimizer_steps(epochs, 9, world_size=2) == math.ceil(9 / 8) * 3  # K processes share each epoch
    half = parse_params(tiny_params(tiny_gpt2_dir, train={"schedule": "epochs", "epochs": 1.5, "batch_size": 4}))
    assert optimizer_steps(half, 16) == 6


def batches_of(sampler: LengthGroupedSampler, epoch: int) -> list[list[int]]:
    sampler.set_epoch(epoch)
    order = list(sampler)
    return [order[i : i + sampler.batch_size] for i in range(0, len(order), sampler.batch_size)]


def padding(lengths: list[int], batches: list[list[int]]) -> float:
    return 1 - sum(lengths) / sum(max(lengths[i] for i in b) * len(b) for b in batches)


@pytest.mark.parametrize("n", [5, 25, 50, 400])
def test_length_grouped_batches(n):
    import random

    rng = random.Random(n)
    lengths = [rng.randint(40, 220) for _ in range(n)]
    sampler = LengthGroupedSampler(lengths, 16, seed=0)
    epoch0 = batches_of(sampler, 0)
    assert sorted(i for b in epoch0 for i in b) == list(range(n))  # every example once per epoch
    assert [len(b) for b in epoch0] == [16] * (n // 16) + ([n % 16] if n % 16 else [])  # a short batch last
    assert max(lengths[i] for i in epoch0[0]) == max(lengths)  # longest first
    assert batches_of(LengthGroupedSampler(lengths, 16, seed=0), 0) == epoch0  # seed + epoch fix the order
    if n >= 50:
        assert batches_of(sampler, 1) != epoch0
        # Random batches of these lengths pad about 35-40%; grouped ones far less, even with few batches.
        assert padding(lengths, epoch0) < {50: 0.2, 400: 0.05}[n]
        assert padding(lengths, epoch0) < padding(lengths, [list(range(i, min(i + 16, n))) for i in range(0, n, 16)])


def batch_maxima(lengths: list[int], sampler: LengthGroupedSampler, epoch: int) -> tuple[int, ...]:
    """The longest example of each batch, in the order the epoch runs them."""
    return tuple(max(lengths[i] for i in b) for b in batches_of(sampler, epoch))


@pytest.mark.parametrize("megabatch_batches", [50, 5])
def test_length_grouped_batches_run_in_a_shuffled_order(megabatch_batches):
    """Grouping by length must not mean training longest to shortest: after the longest batch the
    order is random (about as many steps up in length as down), within and across megabatches."""
    import random

    rng = random.Random(400)
    lengths = [rng.randint(40, 220) for _ in range(400)]  # 25 full batches of 16
    for seed in range(5):
        sampler = LengthGroupedSampler(lengths, 16, seed=seed, megabatch_batches=megabatch_batches)
        for epoch in range(3):
            maxima = batch_maxima(lengths, sampler, epoch)
            assert maxima[0] == max(lengths)  # the longest first, so out-of-memory shows on step 1
            rest = maxima[1:]
            ups = sum(a < b for a, b in zip(rest, rest[1:]))
            assert ups >= len(rest) // 4, (seed, epoch, maxima)  # sorted: 0; a shuffle: about half


@pytest.mark.parametrize("n", [50, 100, 400])
def test_length_grouped_batch_order_depends_on_seed_and_epoch(n):
    """Seeds and epochs give different orders of batch lengths (not only a different order of
    equal-length examples); the same seed and epoch give the same examples in the same order,
    each exactly once."""
    import random

    rng = random.Random(n)
    lengths = [rng.randint(40, 220) for _ in range(n)]
    profiles = {}
    for seed in range(5):
        sampler = LengthGroupedSampler(lengths, 16, seed=seed)
        for epoch in range(3):
            batches = batches_of(sampler, epoch)
            assert sorted(i for b in batches for i in b) == list(range(n))  # every example once per epoch
            fresh = LengthGroupedSampler(lengths, 16, seed=seed)
            assert batches_of(fresh, epoch) == batches  # a resumed run replays the same epoch
            profiles[seed, epoch] = batch_maxima(lengths, sampler, epoch)
    by_epoch = [{profiles[s, e] for e in range(3)} for s in range(5)]  # one seed, three epochs
    by_seed = [{profiles[s, e] for s in range(5)} for e in range(3)]  # one epoch, five seeds
    if n == 400:  # 24 batches to shuffle after the longest: every order differs
        assert all(len(p) == 3 for p in by_epoch) and all(len(p) == 5 for p in by_seed), profiles
        # and no seed replays another's epoch (seed + epoch made seed 2's epoch 0 seed 1's epoch 1)
        assert len(set(profiles.values())) == len(profiles), profiles
    else:  # 50 and 100: only 2 and 5 batches to shuffle, so some orders repeat, but not all of them
        assert len(set(profiles.values())) > 1, profiles


def test_last_checkpoint_skips_one_killed_while_saving(tmp_path):
    assert last_checkpoint(tmp_path / "missing") is None
    for step, complete in [(2, True), (10, True), (12, False)]:
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"")
        if complete:
            (folder / "trainer_state.json").write_text('{"global_step": %d}' % step)
    (tmp_path / "checkpoint-11" / "trainer_state.json").parent.mkdir()
    (tmp_path / "checkpoint-11" / "trainer_state.json").write_text('{"global_st')  # cut mid-write
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")  # 10 < 11 < 12 numerically, not "1" < "2"


def test_an_unknown_student_stops_train_with_one_line_naming_the_known_ones(tmp_path, tiny_gpt2_dir, monkeypatch,
                                                                           capsys):
    """`kdscale train --student NAME` with a NAME that params.yaml's `students` lacks: exit 2, one line that
    names the students it has, before anything is loaded or written."""
    from kdscale.cli import main

    params = tiny_params(tiny_gpt2_dir, students={"scratch1": {"model": "scratch"}})  # beside the tiny one
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["train", "--student", "pruned2", "--size", "8"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = err.splitlines()
    assert line.startswith("kdscale: error: --student pruned2 is not in students")
    assert f"({STUDENT}, scratch1)" in line
    assert [p.name for p in tmp_path.iterdir()] == ["params.yaml"]


# ----------------------------------------------------------------------------- the real Trainer path

@pytest.fixture(scope="module")
def memorised(tmp_path_factory, tiny_gpt2_dir):
    """`kdscale.stages.train.main` in-process on 3 examples: 120 steps at lr 3e-3 in a tiny project."""
    tmp = tmp_path_factory.mktemp("memorise")
    records = [record(i, q, a) for i, (q, a) in enumerate(MEMORISE)]
    root = train_project(tmp, tiny_gpt2_dir, {3: records, 16: varied_records(16)},
                         students=students_with(tiny_gpt2_dir, model="scratch", hidden_size=64, num_layers=2,
                                                num_heads=4, intermediate_size=128),
                         train={"schedule": "steps", "max_steps": 120, "batch_size": 3, "learning_rate": 3e-3,
                                "warmup_ratio": 0.0, "logging_steps": 10, "save_steps": 1000})
    with in_project(root):
        from kdscale.stages import train

        train.main(["--student", STUDENT, "--size", "3"])
        assert mlflow.active_run() is None
        yield root, records


def test_tiny_student_memorises_and_stops_at_eos(memorised):
    from kdscale.engines.generation import DecodeParams, generate_all

    root, records = memorised
    log = training_log(root, 3)["summary"]
    assert log["optimizer_steps"] == 120 and log["examples"] == 3 and log["final_loss"] < 0.1
    model, tokenizer = load_model(str(student_dir(root, 3)), "student")
    answers = generate_all(model, tokenizer, [alpaca_prompt(r["instruction"]) for r in records],
                           DecodeParams(max_new_tokens=24), batch_size=3)
    assert [a.text for a in answers] == [r["response"] for r in records]
    assert [a.finish_reason for a in answers] == ["eos"] * 3
    assert not (root / ".kdscale" / "checkpoints").exists() or not any((root / ".kdscale/checkpoints").iterdir())


def test_size_zero_is_the_untrained_student(tmp_path, tiny_gpt2_dir):
    root = train_project(tmp_path, tiny_gpt2_dir, {0: [], 8: varied_records(8)})
    with in_project(root):
        from kdscale.stages import train

        train.main(["--student", STUDENT, "--size", "0"])
    summary = training_log(root, 0)["summary"]
    assert summary["optimizer_steps"] == 0 and summary["examples"] == 0
    init, _ = load_model(str(root / paths.student_init_dir(STUDENT)), "student")
    untrained, _ = load_model(str(student_dir(root, 0)), "student")
    assert untrained.config.n_layer == 1  # pruned from the 2-layer tiny teacher (conftest.tiny_params)
    assert all(torch.equal(a, b) for a, b in zip(init.state_dict().values(), untrained.state_dict().values()))
    (run_,) = runs_of(root, 0)
    assert run_.info.status == "FINISHED" and run_.info.run_id == tracking.read_run_id(student_dir(root, 0))


def test_frozen_embeddings_stay_and_the_layers_learn(tmp_path, tiny_gpt2_dir):
    root = train_project(tmp_path, tiny_gpt2_dir, {8: varied_records(8)},
                         train={"schedule": "steps", "max_steps": 3, "batch_size": 4, "learning_rate": 1e-2,
                                "save_steps": 1000})
    with in_project(root):
        from kdscale.stages import train

        train.main(["--student", STUDENT, "--size", "8"])
    init, _ = load_model(str(root / paths.student_init_dir(STUDENT)), "student")
    trained, _ = load_model(str(student_dir(root, 8)), "student")
    assert torch.equal(trained.get_input_embeddings().weight, init.get_input_embeddings().weight)
    assert not torch.equal(trained.transformer.h[0].mlp.c_fc.weight, init.transformer.h[0].mlp.c_fc.weight)


def test_answer_only_head_gives_the_models_own_loss(tiny_model, tokenizer):
    from kdscale.stages.train import completion_loss

    model, _ = tiny_model
    examples, _ = tokenize_records(tokenizer, varied_records(4), 128)
    batch = CompletionCollator(tokenizer.pad_token_id)(examples)
    ours, _ = completion_loss(model, batch)
    theirs = model(**batch).loss  # the full-vocabulary head at every position, HF's shifted mean
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)


def test_registered_student_loads_from_mlflow(memorised):
    root, _ = memorised
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model(f"models:/kdscale-student@{run_of(3).name}")  # the run's name: its alias
    answers = model.predict(["Say hi."])
    assert isinstance(answers, list) and len(answers) == 1 and isinstance(answers[0], str)
    assert answers == ["Hi there!"]  # the trained student, through serving.py's own prompt


def test_one_mlflow_run_per_model(memorised):
    root, _ = memorised
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    (run_,) = client.search_runs([client.get_experiment_by_name("kdscale").experiment_id])
    assert run_.info.run_name == run_of(3).name == f"{STUDENT}-n3-seed0" and run_.info.status == "FINISHED"
    assert run_.info.run_id == tracking.read_run_id(student_dir(root, 3))
    tags = run_.data.tags
    assert (tags["kdscale.student"], tags["kdscale.size"], tags["kdscale.seed"]) == (STUDENT, "3", "0")
    params = run_.data.params
    assert params["train.max_steps"] == "120" and params["optimizer_steps"] == "120"
    # HF's MLflowCallback would have logged every TrainingArguments field.
    assert not {"per_device_train_batch_size", "output_dir", "lr_scheduler_type"} & set(params)
    assert "Training/loss" in run_.data.metrics and "Training steps/tokens_per_sec" in run_.data.metrics


# ----------------------------------------------------------------------------- processes

@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(tmp_path, tiny_gpt2_dir):
    root = train_project(tmp_path, tiny_gpt2_dir, {16: varied_records(16)},
                         train={"schedule": "epochs", "epochs": 2, "batch_size": 4, "save_steps": 1000})
    run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "kdscale.stages.train", "--student", STUDENT, "--size", "16"], root, timeout=300)
    out = student_dir(root, 16)
    assert {"model.safetensors", "config.json", "tokenizer.json", "training_log.json", "mlflow_run.json"} \
        <= {p.name for p in out.iterdir()}
    summary = training_log(root, 16)["summary"]
    assert summary["world_size"] == 2
    assert summary["optimizer_steps"] == math.ceil(16 / (4 * 2)) * 2 == 4
    model, tokenizer = load_model(str(out), "student")
    assert model(**tokenizer(["Say hi."], return_tensors="pt")).logits.shape[-1] == len(tokenizer)
    (run_,) = runs_of(root, 16)  # rank 1 opens no run
    assert run_.info.status == "FINISHED" and run_.info.run_id == tracking.read_run_id(out)
    assert not out.with_name(out.name + ".tmp").exists()


@pytest.mark.slow
def test_killed_train_resumes(tmp_path, tiny_gpt2_dir, capsys):
    steps = 80
    root = train_project(tmp_path, tiny_gpt2_dir, {8: varied_records(8)},
                         train={"schedule": "steps", "max_steps": steps, "batch_size": 4, "save_steps": 2,
                                "logging_steps": 1})
    checkpoints = root / ".kdscale" / "checkpoints"
    env = {**project_env(root), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(["kdscale", "train", "--student", STUDENT, "--size", "8"], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not any(last_checkpoint(folder) for folder in checkpoints.glob("*")):
            assert proc.poll() is None, "train finished before it could be killed; raise max_steps"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert not student_dir(root, 8).exists()
    (folder,) = checkpoints.iterdir()
    resume_from = Path(last_checkpoint(folder))
    killed_at = json.loads((resume_from / "trainer_state.json").read_text())["global_step"]
    assert 0 < killed_at < steps

    with in_project(root):
        from kdscale.stages import train

        train.main(["--student", STUDENT, "--size", "8"])  # in-process: one interpreter start less
    resumed = [line for line in capsys.readouterr().out.splitlines() if "resuming from" in line]
    assert resumed and resumed[0].endswith(f"{folder.name}/{resume_from.name}"), "no 'resuming from' line"
    summary = training_log(root, 8)["summary"]
    assert summary["optimizer_steps"] == steps
    assert summary["resumed_from"].endswith(f"{folder.name}/checkpoint-{killed_at}")
    assert training_log(root, 8)["log_history"][-1]["step"] == steps
    assert not checkpoints.joinpath(folder.name).exists()  # removed once the model is saved
    (run_,) = runs_of(root, 8)  # the resumed run reopened the killed one's MLflow run
    assert run_.info.status == "FINISHED"
    assert run_.info.run_id == tracking.read_run_id(student_dir(root, 8))


def test_logged_tokens_per_sec_is_never_the_summary_s_zero(monkeypatch):
    """Every step log gets the real tokens/s since the last one; the end-of-training summary (no
    tokens trained since the last step) gets none, so the MLflow curve does not end at 0."""
    from types import SimpleNamespace

    from kdscale.stages import train

    logged = []
    monkeypatch.setattr(train.tracking, "log_metrics", lambda metrics, step: logged.append((step, metrics)))
    collator = SimpleNamespace(real_tokens=0)
    logger = train.MLflowLogger(collator)
    state = SimpleNamespace(is_world_process_zero=True, global_step=0)
    for step in (1, 2):
        collator.real_tokens += 1000
        state.global_step = step
        logger.on_log(None, state, None, logs={"loss": 2.0, "learning_rate": 1e-3})
    logger.on_log(None, state, None, logs={"train_loss": 2.0, "train_runtime": 9.0})
    rates = [m.get("Training steps/tokens_per_sec") for _, m in logged]
    assert len(rates) == 2 and rates[0] > 0 and rates[1] > 0  # the summary is no point of a curve
    assert set(logged[0][1]) == {"Training/loss", "Training steps/learning_rate", "Training steps/tokens_per_sec"}


def test_checkpoints_fall_on_logging_steps(tmp_path):
    """A run resumed from a checkpoint logs the loss curve a straight run logs: Trainer averages the
    loss since the last log, so a checkpoint between two logs would shorten the first log after it."""
    from kdscale.config import Params, TrainParams
    from kdscale.stages.train import training_arguments

    params = Params(train=TrainParams(save_steps=25, logging_steps=2))
    assert training_arguments(params, tmp_path, 100).save_steps == 26
    params = Params(train=TrainParams(save_steps=24, logging_steps=2))
    assert training_arguments(params, tmp_path, 100).save_steps == 24
