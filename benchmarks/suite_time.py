"""The test suite's time, side by side with another commit: `make test`'s pytest command in this checkout
at --this and at --against, each in a git worktree beside this checkout (so `../shared` is found by both),
on this checkout's virtual environment, one after the other:

    python benchmarks/suite_time.py [--this HEAD] [--against 7bbe853] [--runs 1]

Prints each side's pytest seconds (median over --runs), their ratio, the tests each side ran, and the
tests only this side has with their summed seconds (from `--durations=0`). A run takes as long as
`make test` (about 12 minutes on 2 cores): run it alone, nothing else on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DURATION = re.compile(r"^([\d.]+)s (call|setup|teardown)\s+(\S+)")
SUMMARY = re.compile(r"(\d+) passed")


def worktree(rev: str, where: Path) -> Path:
    """`rev`'s files at `where`, a git worktree (some tests read the checkout's git)."""
    subprocess.run(["git", "worktree", "remove", "--force", str(where)], cwd=ROOT, capture_output=True)
    shutil.rmtree(where, ignore_errors=True)
    subprocess.run(["git", "worktree", "add", "--detach", "-f", str(where), rev], cwd=ROOT, check=True,
                   capture_output=True)
    return where


def run_suite(folder: Path) -> tuple[float, int, dict[str, float]]:
    """pytest seconds, tests passed, and each test's seconds (setup + call + teardown)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(folder / "src"),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "worksteal", "--durations=0",
                          "-p", "no:cacheprovider"], cwd=folder, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if run.returncode != 0:  # timed all the same: a failing test ends no sooner than a passing one
        failed = [line for line in run.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
        print(f"suite_time: {len(failed)} tests failed in {folder}:\n" + "\n".join(failed), flush=True)
    per_test: dict[str, float] = {}
    for line in run.stdout.splitlines():
        if m := DURATION.match(line):
            per_test[m[3]] = per_test.get(m[3], 0.0) + float(m[1])
    passed = SUMMARY.search(run.stdout.splitlines()[-1])
    return seconds, int(passed[1]) if passed else 0, per_test


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--this", default="HEAD", help="the git revision measured (commit your changes first)")
    parser.add_argument("--against", default="7bbe853", help="a git revision to compare with")
    parser.add_argument("--runs", type=int, default=1, help="runs of each side, alternating")
    args = parser.parse_args()
    sides = {"this": worktree(args.this, ROOT.parent / "suite-time-this"),
             "against": worktree(args.against, ROOT.parent / "suite-time-against")}
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    passed, per_test = {}, {}
    try:
        for _ in range(args.runs):
            for name, folder in sides.items():
                s, passed[name], per_test[name] = run_suite(folder)
                seconds[name].append(s)
                print(f"{name}: {s:.0f} s, {passed[name]} passed", flush=True)
    finally:
        for folder in sides.values():
            subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=ROOT)
    this, against = (statistics.median(seconds[n]) for n in ("this", "against"))
    new = {t: s for t, s in per_test["this"].items() if t not in per_test["against"]}
    print(f"\npytest seconds (median of {args.runs}): this {this:.0f}, {args.against} {against:.0f}, "
          f"ratio {this / against:.3f}")
    print(f"tests: this {passed['this']}, {args.against} {passed['against']}; "
          f"{len(new)} only here, {sum(new.values()):.1f} s of test time in all (both workers)")
    for test, s in sorted(new.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {s:6.2f} s  {test}")
    print(json.dumps({"against": args.against, "runs": args.runs, "seconds": seconds, "passed": passed,
                      "new_tests_seconds": sum(new.values())}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
