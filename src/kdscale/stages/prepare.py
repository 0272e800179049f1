"""Stage `prepare`: read the prompt source, deduplicate, split a seeded pool and held-out set.

The pool's order is the order in which nested subsets take their prefixes; the
held-out prompts never reach training and score perplexity. Prompts of the
adherence set are excluded from both, so evaluation never tests on training data.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from kdscale import paths
from kdscale.adherence import load_adherence
from kdscale.config import load_params
from kdscale.errors import UserError
from kdscale.jsonl import write_json, write_jsonl
from kdscale.prompts import prompt_id
from kdscale.sources import load_prompts


def split_prompts(records: list[dict], pool_size: int, heldout_size: int, seed: int) -> tuple[list, list]:
    """A seeded shuffle: the first `heldout_size` are held out, the pool takes the rest in order.

    The draw is scikit-learn's `train_test_split(shuffle=True, random_state=seed)` (a RandomState
    permutation, test indices first), written out because importing sklearn costs this stage 1.4 s;
    tests/test_inputs.py checks that the two agree."""
    order = np.random.RandomState(seed).permutation(len(records))
    heldout = [records[i] for i in order[:heldout_size]]
    rest = [records[i] for i in order[heldout_size:]]
    return rest[:pool_size], heldout


def main(argv=None) -> None:
    argparse.ArgumentParser(prog="kdscale prepare", description=__doc__).parse_args(argv)
    params = load_params()
    data = params.data
    adherence = load_adherence(params.eval.adherence_file or None)
    records, duplicates = load_prompts(data.source, data.max_source_records)
    adherence_ids = {prompt_id(r["instruction"], r.get("input", "")) for r in adherence}
    records = [r for r in records if r["id"] not in adherence_ids]
    needed = data.pool_size + data.heldout_size
    if len(records) < needed:
        raise UserError(
            f"data.source '{data.source}' has {len(records)} distinct prompts but data.pool_size + "
            f"data.heldout_size = {needed}; lower them (and scaling.sizes) or use a larger source"
        )
    if duplicates:
        print(f"prepare: warning: {data.source} has {duplicates} duplicate records (same instruction and input); "
              f"kept the first of each (counted in {paths.PREPARE_STATS})", file=sys.stderr)
    pool, heldout = split_prompts(records, data.pool_size, data.heldout_size, data.split_seed)
    write_jsonl(paths.POOL_PROMPTS, pool)
    write_jsonl(paths.HELDOUT_PROMPTS, heldout)
    stats = {"source": data.source, "distinct_prompts": len(records), "duplicates_dropped": duplicates,
             "pool": len(pool), "heldout": len(heldout),
             "with_input": sum(bool(r["input"]) for r in pool + heldout),
             "with_reference": sum("reference" in r for r in pool + heldout)}
    write_json(paths.PREPARE_STATS, stats)
    print(f"prepare: {len(pool)} pool + {len(heldout)} held-out prompts from {data.source} "
          f"({len(records)} distinct, {duplicates} duplicates dropped)")


if __name__ == "__main__":
    from kdscale.cli import run

    run(main)
