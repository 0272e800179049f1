"""Stage `subsets@N`: the first N kept teacher answers, in the pool's order, and their top-k log-probs.

The pool's order is prepare's seeded split (data.split_seed), and growing data.pool_size only
appends to it: each smaller subset is a prefix of the larger ones (nested), and a study that grows
(`kdscale sweep`) keeps every existing subset byte-identical, so no trained size reruns. A replicate
seed (scaling.replicate_seeds) trains on the same subset: it varies the data order and, for a
scratch student, the initial weights; not which answers are drawn.
"""

from __future__ import annotations

import argparse

from kdscale import paths
from kdscale.config import check_size, load_params, suggested_pool_size
from kdscale.errors import UserError
from kdscale.jsonl import read_jsonl, write_jsonl
from kdscale.topk import TopkStore


def nested_order(answers: list[dict]) -> list[dict]:
    """The kept answers in pool order: a change of teacher.filters moves only the answers it drops or
    restores, and a larger pool only adds answers after the existing ones."""
    return [a for a in answers if not a["dropped"]]


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
    size = parser.parse_args(argv).size
    params = load_params()
    check_size(params, size)
    answers = read_jsonl(paths.TEACHER_POOL)
    kept = nested_order(answers)
    check_enough(len(kept), len(answers), max(params.scaling.sizes))
    subset = kept[:size]
    write_jsonl(paths.subset_file(size), subset)
    # Training reads only its own answers' top-k, so a grown pool (a longer store) retrains nothing.
    TopkStore.load(paths.TOPK_FILE).subset([a["id"] for a in subset]).save(paths.subset_topk(size))
    print(f"subsets: {paths.subset_file(size)} with {size} of {len(kept)} kept answers")


if __name__ == "__main__":
    from kdscale.cli import run

    run(main)
