"""The one prompt template, and the teacher's system turn written into its chat template."""

from __future__ import annotations

from conftest import CHAT_TEMPLATE
from kdscale.models import load_tokenizer, set_system_prompt
from kdscale.prompts import build_prompt


def test_system_prompt_is_the_default_turn_of_the_teachers_template(tiny_tokenizer_dir, tmp_path):
    folder = tmp_path / "teacher"
    load_tokenizer(str(tiny_tokenizer_dir), "t").save_pretrained(folder)
    set_system_prompt(folder, 'Answer briefly, "please".', "teacher.model")
    tokenizer = load_tokenizer(str(folder), "t")
    prompt = build_prompt({"instruction": "Describe the sea.", "input": ""}, "chat", tokenizer)
    assert prompt == ('<|im_start|>system\nAnswer briefly, "please".<|im_end|>\n'
                      "<|im_start|>user\nDescribe the sea.<|im_end|>\n<|im_start|>assistant\n")
    # A conversation that brings its own system turn keeps it.
    own = tokenizer.apply_chat_template([{"role": "system", "content": "Be a pirate."},
                                         {"role": "user", "content": "Hi."}], tokenize=False)
    assert own.startswith("<|im_start|>system\nBe a pirate.<|im_end|>") and "briefly" not in own
    assert tokenizer.chat_template.endswith(CHAT_TEMPLATE)
