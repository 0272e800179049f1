"""A sweep round's overhead: its time outside the stages' own work, as a share of the round.

`kdscale sweep` times each round's DVC calls and, through KDSCALE_TIMINGS, every `kdscale`
command those run (their main() alone). Work is the stages that train, evaluate and generate;
overhead is the rest of the round: DVC's own bookkeeping, process starts and imports, the report
and the MLflow sync. The target (issue 36): at most 10% of a round at sizes >= 320.

    python benchmarks/sweep_overhead.py                                  # the committed embedded sweep
    python benchmarks/sweep_overhead.py studies/embedded-sweep/reports/sweep.json

Run the sweep alone on the machine: a second heavy process slows the work and the overhead unevenly.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from kdscale.records import SweepRecord

DEFAULT = Path(__file__).resolve().parents[1] / "studies/embedded-sweep/reports/sweep.json"
TARGET = 0.10
FROM_SIZE = 320


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("record", nargs="?", type=Path, default=DEFAULT)
    args = parser.parse_args(argv)
    record = SweepRecord.read(args.record)
    print(f"{'round':>5} {'kind':>7} {'adds':>7} {'wall s':>8} {'work s':>8} {'overhead s':>10} {'share':>6}")
    shares = []
    for r in record.rounds:
        m = r.measured
        if not m:
            continue
        print(f"{r.round:>5} {r.kind:>7} {r.size or '-':>7} {m['wall_seconds']:>8.0f} {m['work_seconds']:>8.0f} "
              f"{m['overhead_seconds']:>10.1f} {m['overhead_share']:>6.1%}")
        if r.kind == "grow" and r.size >= FROM_SIZE:
            shares.append(m["overhead_share"])
    if shares:
        print(f"rounds adding n >= {FROM_SIZE}: overhead median {statistics.median(shares):.1%}, max {max(shares):.1%} "
              f"over {len(shares)} round(s); target <= {TARGET:.0%}: "
              f"{'met' if max(shares) <= TARGET else 'NOT met'}")
    else:
        print(f"no measured round adds n >= {FROM_SIZE}")


if __name__ == "__main__":
    main()
