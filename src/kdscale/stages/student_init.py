"""Stage `student_init@STUDENT`: a student before any training, as a model folder each of its runs starts from.

- `pruned` (embedded default): the teacher cut to `num_layers` of its layers. The kept layers are
  `keep_layers` when given, else those of highest block influence (ShortGPT) measured on the
  teacher's own answers in the student's prompt format. Embeddings, final norm and the tied head are the
  teacher's, so the student starts from pretrained weights (as Minitron, Sheared-LLaMA and DistilBERT do).
- `scratch`: a small random Llama with the teacher's tokenizer, seeded by `seed`.
- a hub id or a folder: that pretrained model, saved once with the revision it resolved to.

`models/STUDENT/init/` is also the n=0 point of its scaling curve: `train --size 0` trains nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time

from pathlib import Path
from typing import TYPE_CHECKING

from kdscale import paths
from kdscale.config import load_params
from kdscale.errors import UserError
from kdscale.jsonl import read_jsonl
from kdscale.models import PRUNED, SCRATCH, SOURCE_FILE, count_parameters, load_model, load_tokenizer
from kdscale.prompts import build_prompt

if TYPE_CHECKING:
    import torch

CALIBRATION_ANSWERS = 32  # teacher answers that block influence is measured on


def scratch_student(tokenizer, student):
    """A small Llama with the teacher's vocabulary, randomly initialised."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=student.hidden_size,
        intermediate_size=student.intermediate_size,
        num_hidden_layers=student.num_layers,
        num_attention_heads=student.num_heads,
        num_key_value_heads=student.num_heads,
        max_position_embeddings=student.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def decoder_layers(model, key: str = "student") -> tuple[str, torch.nn.ModuleList]:
    """The name and the list of a causal LM's transformer blocks (Llama's `model.layers`, GPT-2's
    `transformer.h`, ...): the ModuleList with one entry per `config.num_hidden_layers`."""
    import torch

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == model.config.num_hidden_layers:
            return name, module
    raise UserError(f"{key}.model: pruned: cannot find the decoder layers of a {type(model).__name__}")


def block_influence(model, tokenizer, texts: list[str], max_length: int = 256) -> list[float]:
    """Block influence of each layer (Men et al. 2024, ShortGPT): 1 - mean cosine similarity between
    the hidden state entering a layer and the one leaving it, over the tokens of `texts`. A layer that
    barely turns its input matters little; pruning keeps the layers with the largest influence."""
    import torch

    _, layers = decoder_layers(model)
    sums = [0.0] * len(layers)
    count = 0
    current_mask = None

    def hook(i):
        def record(module, args, kwargs, output):
            x_in = args[0] if args else kwargs["hidden_states"]
            x_out = output[0] if isinstance(output, tuple) else output
            cos = torch.nn.functional.cosine_similarity(x_in.float(), x_out.float(), dim=-1)
            sums[i] += float(cos[current_mask].sum())
        return record

    handles = [layer.register_forward_hook(hook(i), with_kwargs=True) for i, layer in enumerate(layers)]
    try:
        for text in texts:  # one at a time: no padding to mask out
            enc = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_length).to(model.device)
            current_mask = enc["attention_mask"].bool()
            count += int(current_mask.sum())
            with torch.inference_mode():
                model(**enc)
    finally:
        for handle in handles:
            handle.remove()
    return [1 - s / count for s in sums]


def prune_layers(model, keep: list[int], key: str = "student"):
    """A copy of `model` with only the layers `keep` (in order), renumbered 0..k-1: a fresh config with
    num_hidden_layers = k (so the KV cache and per-layer settings line up), the embeddings, final norm
    and (tied) head copied, each kept layer's weights copied bit for bit."""
    import copy

    import transformers
    n = model.config.num_hidden_layers
    if not keep or len(set(keep)) != len(keep) or min(keep) < 0 or max(keep) >= n:
        raise UserError(f"{key}.keep_layers: {keep} must be distinct layer indices in [0, {n - 1}]")
    keep = sorted(keep)
    config = copy.deepcopy(model.config)
    config.num_hidden_layers = len(keep)
    if getattr(config, "layer_types", None):  # per-layer attention kinds (sliding/full) follow their layers
        config.layer_types = [config.layer_types[i] for i in keep]
    pruned = transformers.AutoModelForCausalLM.from_config(config, dtype=model.dtype)
    prefix, _ = decoder_layers(model, key)
    source = model.state_dict()
    state = {}
    for key in pruned.state_dict():
        if key.startswith(prefix + "."):
            new_index, rest = key[len(prefix) + 1 :].split(".", 1)
            state[key] = source[f"{prefix}.{keep[int(new_index)]}.{rest}"]
        else:
            state[key] = source[key]
    pruned.load_state_dict(state)
    if config.tie_word_embeddings:
        pruned.tie_weights()
    pruned.generation_config = copy.deepcopy(model.generation_config)
    return pruned.eval()


