"""Prompt sources: the built-in pool, a local Alpaca-schema file, or a hub dataset.

Every source becomes a list of prompt records {id, instruction, input[, reference]}
with the same validation, so the rest of the study never looks at where they came from.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from kdscale.errors import UserError
from kdscale.jsonl import read_jsonl
from kdscale.prompts import prompt_id

BUILTIN = "builtin"
LOCAL_SUFFIXES = {".json", ".jsonl", ".parquet"}


def builtin_path() -> Path:
    return Path(str(resources.files("kdscale") / "assets" / "builtin_prompts.jsonl"))


def looks_local(source: str) -> bool:
    return Path(source).suffix in LOCAL_SUFFIXES or source.startswith((".", "/", "~")) or Path(source).exists()


def _read_local(path: Path) -> list[dict]:
    if not path.is_file():
        raise UserError(f"data.source: file not found: {path}; give an existing .json/.jsonl/.parquet or 'builtin'")
    if path.suffix == ".jsonl":
        return read_jsonl(path)
    if path.suffix == ".json":
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise UserError(f"{path}: not UTF-8 text; re-save the file as UTF-8") from None
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{e.lineno}: malformed JSON ({e.msg}); fix the file") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise UserError(f"{path}: expected a JSON array of objects with 'instruction', 'input', 'output'")
        return rows
    if path.suffix == ".parquet":
        import datasets
        from datasets.utils import logging as datasets_logging

        verbosity = datasets_logging.get_verbosity()
        datasets_logging.set_verbosity(datasets_logging.CRITICAL)  # its own log line would repeat ours
        try:
            return datasets.Dataset.from_parquet(str(path)).to_list()
        except Exception as e:  # pyarrow raises several types for a broken file
            raise UserError(f"{path}: cannot read as Parquet ({e}); check the file") from None
        finally:
            datasets_logging.set_verbosity(verbosity)
    raise UserError(f"data.source: unsupported file type {path.suffix!r}; use .json, .jsonl or .parquet")


def _read_hub(dataset_id: str) -> list[dict]:
    from kdscale.hub import prepare_hub_access

    prepare_hub_access(dataset_id, "dataset", "data.source")
    import datasets

    try:
        return datasets.load_dataset(dataset_id, split="train").to_list()
    except Exception as e:
        raise UserError(f"data.source: cannot load hub dataset '{dataset_id}' ({type(e).__name__}: {e}); "
                        f"use a local .json/.jsonl/.parquet or data.source: builtin") from None


def to_prompt(row: dict, where: str) -> dict:
    instruction = row.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        raise UserError(f"{where}: no 'instruction' (or it is empty); give every record one, or remove the record")
    input = row.get("input") or ""
    if not isinstance(input, str):
        raise UserError(f"{where}: 'input' must be a string; use \"\" or leave it out when there is none")
    record = {"id": prompt_id(instruction, input), "instruction": instruction.strip(), "input": input.strip()}
    output = row.get("output")
    if isinstance(output, str) and output.strip():
        record["reference"] = output.strip()
    return record


def load_prompts(source: str, max_records: int = 0) -> tuple[list[dict], int]:
    """Read a source into prompt records, deduplicated by id in source order.

    Returns the records and how many duplicates were dropped.
    """
    if source == BUILTIN:
        rows, where = read_jsonl(builtin_path()), "builtin"
    elif looks_local(source):
        path = Path(source).expanduser()
        rows, where = _read_local(path), str(path)
    else:
        rows, where = _read_hub(source), source
    if max_records:
        rows = rows[:max_records]
    seen, records = set(), []
    for i, row in enumerate(rows, start=1):
        record = to_prompt(row, f"{where}: record {i}")
        if record["id"] in seen:
            continue
        seen.add(record["id"])
        records.append(record)
    if not records:
        raise UserError(f"{where}: no prompt records; the source must hold Alpaca-schema records")
    return records, len(rows) - len(records)
