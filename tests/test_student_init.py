"""student_init: the depth-pruned student keeps the teacher's layers bit for bit, renumbers them so
the KV cache works, and chooses layers by block influence."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml

from kdscale import paths
from kdscale.config import StudentParams
from kdscale.errors import UserError
from kdscale.models import load_tokenizer
from kdscale.stages.student_init import block_influence, decoder_layers, prune_layers, pruned_student


def randomise_norms(model) -> None:
    """Every norm's weights (and biases) distinct random values, in place."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name or ".ln_" in name:
                param.copy_(torch.rand_like(param) + 0.5)


def norms(model) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if "norm" in k or "ln_" in k}


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory, tiny_tokenizer_dir):
    """A random 6-layer Llama with tied embeddings: the embedded teacher's architecture in miniature.
    Its norms (final and per layer) get distinct random weights: initialised all ones, a student
    that kept fresh norms instead of the teacher's would look identical."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = load_tokenizer(str(tiny_tokenizer_dir), "tokenizer")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=6,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config).eval()
    randomise_norms(model)
    folder = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, model, tokenizer


def test_pruned_layers_are_the_teachers_bit_for_bit(tiny_llama):
    _, teacher, _ = tiny_llama
    keep = [0, 3, 5]
    student = prune_layers(teacher, keep)
    assert student.config.num_hidden_layers == 3 and teacher.config.num_hidden_layers == 6
    _, teacher_layers = decoder_layers(teacher)
    _, student_layers = decoder_layers(student)
    for new, old in enumerate(keep):
        a, b = student_layers[new].state_dict(), teacher_layers[old].state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert student_layers[new].self_attn.layer_idx == new  # renumbered: each layer gets its own cache slot
    assert torch.equal(student.get_input_embeddings().weight, teacher.get_input_embeddings().weight)
    assert torch.equal(student.model.norm.weight, teacher.model.norm.weight)
    assert not torch.equal(teacher.model.norm.weight, torch.ones_like(teacher.model.norm.weight))  # not the init
    teacher_norms = norms(teacher)
    for key, value in norms(student).items():  # the final norm and each kept layer's two norms
        layer = key.split(".")[2] if key.startswith("model.layers.") else None
        source = key if layer is None else key.replace(f"layers.{layer}.", f"layers.{keep[int(layer)]}.", 1)
        assert torch.equal(value, teacher_norms[source]), key
    assert len(norms(student)) == 1 + 2 * len(keep)
    assert student.get_output_embeddings().weight.data_ptr() == student.get_input_embeddings().weight.data_ptr()


def test_keeping_every_layer_gives_the_teacher(tiny_llama):
    _, teacher, tokenizer = tiny_llama
    student = prune_layers(teacher, list(range(6)))
    ids = tokenizer(["Describe the sea."], return_tensors="pt")
    with torch.inference_mode():
        assert torch.equal(student(**ids).logits, teacher(**ids).logits)


def test_pruned_student_generates_with_a_kv_cache(tiny_llama, tmp_path):
    _, teacher, tokenizer = tiny_llama
    student = prune_layers(teacher, [1, 4])
    student.save_pretrained(tmp_path)  # a plain transformers folder: evaluation and serving load it as is
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids = tokenizer(["Describe the sea."], return_tensors="pt")
    args = dict(max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    with_cache = reloaded.generate(**ids, use_cache=True, **args)
    without = reloaded.generate(**ids, use_cache=False, **args)
    assert with_cache.shape[1] == ids["input_ids"].shape[1] + 12
    assert torch.equal(with_cache, without)


def test_gpt2_layers_are_found_too(tiny_gpt2_dir):
    from kdscale.models import load_model

    teacher, _ = load_model(str(tiny_gpt2_dir), "teacher")
    randomise_norms(teacher)  # GPT-2's layer norms start at weight 1, bias 0
    student = prune_layers(teacher, [1])
    assert student.config.n_layer == 1
    assert torch.equal(student.transformer.h[0].mlp.c_fc.weight, teacher.transformer.h[1].mlp.c_fc.weight)
    for part in ("weight", "bias"):  # the final norm and the kept layer's norms are the teacher's
        assert torch.equal(getattr(student.transformer.ln_f, part), getattr(teacher.transformer.ln_f, part))
        for ln in ("ln_1", "ln_2"):
            assert torch.equal(getattr(getattr(student.transformer.h[0], ln), part),
                               getattr(getattr(teacher.transformer.h[1], ln), part))


def test_block_influence_picks_the_layers_that_turn_the_hidden_state(tiny_llama):
    _, teacher, tokenizer = tiny_llama
    _, layers = decoder_layers(teacher)
    with torch.no_grad():  # layer 2 becomes an identity: its influence must be the lowest
        layers[2].self_attn.o_proj.weight.zero_()
        layers[2].mlp.down_proj.weight.zero_()
    influence = block_influence(teacher, tokenizer, ["Describe the sea.", "Name a colour and a tree."])
    assert len(influence) == 6
    assert influence[2] == pytest.approx(0.0, abs=1e-6)
    assert min(range(6), key=influence.__getitem__) == 2


def test_pruned_student_by_influence_or_by_list(tiny_llama):
    folder, teacher, _ = tiny_llama
    texts = ["Describe the sea.", "Name a colour."]
    model, _, source = pruned_student(StudentParams(model="pruned", num_layers=2), folder, texts)
    assert len(source["keep_layers"]) == 2 and len(source["block_influence"]) == 6
    assert torch.equal(model.model.norm.weight, teacher.model.norm.weight)  # read from the folder, not fresh
    ranked = sorted(range(6), key=lambda i: -source["block_influence"][i])
    assert source["keep_layers"] == sorted(ranked[:2])
    _, _, source = pruned_student(StudentParams(model="pruned", keep_layers=[5, 0]), folder, texts)
    assert source["keep_layers"] == [0, 5] and source["block_influence"] is None
    # the messages start with the key; student_init's main() puts `params.yaml: students.<name>.` before it
    with pytest.raises(UserError, match=r"^student.keep_layers: \[0, 6\] must be distinct layer indices in \[0, 5\]"):
        pruned_student(StudentParams(model="pruned", keep_layers=[0, 6]), folder, texts)
    with pytest.raises(UserError, match="^student.num_layers is 6 but the teacher has only 6 layers"):
        pruned_student(StudentParams(model="pruned", num_layers=6), folder, texts)


def test_each_student_is_built_alone_and_its_errors_name_its_section(tiny_llama, tmp_path, monkeypatch):
    """`kdscale student_init --student S` builds S into models/S/init and nothing else; an error in S's
    section names its key in params.yaml, students.S.<key>; a name not in `students` lists those that are."""
    from transformers import AutoModelForCausalLM

    from kdscale.stages import student_init

    folder, _, _ = tiny_llama
    shutil.copytree(folder, tmp_path / paths.TEACHER_DIR)
    answers = [{"id": f"a{i}", "instruction": f"Describe thing {i}.", "input": "", "response": "It is small.",
                "dropped": False} for i in range(3)]
    (tmp_path / paths.TEACHER_POOL).parent.mkdir(parents=True)
    (tmp_path / paths.TEACHER_POOL).write_text("".join(json.dumps(a) + "\n" for a in answers))
    students = {"kept": {"model": "pruned", "keep_layers": [4, 1]}, "deep": {"model": "pruned", "num_layers": 6}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"students": students}, sort_keys=False))
    monkeypatch.chdir(tmp_path)

    student_init.main(["--student", "kept"])
    model = AutoModelForCausalLM.from_pretrained(tmp_path / paths.student_init_dir("kept"))
    assert paths.student_init_dir("kept").as_posix() == "models/kept/init"
    assert model.config.num_hidden_layers == 2
    with pytest.raises(UserError) as e:
        student_init.main(["--student", "deep"])
    assert str(e.value) == "students.deep.num_layers is 6 but the teacher has only 6 layers; keep fewer"
    with pytest.raises(UserError, match=r"^--student nobody is not in students \(kept, deep\)"):
        student_init.main(["--student", "nobody"])
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["kept", "teacher"]
    assert [p.name for p in (tmp_path / "models/kept").iterdir()] == ["init"]
