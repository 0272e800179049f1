"""The one prompt template of the study (Alpaca's), and prompt ids.

Teacher generation (format `alpaca`), student training and evaluation all build
their prompts here, so a student is always asked exactly what it was trained on.
"""

from __future__ import annotations

import hashlib
import json

from kdscale.errors import UserError

ALPACA_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)
# Where a base model runs on past its answer into the next example.
ALPACA_STOP_STRINGS = ["### Instruction:", "### Input:", "### Response:"]


def alpaca_prompt(instruction: str, input: str = "") -> str:
    if input.strip():
        return ALPACA_WITH_INPUT.format(instruction=instruction.strip(), input=input.strip())
    return ALPACA_NO_INPUT.format(instruction=instruction.strip())


def user_turn(instruction: str, input: str = "") -> str:
    """The request as a chat's user turn: the instruction, then the input after a blank line."""
    return instruction.strip() + (f"\n\n{input.strip()}" if input.strip() else "")


def chat_prompt(tokenizer, instruction: str, input: str = "") -> str:
    """The same request as one user turn, through the tokenizer's chat template."""
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": user_turn(instruction, input)}], tokenize=False, add_generation_prompt=True
    )


def with_system_prompt(chat_template: str, system: str) -> str:
    """A chat template whose conversations start with `system` unless they bring their own system turn.

    Set once on the teacher's folder (stage teacher_model), so every prompt built from it (teacher
    answers, the teacher's evaluation) carries the same instruction."""
    literal = json.dumps(system)  # a valid Jinja string literal
    prefix = ("{%- if messages and messages[0]['role'] != 'system' -%}"
              f"{{%- set messages = [{{'role': 'system', 'content': {literal}}}] + messages -%}}"
              "{%- endif -%}")
    return prefix + chat_template


def build_prompt(record: dict, prompt_format: str = "alpaca", tokenizer=None) -> str:
    if prompt_format == "alpaca":
        return alpaca_prompt(record["instruction"], record.get("input", ""))
    if prompt_format == "chat":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise UserError("teacher.prompt_format is 'chat' but the teacher's tokenizer has no chat template; "
                            "set teacher.prompt_format: alpaca")
        return chat_prompt(tokenizer, record["instruction"], record.get("input", ""))
    raise ValueError(f"unknown prompt format {prompt_format!r}")


def stop_strings(prompt_format: str) -> list[str]:
    return ALPACA_STOP_STRINGS if prompt_format == "alpaca" else []


def prompt_id(instruction: str, input: str = "") -> str:
    """A stable id: the same instruction and input give the same id on every machine."""
    key = instruction.strip() + "\x1f" + input.strip()
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]
