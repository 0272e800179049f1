"""Stage `teacher_model`: the teacher as a safetensors folder that DVC versions.

The embedded GGUF is dequantised once here (about 40 s) instead of in every stage;
a hub id is saved with the revision it resolved to, so later stages are pinned.
"""

from __future__ import annotations

import argparse
import time

from kdscale import paths
from kdscale.config import load_params
from kdscale.models import materialize


def main(argv=None) -> None:
    argparse.ArgumentParser(prog="kdscale teacher_model", description=__doc__).parse_args(argv)
    teacher = load_params().teacher
    start = time.perf_counter()
    source = materialize(teacher.model, "teacher.model", paths.TEACHER_DIR, teacher.revision,
                         teacher.trust_remote_code, teacher.system_prompt)
    print(f"teacher_model: {teacher.model} -> {paths.TEACHER_DIR} in {time.perf_counter() - start:.1f}s ({source})")


if __name__ == "__main__":
    from kdscale.cli import run

    run(main)
