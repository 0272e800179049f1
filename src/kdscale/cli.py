"""`kdscale <stage>`: the commands dvc.yaml runs, plus `profile` and `ui`.

Input problems (UserError) print one line and exit 2, without a traceback.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time

from kdscale.errors import UserError

STAGES = {"prepare", "teacher_model", "teacher", "teacher_filter", "teacher_topk", "subsets", "student_init", "train",
          "evaluate", "adherence_set", "report"}  # kdscale.stages.<name>
TIMINGS_ENV = "KDSCALE_TIMINGS"  # a file each command appends its seconds to: `kdscale sweep` splits work from overhead
TRACKING_COMMANDS = {"sync": "tracking.sync", "ui": "tracking.ui"}  # the MLflow view; the rest are kdscale.<name>
COMMANDS = {
    "prepare": "split the prompt source into a pool and a held-out set",
    "teacher_model": "materialise the teacher as a safetensors folder",
    "teacher": "generate the teacher's answers (resumable)",
    "teacher_filter": "mark the teacher's bad answers (teacher.filters) without regenerating",
    "teacher_topk": "store the teacher's top-k log-probs per answer token (for train.objective kd)",
    "subsets": "cut nested training subsets from the teacher's answers",
    "student_init": "build a student before training (pruned teacher, scratch or pretrained): --student S",
    "train": "fine-tune one student: kdscale train --student S --size N",
    "evaluate": "evaluate a student (--student S --size N) or the teacher (--teacher)",
    "adherence_set": "answer eval.adherence_set: a student (--student S --size N) or the teacher (--teacher)",
    "report": "summary, scaling curves and the report",
    "sweep": "grow the study round by round until more teacher data stops paying",
    "compare": "compare recipes across DVC experiments: reports/compare.md and compare.png",
    "sync": "fill MLflow from what DVC versions (after dvc pull, a run-cache restore, a crash)",
    "profile": "switch params.yaml to a profile: kdscale profile paper|embedded",
    "ui": "start the MLflow UI on 127.0.0.1 over the project's store",
}


def run(main, argv=None) -> None:
    """Call a stage's main() and turn a UserError into one line on stderr and exit status 2."""
    try:
        main(argv)
    except UserError as e:
        message = " ".join(str(e).split("\n"))  # one line, even when it quotes a library's multi-line error
        print(f"kdscale: error: {message}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("kdscale: interrupted; finished work is kept, run the stage again to resume", file=sys.stderr)
        sys.exit(130)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        lines = [f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()]
        print("usage: kdscale <command> [options]\n\ncommands:\n" + "\n".join(lines),
              file=sys.stdout if argv and argv[0] in {"-h", "--help"} else sys.stderr)
        sys.exit(0 if argv and argv[0] in {"-h", "--help"} else 2)
    module = importlib.import_module(f"kdscale.stages.{argv[0]}" if argv[0] in STAGES else
                                     f"kdscale.{TRACKING_COMMANDS.get(argv[0], argv[0])}")
    start = time.perf_counter()
    run(module.main, argv[1:])
    if os.environ.get(TIMINGS_ENV):
        with open(os.environ[TIMINGS_ENV], "a", encoding="utf-8") as f:
            f.write(json.dumps({"command": argv[0], "seconds": time.perf_counter() - start}) + "\n")


if __name__ == "__main__":
    main()
