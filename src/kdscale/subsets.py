"""Stage `subsets@N`: the first N kept teacher answers, in an order fixed by `seed`.

Every size reads the same seeded order, so each smaller subset is a prefix of the
larger ones (nested), and sweeping `seed` draws new nested subsets without
regenerating the teacher's answers.
"""

from __future__ import annotations

import argparse
import random

from kdscale import paths
from kdscale.config import check_size, load_params
from kdscale.errors import UserError
from kdscale.jsonl import read_jsonl, write_jsonl


def nested_order(answers: list[dict], seed: int) -> list[dict]:
    kept = [a for a in answers if not a["dropped"]]
    random.Random(seed).shuffle(kept)
    return kept


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="kdscale subsets", description=__doc__)
    parser.add_argument("--size", type=int, required=True)
    size = parser.parse_args(argv).size
    params = load_params()
    check_size(params, size)
    kept = nested_order(read_jsonl(paths.TEACHER_POOL), params.seed)
    if len(kept) < size:
        raise UserError(
            f"subsets: only {len(kept)} teacher answers survived the filters but scaling.sizes asks for {size}; "
            f"raise data.pool_size or relax teacher.filters (see {paths.TEACHER_METRICS})"
        )
    write_jsonl(paths.subset_file(size), kept[:size])
    print(f"subsets: {paths.subset_file(size)} with {size} of {len(kept)} kept answers")


if __name__ == "__main__":
    from kdscale.cli import run

    run(main)
