"""White-box KD: the teacher's top-k store (shape, values, alignment with training labels),
the KD loss (full KL at k = vocabulary, answer tokens only), the collator, and kd / mixed
training end to end on tiny models."""

from __future__ import annotations

import json
import re

import pytest
import torch
import torch.nn.functional as F
import yaml

from conftest import STUDENT
from kdscale.distill import (KDCollator, KDConfig, TopkStore, answer_labels, build_store, check_same_vocabulary,
                             kd_loss, objective_loss, teacher_topk, tokenize_with_ids)
from kdscale.errors import UserError
from kdscale.examples import CompletionCollator, tokenize_records
from kdscale.prompts import build_prompt
from kdscale.stages.teacher_topk import store_for
from test_train import in_project, record, runs_of, train_project, training_log, varied_records


def answers(n: int = 6) -> list[dict]:
    records = varied_records(n)
    records[1]["finish_reason"] = "length"  # cut at max_new_tokens: training gives it no EOS label
    return records


@pytest.fixture(scope="module")
def store_and_model(tiny_gpt2_dir):
    from kdscale.models import load_model

    model, tokenizer = load_model(str(tiny_gpt2_dir), "teacher")
    records = answers()
    return store_for(records, tokenizer, "chat", k=5, batch_size=4, load_teacher=lambda: model)[0], model, tokenizer, \
        records


# ----------------------------------------------------------------------------- the store

def test_store_rows_are_the_training_labels(store_and_model):
    store, _, tokenizer, records = store_and_model
    examples, _ = tokenize_records(tokenizer, records, 10_000)  # what training builds, prompt and all
    assert store.ids == [r["id"] for r in records]
    assert store.indices.shape == (len(store.labels), 5) and store.logprobs.shape == (len(store.labels), 5)
    assert store.indices.dtype == torch.int32 and store.logprobs.dtype == torch.float16
    assert answer_labels(examples[0])[-1] == tokenizer.eos_token_id  # the answer that ended at EOS
    for record_, example in zip(records, examples):
        labels = answer_labels(example)
        assert store.labels[store.rows(record_["id"], len(labels))].tolist() == labels
        assert int(store.offsets[store.row[record_["id"]] + 1] - store.offsets[store.row[record_["id"]]]) \
            == len(labels)
    # log-probs are sorted, at most 0, and k distinct tokens per row
    assert (store.logprobs <= 0).all() and (store.logprobs[:, :-1] >= store.logprobs[:, 1:]).all()
    assert all(len(set(row)) == 5 for row in store.indices.tolist())


def test_store_values_are_the_teachers_own_forward_pass(store_and_model):
    """One unpadded forward pass over the teacher's chat prompt + the answer tokens, per answer."""
    store, model, tokenizer, records = store_and_model
    for record_ in records[:3]:
        labels = answer_labels(tokenize_records(tokenizer, [record_], 10_000)[0][0])
        prompt = tokenizer(build_prompt(record_, "chat", tokenizer)).input_ids
        with torch.no_grad():
            logits = model(torch.tensor([prompt + labels])).logits[0]
        expected, expected_idx = torch.log_softmax(logits, -1)[len(prompt) - 1 : -1].topk(5, -1)
        rows = store.rows(record_["id"], len(labels))
        assert torch.equal(store.indices[rows].long(), expected_idx)
        torch.testing.assert_close(store.logprobs[rows].float(), expected, atol=2e-2, rtol=1e-3)  # fp16


def test_store_saves_and_loads(store_and_model, tmp_path):
    store = store_and_model[0]
    store.save(tmp_path / "topk.safetensors")
    loaded = TopkStore.load(tmp_path / "topk.safetensors")
    assert loaded.ids == store.ids and torch.equal(loaded.logprobs, store.logprobs)
    assert torch.equal(loaded.indices, store.indices) and torch.equal(loaded.offsets, store.offsets)
    with pytest.raises(UserError, match=r"not found.*run `dvc repro`"):
        TopkStore.load(tmp_path / "missing.safetensors")


