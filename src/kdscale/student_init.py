"""Stage `student_init`: the student before any training, as a model folder every size starts from.

- `pruned` (embedded default): the teacher cut to `student.num_layers` of its layers. The kept layers are
  `student.keep_layers` when given, else those of highest block influence (ShortGPT) measured on the
  teacher's own answers in the student's prompt format. Embeddings, final norm and the tied head are the
  teacher's, so the student starts from pretrained weights (as Minitron, Sheared-LLaMA and DistilBERT do).
- `scratch`: a small random Llama with the teacher's tokenizer, seeded by `seed`.
- a hub id or a folder: that pretrained model, saved once with the revision it resolved to.

`models/student-init/` is also the n=0 point of the scaling curve: `train --size 0` trains nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time

from kdscale import paths
from kdscale.config import load_params
from kdscale.jsonl import read_jsonl
from kdscale.models import PRUNED, SOURCE_FILE, count_parameters, initial_student
from kdscale.prompts import build_prompt

CALIBRATION_ANSWERS = 32  # teacher answers that block influence is measured on


def calibration_texts(n: int = CALIBRATION_ANSWERS) -> list[str]:
    """The first n kept teacher answers, as the student will see them (Alpaca prompt + answer)."""
    answers = [a for a in read_jsonl(paths.TEACHER_POOL) if not a["dropped"]][:n]
    return [build_prompt(a, "alpaca") + a["response"] for a in answers]


def main(argv=None) -> None:
    argparse.ArgumentParser(prog="kdscale student_init", description=__doc__).parse_args(argv)
    params = load_params()
    student = params.student
    start = time.perf_counter()
    calibration = calibration_texts() if student.model == PRUNED else []
    model, tokenizer, source = initial_student(student, paths.TEACHER_DIR, params.seed, calibration)
    source["parameters"] = count_parameters(model)

    out = paths.STUDENT_INIT_DIR
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    kept = f", layers {source['keep_layers']} of {source['teacher_layers']}" if "keep_layers" in source else ""
    print(f"student_init: {student.model}{kept}, {source['parameters'] / 1e6:.1f}M parameters -> {out} "
          f"in {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    from kdscale.cli import run

    run(main)
