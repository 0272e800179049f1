"""Stage `subsets@N`: the first N kept teacher answers, in an order fixed by `seed`.

Every size reads the same seeded order, so each smaller subset is a prefix of the
larger ones (nested), and sweeping `seed` draws new nested subsets without
regenerating the teacher's answers. `--seed S` writes a replicate's subset (`nN-seedS.jsonl`),
nested within that seed's own order.
"""

from __future__ import annotations

import argparse
import math
import random

from kdscale import paths
from kdscale.config import check_replicate, load_params
from kdscale.errors import UserError
from kdscale.jsonl import read_jsonl, write_jsonl


def nested_order(answers: list[dict], seed: int) -> list[dict]:
    """The kept answers in an order drawn over the whole pool, so that a change of teacher.filters
    moves only the answers it drops or restores; every other answer keeps its place in every subset."""
    order = list(answers)
    random.Random(seed).shuffle(order)
    return [a for a in order if not a["dropped"]]


def suggested_pool_size(largest: int, kept: int, answered: int, margin: float = 1.1) -> int:
    """The pool that leaves `largest` answers after the measured drop rate, with 10% to spare."""
    return math.ceil(largest / max(kept / answered, 1e-3) * margin)


def check_enough(kept: int, answered: int, largest: int) -> None:
    """Every size is checked against the largest, so the first subsets stage to run fails,
    before any training, rather than the last one after hours of it."""
    if kept < largest:
        raise UserError(
            f"subsets: only {kept} of {answered} teacher answers survived the filters but scaling.sizes asks for "
            f"up to {largest}; raise data.pool_size to about {suggested_pool_size(largest, kept, answered)} "
            f"(answers already generated are reused) or relax teacher.filters (see {paths.TEACHER_METRICS})"
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="kdscale subsets", description=__doc__)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--seed", type=int, help="a replicate seed (scaling.replicate_seeds) instead of `seed`")
    args = parser.parse_args(argv)
    size = args.size
    params = check_replicate(load_params(), size, args.seed)
    answers = read_jsonl(paths.TEACHER_POOL)
    kept = nested_order(answers, params.seed)
    check_enough(len(kept), len(answers), max(params.scaling.sizes))
    out = paths.subset_file(size, args.seed)
    write_jsonl(out, kept[:size])
    print(f"subsets: {out} with {size} of {len(kept)} kept answers")


if __name__ == "__main__":
    from kdscale.cli import run

    run(main)
