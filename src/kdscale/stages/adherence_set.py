"""Stages `adherence_set@STUDENT-N-SEED` and `adherence_set_teacher`: eval.adherence_set, a larger adherence set
(by default the project's 250 prompts across the IFEval families), answered by a student at one of
eval.adherence_set_sizes or by the teacher. 50 prompts resolve a step of about 25 points in pass rate; 250, of
about 12 (docs/metrics.md, "The adherence set"). Greedy answers scored as evaluate scores the 50.
"""

from __future__ import annotations

import argparse
import time

from kdscale import paths
from kdscale.adherence import load_adherence
from kdscale.adherence.answers import answer_and_score
from kdscale.config import load_params
from kdscale.errors import UserError
from kdscale.jsonl import write_json, write_jsonl
from kdscale.models import add_model_arguments, chosen_model, load_model

BUILTIN = "adherence_250.jsonl"  # src/kdscale/assets: eval.adherence_set's default


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="kdscale adherence_set", description=__doc__)
    add_model_arguments(parser)
    args = parser.parse_args(argv)
    params = load_params()
    if args.student and args.size not in params.eval.adherence_set_sizes:
        raise UserError(f"adherence_set: --size must be one of eval.adherence_set_sizes "
                        f"{params.eval.adherence_set_sizes}; got {args.size}")
    chosen, params = chosen_model(params, args, "adherence_set")
    run, model_dir = chosen.run, chosen.folder
    start = time.perf_counter()
    prompts = load_adherence(params.eval.adherence_set or None, BUILTIN, "eval.adherence_set")
    model, tokenizer = load_model(str(model_dir), "model", trust_remote_code=chosen.trust_remote_code,
                                  device=params.device, dtype=params.dtype)
    metrics, samples = answer_and_score(model, tokenizer, prompts, chosen.prompt_format, params.eval)
    who = {} if run is None else {"student": run.student, "size": run.size, "seed": run.seed}
    metrics = who | metrics | {"adherence_set": params.eval.adherence_set or BUILTIN,
                               "eval_seconds": time.perf_counter() - start}
    write_jsonl(paths.adherence_set_samples(run), samples)
    write_json(paths.adherence_set_details(run), metrics)
    print(f"adherence_set: {model_dir}: {metrics['adherence_prompts']} prompts of {metrics['adherence_set']}: pass "
          f"rate {metrics['pass_rate']:.0%} [{metrics['pass_rate_ci_low']:.0%}, {metrics['pass_rate_ci_high']:.0%}], "
          f"{metrics['degenerate_share']:.0%} degenerate")


if __name__ == "__main__":
    from kdscale.cli import run

    run(main)