def test_teacher_topk_reuses_what_generation_kept_and_passes_the_rest(store_and_model):
    """An answer whose label tokens are the ids the teacher generated takes the top-k it kept while
    generating (test_generation checks that those are the forward pass's); the others take the
    forward pass, and the teacher is loaded only for them. A generation that kept fewer than k
    serves no answer."""
    from kdscale.stages.teacher import generated_topk

    store, model, tokenizer, records = store_and_model
    wide, _ = store_for(records, tokenizer, "chat", 8, 4, load_teacher=lambda: model)

    def row(record_id: str, labels: list[int]) -> dict:  # what the teacher stage kept for one answer
        rows = wide.rows(record_id, len(labels))
        return {"id": record_id, "token_ids": labels, "topk_indices": wide.indices[rows].tolist(),
                "topk_logprobs": wide.logprobs[rows].float().tolist()}

    labels = {e["id"]: answer_labels(e) for e in tokenize_with_ids(tokenizer, records, 1 << 30)[0]}
    ids = [r["id"] for r in records]
    kept = [row(i, labels[i]) for i in ids[:4]]
    kept.append(row(ids[4], labels[ids[4]][:-1] + [labels[ids[4]][-1] + 1]))  # generated other tokens
    loads = []

    def load():
        loads.append(1)
        return model

    reused, forward = store_for(records, tokenizer, "chat", 5, 4, generated_topk(kept, 8), load)
    assert forward == 2 and len(loads) == 1  # ids[4] and ids[5], which the generation did not keep
    assert reused.ids == store.ids and torch.equal(reused.labels, store.labels)
    torch.testing.assert_close(reused.logprobs.float(), store.logprobs.float(), atol=1e-2, rtol=0)  # fp16
    assert torch.equal(reused.indices, store.indices)
    _, forward = store_for(records[:4], tokenizer, "chat", 5, 4, generated_topk(kept, 8), lambda: 1 / 0)
    assert forward == 0  # nothing left to compute: the teacher is never loaded
    assert store_for(records, tokenizer, "chat", 9, 4, generated_topk(kept, 8), load)[1] == len(records)


def test_store_check_names_misaligned_or_missing_answers(store_and_model):
    store, _, tokenizer, records = store_and_model
    examples, _ = tokenize_with_ids(tokenizer, records, 10_000)
    store.check(examples, "train")  # aligned: no error
    bad = {**examples[0], "labels": examples[0]["labels"][:-2] + [7, 7]}
    with pytest.raises(UserError, match="other tokens"):
        store.check([bad], "train")
    with pytest.raises(UserError, match="no teacher top-k"):
        store.check([{**examples[0], "id": "unknown"}], "train")