def pruned_student(student, teacher_dir: Path, calibration: list[str], key: str = "student") -> tuple:
    """The teacher cut to `num_layers` layers: `keep_layers` when given, else the layers
    of highest block influence on `calibration` (the teacher's own answers, in the student's prompt format).
    Returns the model, its tokenizer and what was kept."""
    teacher, tokenizer = load_model(str(teacher_dir), "teacher.model")
    keep = sorted(student.keep_layers)
    influence = None
    if not keep:
        if student.num_layers >= teacher.config.num_hidden_layers:
            raise UserError(f"{key}.num_layers is {student.num_layers} but the teacher has only "
                            f"{teacher.config.num_hidden_layers} layers; keep fewer")
        influence = block_influence(teacher, tokenizer, calibration)
        ranked = sorted(range(len(influence)), key=lambda i: -influence[i])
        keep = sorted(ranked[: student.num_layers])
    model = prune_layers(teacher, keep, key)
    return model, tokenizer, {"keep_layers": keep, "teacher_layers": teacher.config.num_hidden_layers,
                              "block_influence": influence}


def initial_student(student, teacher_dir: Path, seed: int, calibration: list[str], key: str = "student") -> tuple:
    """The student before training, its tokenizer and where it came from: the pruned teacher, a
    seeded random Llama with the teacher's tokenizer, or a pretrained model (hub id or folder)."""
    if student.model == PRUNED:
        model, tokenizer, source = pruned_student(student, teacher_dir, calibration, key)
        return model, tokenizer, {"model": PRUNED, **source}
    if student.model == SCRATCH:
        import torch

        tokenizer = load_tokenizer(str(teacher_dir), "teacher.model")
        torch.manual_seed(seed)
        return scratch_student(tokenizer, student), tokenizer, {"model": SCRATCH, "seed": seed}
    model, tokenizer = load_model(student.model, f"{key}.model", student.revision, student.trust_remote_code)
    revision = getattr(model.config, "_commit_hash", None) or student.revision or "local"
    return model, tokenizer, {"model": student.model, "revision": revision}


def calibration_texts(n: int = CALIBRATION_ANSWERS) -> list[str]:
    """The first n kept teacher answers, as the student will see them (Alpaca prompt + answer)."""
    answers = [a for a in read_jsonl(paths.TEACHER_POOL) if not a["dropped"]][:n]
    return [build_prompt(a, "alpaca") + a["response"] for a in answers]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="kdscale student_init", description=__doc__)
    parser.add_argument("--student", required=True, help="a name in params.yaml `students`")
    args = parser.parse_args(argv)
    params = load_params()
    if args.student not in params.students:
        raise UserError(f"--student {args.student} is not in students ({', '.join(params.students)}); add it there")
    student = params.students[args.student]
    start = time.perf_counter()
    calibration = calibration_texts() if student.model == PRUNED else []
    model, tokenizer, source = initial_student(student, paths.TEACHER_DIR, params.seed, calibration,
                                               f"students.{args.student}")
    source["parameters"] = count_parameters(model)

    out = paths.student_init_dir(args.student)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    kept = f", layers {source['keep_layers']} of {source['teacher_layers']}" if "keep_layers" in source else ""
    print(f"student_init: {args.student}: {student.model}{kept}, {source['parameters'] / 1e6:.1f}M parameters -> {out} "
          f"in {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    from kdscale.cli import run

    run(main)
