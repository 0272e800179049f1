"""How long each stage process takes before its first work, side by side with another commit:

  for each stage module, the import time in a fresh `python -c "import kdscale.<stage>"` (what `kdscale <stage>` runs
  before main()), --repeats times, alternating between this checkout and --against (a git revision,
  checked out in a temporary worktree); prints the median seconds of each, their ratio, and whether
  the stage imports torch and MLflow.

    python benchmarks/stage_startup.py [--against fb54ff7] [--repeats 5]

Warm runs: one unmeasured import of each first, so both sides read from the page cache. Time it
alone: other processes on the same cores move these numbers by seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

STAGES = ["prepare", "teacher_model", "teacher", "teacher_filter", "teacher_topk", "subsets", "student_init",
          "train", "evaluate", "report", "sync", "compare"]
PROBE = ("import sys, time; t = time.perf_counter(); import {module}; "
         "print(time.perf_counter() - t, 'torch' in sys.modules, 'mlflow' in sys.modules)")


def startup(src: Path, stage: str) -> tuple[float, bool, bool] | None:
    """Seconds to import the stage (after the interpreter is up), and whether torch and MLflow came with it."""
    places = [f"kdscale.{package}.{stage}" for package in ("stages", "tracking")
              if (src / "kdscale" / package / f"{stage}.py").is_file()]
    module = places[0] if places else f"kdscale.{stage}"  # where the module is at that revision
    run = subprocess.run([sys.executable, "-c", PROBE.format(module=module)], capture_output=True, text=True,
                         env={"PYTHONPATH": str(src), "PATH": "", "OMP_NUM_THREADS": "1"})
    if run.returncode != 0:
        return None  # the stage does not exist at that revision
    seconds, torch, mlflow = run.stdout.split()
    return float(seconds), torch == "True", mlflow == "True"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", default="fb54ff7", help="a git revision to compare with")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp) / "other"
        subprocess.run(["git", "worktree", "add", "--detach", str(other), args.against], cwd=root, check=True,
                       capture_output=True)
        try:
            sides = {"this": root / "src", args.against: other / "src"}
            for src in sides.values():
                for stage in STAGES:
                    startup(src, stage)  # warm the page cache
            times = {name: {s: [] for s in STAGES} for name in sides}
            flags = {name: {} for name in sides}
            for _ in range(args.repeats):
                for stage in STAGES:
                    for name, src in sides.items():
                        got = startup(src, stage)
                        if got:
                            times[name][stage].append(got[0])
                            flags[name][stage] = got[1:]
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=root, capture_output=True)
    print(f"{'stage':15s} {'this (s)':>9s} {args.against + ' (s)':>14s} {'ratio':>6s}  imports here")
    rows = {}
    for stage in STAGES:
        here, there = times["this"][stage], times[args.against][stage]
        a = statistics.median(here) if here else None
        b = statistics.median(there) if there else None
        torch, mlflow = flags["this"].get(stage, (None, None))
        imports = ", ".join(n for n, on in (("torch", torch), ("mlflow", mlflow)) if on) or "neither"
        ratio = f"{b / a:5.2f}x" if a and b else "     -"
        print(f"{stage:15s} {a or float('nan'):9.2f} {b or float('nan'):14.2f} {ratio}  {imports}")
        rows[stage] = {"this_s": a, "against_s": b, "torch": torch, "mlflow": mlflow}
    print(json.dumps({"against": args.against, "repeats": args.repeats, "stages": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
