"""Scoring: a prompt passes strictly if every check passes on the raw response, and loosely if every
check passes on at least one of IFEval's loose variants of it (first or last line dropped, `*` removed),
which forgives chatty preambles and markdown."""

from __future__ import annotations

from kdscale.adherence.checks import CHECKS


def loose_variants(response):
    """IFEval's loose variants: drop first line / last line / both, each also with `*` removed."""
    lines = response.split("\n")
    base = [
        response,
        "\n".join(lines[1:]).strip(),
        "\n".join(lines[:-1]).strip(),
        "\n".join(lines[1:-1]).strip(),
    ]
    variants = base + [v.replace("*", "") for v in base]
    return list(dict.fromkeys(variants))  # dedupe, keep order


def _run_check(check, response):
    args = {k: v for k, v in check.items() if k != "type"}
    return CHECKS[check["type"]](response, **args)


def evaluate_response(checks, response):
    """Score one response against a prompt's checks, strictly and loosely."""
    variants = loose_variants(response)
    results = []
    for check in checks:
        strict = _run_check(check, response)
        # the raw response is variants[0], so strict implies loose
        loose = strict or any(_run_check(check, v) for v in variants[1:])
        results.append({"type": check["type"], "strict": strict, "loose": loose})
    return {
        "strict": all(r["strict"] for r in results),
        "loose": all(r["loose"] for r in results),
        "checks": results,
    }


def type_counts(prompts):
    """How many prompts use each check type (a prompt with two checks of one type counts once)."""
    counts = {}
    for prompt in prompts:
        for kind in dict.fromkeys(c["type"] for c in prompt["checks"]):
            counts[kind] = counts.get(kind, 0) + 1
    return counts
