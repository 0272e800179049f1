"""`kdscale profile NAME`: write params.yaml for a packaged profile (embedded or paper).

The defaults live once, in the params models (`kdscale.config`), with a description per key. A
profile is a header and the keys it changes (`profiles/<name>.yaml`; the embedded profile, the
default, changes none). params.yaml is rendered from the two, every key with its description, and
validated before it is replaced; `dvc repro` (or `dvc exp run`) then runs the study in that
setting, and git shows exactly what changed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import typing
from importlib import resources

import yaml
from pydantic import BaseModel

from kdscale.config import PARAMS_FILE, Params, parse_params, to_dict
from kdscale.errors import UserError
from kdscale.jsonl import atomic_open

COMMENT_COLUMN = 28  # where a key's description starts, when its line leaves room


def available() -> list[str]:
    folder = resources.files("kdscale") / "profiles"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def _overlay(name: str) -> tuple[list[str], dict]:
    """A profile file's header (its leading comment lines) and the keys it sets."""
    if name not in available():
        raise UserError(f"unknown profile '{name}'; choose one of: {', '.join(available())}")
    text = (resources.files("kdscale") / "profiles" / f"{name}.yaml").read_text(encoding="utf-8")
    header = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    return header, yaml.safe_load(text) or {}


REPLACED = {"students"}  # a profile's students replace the defaults' (not merged in beside them)


def _merge(base: dict, changes: dict) -> dict:
    return {k: _merge(v, changes[k]) if isinstance(v, dict) and k in changes and k not in REPLACED
            else changes.get(k, v) for k, v in base.items()} | {k: v for k, v in changes.items() if k not in base}


def profile_params(name: str) -> dict:
    """The profile's params as params.yaml holds them: the defaults with the profile's changes."""
    _, changes = _overlay(name)
    return to_dict(parse_params(_merge(to_dict(Params()), changes), f"profile {name}"))


def _scalar(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    if isinstance(value, str):  # plain where YAML reads it back as the same string, else quoted
        plain = value and " " not in value and yaml.safe_load(value) == value and not value.startswith(("'", '"'))
        return value if plain else json.dumps(value, ensure_ascii=False)
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()


def _section_model(info) -> type[BaseModel] | None:
    """The model of a section's keys, or of each entry of a mapping of sections (students); None for a value."""
    hint = info.annotation
    if typing.get_origin(hint) is dict:
        hint = typing.get_args(hint)[1]
    return hint if isinstance(hint, type) and issubclass(hint, BaseModel) else None


def _is_section(info) -> bool:
    return _section_model(info) is not None


def _section_lines(model: type[BaseModel], value: dict, indent: str) -> list[str]:
    return [line for sub, sub_info in model.model_fields.items()
            for line in _field_lines(sub, sub_info, value[sub], indent)]


def _field_lines(name: str, info, value, indent: str) -> list[str]:
    """One key (or a section and its keys) with its description beside it, or above a long value."""
    note, model = info.description, _section_model(info)
    if model is not None:
        head = f"{indent}{name}:"
        lines = [f"{head:<{COMMENT_COLUMN}} # {note}" if note else head]
        if typing.get_origin(info.annotation) is dict:  # students: each name, then its keys
            for key, entry in value.items():
                lines += [f"{indent}  {key}:"] + _section_lines(model, entry, indent + "    ")
            return lines
        return lines + _section_lines(model, value, indent + "  ")
    line = f"{indent}{name}: {_scalar(value)}"
    if not note:
        return [line]
    if len(line) < COMMENT_COLUMN:
        return [f"{line:<{COMMENT_COLUMN}} # {note}"]
    if len(line) <= 40:
        return [f"{line}  # {note}"]
    return [f"{indent}# {note}", line]


def render(name: str) -> str:
    """params.yaml for profile `name`."""
    header, _ = _overlay(name)
    return render_values(header, profile_params(name))


def render_values(header: list[str], values: dict) -> str:
    """params.yaml holding `values` (every key of Params): the header's comment lines, then every key with its
    description, a blank line before each section."""
    lines = list(header)
    for field, info in Params.model_fields.items():
        lines += ([""] if _is_section(info) else []) + _field_lines(field, info, values[field], "")
    return "\n".join(lines) + "\n"


def rewrite_params(changes: dict, path: str = PARAMS_FILE) -> None:
    """Set these keys ({section: {key: value}}) in a params file, keeping its header, validated before it is
    replaced: how `kdscale sweep` grows a study."""
    text = open(path, encoding="utf-8").read()
    header = list(itertools.takewhile(lambda line: line.startswith("#"), text.splitlines()))
    values = _merge(to_dict(parse_params(yaml.safe_load(text), path)), changes)
    out = render_values(header, values)
    parse_params(yaml.safe_load(out), path)
    with atomic_open(path) as f:
        f.write(out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="kdscale profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help=f"one of: {', '.join(available())}")
    parser.add_argument("--params", default=PARAMS_FILE, help="the params file to write (default: params.yaml)")
    args = parser.parse_args(argv)
    text = render(args.name)
    parse_params(yaml.safe_load(text), f"profile {args.name}")
    with atomic_open(args.params) as f:
        f.write(text)
    print(f"profile: {args.params} is now the '{args.name}' profile; run `dvc repro` or `dvc exp run`")


if __name__ == "__main__":
    from kdscale.cli import run

    run(main)
