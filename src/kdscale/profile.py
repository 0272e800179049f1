"""`kdscale profile NAME`: switch params.yaml to a packaged profile (embedded or paper).

The profile is validated before params.yaml is replaced; `dvc repro` (or `dvc exp run`)
then runs the study in that setting, and git shows exactly what changed.
"""

from __future__ import annotations

import argparse
from importlib import resources

import yaml

from kdscale.config import PARAMS_FILE, parse_params
from kdscale.errors import UserError
from kdscale.jsonl import atomic_open


def available() -> list[str]:
    folder = resources.files("kdscale") / "profiles"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def profile_text(name: str) -> str:
    if name not in available():
        raise UserError(f"unknown profile '{name}'; choose one of: {', '.join(available())}")
    return (resources.files("kdscale") / "profiles" / f"{name}.yaml").read_text(encoding="utf-8")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="kdscale profile", description=__doc__)
    parser.add_argument("name", help=f"one of: {', '.join(available())}")
    parser.add_argument("--params", default=PARAMS_FILE, help="the params file to write (default: params.yaml)")
    args = parser.parse_args(argv)
    text = profile_text(args.name)
    parse_params(yaml.safe_load(text), f"profile {args.name}")
    with atomic_open(args.params) as f:
        f.write(text)
    print(f"profile: {args.params} is now the '{args.name}' profile; run `dvc repro` or `dvc exp run`")


if __name__ == "__main__":
    from kdscale.cli import run

    run(main)
