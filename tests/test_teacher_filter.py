"""Stage teacher_filter: each filter and its switch, answers marked rather than deleted."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kdscale.config import FilterParams
from kdscale.stages.teacher_filter import answer_records, drop_reason, has_template_leak, is_echo, is_empty
from kdscale.text import is_repetitive

# ----------------------------------------------------------------------------- filters

LOOP = "the cat sat on the mat " * 5
VARIED = "The sea covers most of the planet and holds many kinds of fish, whales and coral reefs."


def test_is_empty():
    assert is_empty("") and is_empty("  \n\t ") and is_empty(" ... !? ")
    assert not is_empty("Paris.") and not is_empty("42")


def test_is_echo():
    asked = "Describe the sea."
    assert is_echo("Describe the sea.", asked)
    assert is_echo("describe the SEA: it is blue", asked)  # restates, then goes on
    assert not is_echo(VARIED, asked)
    assert not is_echo("The sea, described.", asked)
    assert not is_echo("anything", "")  # nothing asked, nothing echoed


def test_has_template_leak():
    assert has_template_leak("Blue.\n### Instruction:\nName a colour.")
    assert has_template_leak("Blue.<|im_end|>")
    assert not has_template_leak("Blue. Use # for headings in Markdown.")


def test_is_repetitive():
    assert is_repetitive(LOOP, 4, 0.5)
    assert not is_repetitive(VARIED, 4, 0.5)
    assert not is_repetitive("yes yes yes yes yes", 4, 0.5)  # too short to judge
    assert not is_repetitive(LOOP, 4, 0.9)  # the threshold is a parameter


def answer(response: str, finish_reason: str = "eos", instruction: str = "Describe the sea.") -> dict:
    return {"instruction": instruction, "input": "", "response": response, "finish_reason": finish_reason}


# One answer that trips exactly one filter, per switch.
TRIPS = {
    "empty": answer(" ... "),
    "echo": answer("Describe the sea."),
    "template_leak": answer("Blue.\n### Instruction: next"),
    "repetition": answer(LOOP),
    "truncated": answer(VARIED, finish_reason="length"),
}


@pytest.mark.parametrize("reason", sorted(TRIPS))
def test_drop_reason_each_filter_and_its_switch(reason):
    on = FilterParams(truncated="drop")
    assert drop_reason(TRIPS[reason], on) == reason
    off = FilterParams(truncated="drop", **{reason: False}) if reason != "truncated" else FilterParams(truncated="keep")
    assert drop_reason(TRIPS[reason], off) is None


def test_drop_reason_keeps_good_answers():
    on = FilterParams(truncated="drop")
    assert drop_reason(answer(VARIED), on) is None
    assert drop_reason(answer(VARIED, "stop"), on) is None  # a stop string is a proper end
    assert drop_reason(answer(VARIED, "length"), FilterParams()) is None  # truncated: keep is the default


def test_answer_records_mark_instead_of_delete():
    rows = [{"response": r["response"], "finish_reason": r["finish_reason"], "n_tokens": 3} for r in TRIPS.values()]
    records = [{"id": str(i), "instruction": r["instruction"], "input": ""} for i, r in enumerate(TRIPS.values())]
    out = answer_records(records, rows, FilterParams(truncated="drop"))
    assert [a["id"] for a in out] == [r["id"] for r in records]
    assert [a["drop_reason"] for a in out] == list(TRIPS)
    assert all(a["dropped"] for a in out)


def test_the_stage_imports_no_torch():
    """The filter stage reruns whenever a filter changes; torch and transformers would add seconds to each run."""
    code = "import sys, kdscale.stages.teacher_filter; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