def test_tokenizers_must_share_the_vocabulary(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    teacher = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    check_same_vocabulary(AutoTokenizer.from_pretrained(tiny_tokenizer_dir), teacher, "same")
    other = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    other.add_tokens(["<extra>"])
    with pytest.raises(UserError, match="shares the teacher's tokenizer"):
        check_same_vocabulary(other, teacher, "other-student")


@pytest.mark.parametrize("train, message", [
    ({"objective": "distil"}, "'train.objective' must be one of ['kd', 'mixed', 'sft']"),
    ({"kd_weight": 1.5}, "'train.kd_weight' is the KD share of the mixed loss, between 0 and 1"),
    ({"kd_temperature": 0}, "'train.kd_temperature' must be positive")])
def test_kd_params_are_checked(tiny_gpt2_dir, train, message):
    from conftest import tiny_params
    from kdscale.config import parse_params

    assert parse_params(tiny_params(tiny_gpt2_dir)).train.objective == "sft"  # the default recipe
    with pytest.raises(UserError, match=re.escape(message)):
        parse_params(tiny_params(tiny_gpt2_dir, train=train))


# ----------------------------------------------------------------------------- the loss

@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_kd_with_k_equal_to_the_vocabulary_is_the_full_kl(temperature):
    torch.manual_seed(0)
    student, teacher = torch.randn(7, 50), torch.randn(7, 50) * 3
    logprobs, indices = torch.log_softmax(teacher, -1).topk(50, -1)
    full = F.kl_div(torch.log_softmax(student / temperature, -1), torch.log_softmax(teacher / temperature, -1),
                    log_target=True, reduction="sum")
    torch.testing.assert_close(kd_loss(student, indices, logprobs, temperature), temperature**2 * full)
    assert kd_loss(teacher, indices, logprobs, temperature).abs() < 1e-4  # a student equal to its teacher


def test_top_k_renormalises_the_teachers_mass():
    """A student that puts the teacher's top-k probabilities, renormalised, on those k tokens: zero loss."""
    teacher = torch.log_softmax(torch.randn(3, 40), -1)
    logprobs, indices = teacher.topk(4, -1)
    student = torch.full((3, 40), -1e4).scatter(-1, indices, logprobs)
    assert kd_loss(student, indices, logprobs, 1.0).abs() < 1e-5
    assert kd_loss(torch.zeros(3, 40), indices, logprobs, 1.0) > 0.1


def batch_with_prompt_and_padding():
    torch.manual_seed(0)
    labels = torch.tensor([[-100, -100, 5, 6, 7, -100], [-100, -100, -100, 3, 4, 2]])  # row 0 right-padded
    logits = torch.randn(2, 6, 10, requires_grad=True)
    teacher_logprobs, teacher_indices = torch.log_softmax(torch.randn(2, 6, 10), -1).topk(3, -1)
    return logits, labels, teacher_indices, teacher_logprobs


@pytest.mark.parametrize("objective", ["kd", "mixed"])
def test_gradient_flows_only_through_answer_tokens(objective):
    logits, labels, indices, logprobs = batch_with_prompt_and_padding()
    objective_loss(logits, labels, indices, logprobs, KDConfig(objective)).backward()
    predicts_answer = torch.zeros(2, 6, dtype=torch.bool)
    predicts_answer[:, :-1] = labels[:, 1:] != -100  # position t predicts label t + 1
    touched = logits.grad.abs().sum(-1) > 0
    assert torch.equal(touched, predicts_answer)


def test_mixed_is_the_weighted_sum_of_kd_and_sft():
    logits, labels, indices, logprobs = batch_with_prompt_and_padding()
    kd = objective_loss(logits, labels, indices, logprobs, KDConfig("kd", temperature=2.0))
    mixed = objective_loss(logits, labels, indices, logprobs, KDConfig("mixed", temperature=2.0, weight=0.3))
    sft = F.cross_entropy(logits[:, :-1].reshape(-1, 10), labels[:, 1:].reshape(-1))  # HF's causal LM loss
    torch.testing.assert_close(mixed, 0.3 * kd + 0.7 * sft)


# ----------------------------------------------------------------------------- the collator

def test_collator_puts_teacher_rows_at_label_positions(store_and_model):
    store, _, tokenizer, records = store_and_model
    examples, _ = tokenize_with_ids(tokenizer, records[:3], 10_000)
    examples[2] = {**examples[2], "input_ids": examples[2]["input_ids"][:-2],  # truncated: first rows only
                   "labels": examples[2]["labels"][:-2]}
    batch = KDCollator(tokenizer.pad_token_id, store=store)(examples)
    plain = CompletionCollator(tokenizer.pad_token_id)(examples)
    assert all(torch.equal(batch[key], plain[key]) for key in plain)  # the SFT part is unchanged
    for row, e in enumerate(examples):
        positions = [i for i, t in enumerate(e["labels"]) if t != -100]
        rows = store.rows(e["id"], len(positions))
        assert torch.equal(batch["teacher_indices"][row, positions], store.indices[rows].long())
        assert batch["teacher_logprobs"][row, :positions[0]].abs().sum() == 0  # the prompt: nothing


def test_build_store_of_no_answers_is_empty():
    store = build_store([], [], [], 20)
    assert store.indices.shape == (0, 20) and store.offsets.tolist() == [0]


# ----------------------------------------------------------------------------- end to end

def test_kd_training_runs_from_the_topk_stage_through_its_subsets_share(tmp_path, tiny_gpt2_dir, monkeypatch):
    from kdscale import tracking

    monkeypatch.setattr(tracking, "log_student_model", lambda *a, **k: None)  # test_train covers it; slow
    records = varied_records(8)
    root = train_project(tmp_path, tiny_gpt2_dir, {8: records},
                         train={"schedule": "steps", "max_steps": 3, "batch_size": 4, "objective": "kd",
                                "kd_temperature": 2.0, "logging_steps": 1, "save_steps": 100},
                         teacher_topk={"k": 4, "batch_size": 8})
    pool = root / "data" / "teacher" / "pool.jsonl"  # train_project wrote the kept answers; add a dropped one
    pool.write_text("".join(json.dumps(r) + "\n" for r in records + [{**record(99, "x", "y"), "dropped": True}]))
    with in_project(root):
        from kdscale.stages import subsets, teacher_topk as stage, train

        loads = []
        real_load = stage.load_model
        monkeypatch.setattr(stage, "load_model", lambda *a, **k: loads.append(k) or real_load(*a, **k))
        stage.main([])
        assert TopkStore.load(root / "data/topk/pool.safetensors").ids == [r["id"] for r in records]
        params = yaml.safe_load((root / "params.yaml").read_text())  # the teacher runs where params say
        assert [(k["device"], k["dtype"]) for k in loads] == [(params.get("device", "auto"), params.get("dtype", "auto"))]
        subsets.main(["--size", "8"])
        assert TopkStore.load(root / "data/subsets/n8.topk.safetensors").ids == [r["id"] for r in records]
        train.main(["--student", STUDENT, "--size", "8"])
    summary = training_log(root, 8)["summary"]
    assert summary["optimizer_steps"] == 3 and 0 < summary["train_loss"] < 100
    (run_,) = runs_of(root, 8)  # the recipe as tags, for the MLflow UI's compare view
    assert {k: v for k, v in run_.data.tags.items() if k.startswith("kdscale.recipe.")} == {
        "kdscale.recipe.objective": "kd", "kdscale.recipe.schedule": "steps", "kdscale.recipe.learning_rate": "0.001",
        "kdscale.recipe.seed": "0"}
    assert run_.data.tags["kdscale.student"] == STUDENT  # the student is the run's own tag, not the recipe's


def test_topk_stage_under_sft_skips_the_teacher_and_kd_then_names_the_stage(tmp_path, tiny_gpt2_dir, monkeypatch):
    from kdscale.stages import subsets, teacher_topk as stage, train

    def no_teacher(*args, **kwargs):
        raise AssertionError("an sft study must not run the teacher's forward pass")

    monkeypatch.setattr(stage, "load_model", no_teacher)
    root = train_project(tmp_path, tiny_gpt2_dir, {8: varied_records(8)},
                         train={"schedule": "steps", "max_steps": 1, "objective": "sft"})
    with in_project(root):
        stage.main([])
        subsets.main(["--size", "8"])
        assert TopkStore.load(root / "data/topk/pool.safetensors").ids == []
        assert json.loads((root / "data/topk/stats.json").read_text())["objective"] == "sft"
        # the store of an sft study, read by kd training: the error says which stage to rerun
        params = yaml.safe_load((root / "params.yaml").read_text())
        params["train"]["objective"] = "kd"
        (root / "params.yaml").write_text(yaml.safe_dump(params))
        with pytest.raises(UserError, match="ran under train.objective: sft.*dvc repro teacher_topk"):
            train.main(["--student", STUDENT, "--size", "8"])


def test_kd_training_without_the_store_names_the_stage(tmp_path, tiny_gpt2_dir):
    root = train_project(tmp_path, tiny_gpt2_dir, {8: varied_records(8)},
                         train={"schedule": "steps", "max_steps": 1, "objective": "kd"})
    with in_project(root), pytest.raises(UserError, match=r"n8.topk.safetensors: not found.*run `dvc repro`"):
        from kdscale.stages import train

        train.main(["--student", STUDENT, "--size", "8"])


def test_kd_from_a_served_teacher_without_logprobs_or_weights_says_what_to_do(tmp_path, tiny_gpt2_dir):
    """A served teacher that returned no log-probs, and no local weights to compute them: one line."""
    root = train_project(tmp_path, tiny_gpt2_dir, {8: varied_records(8)},
                         train={"schedule": "steps", "max_steps": 1, "objective": "kd"})
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["teacher"].update(backend="openai", base_url="http://127.0.0.1:9/v1", served_model="m")
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    for weights in (root / "models" / "teacher").glob("*.safetensors"):
        weights.unlink()  # a big served teacher: only its tokenizer and config are here
    with in_project(root), pytest.raises(UserError, match="served teacher returned none.*vLLM or SGLang"):
        from kdscale.stages import teacher_topk as stage

        stage.main([])
    assert not (root / "data/topk/pool.safetensors").exists()
