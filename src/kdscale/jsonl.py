"""JSON and JSON Lines files: strict reading with line numbers, atomic writing.

Outputs are written to a temporary name in the same folder and renamed into place,
so an interrupted stage never leaves a half-written file that looks valid.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from kdscale.errors import UserError


def iter_jsonl(path: str | Path, name: str | None = None) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; errors name `name` (default: the path) and the line."""
    path = Path(path)
    name = name or str(path)
    if not path.is_file():
        raise UserError(f"{name}: file not found; check the path")
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise UserError(f"{name}:{lineno}: not UTF-8 text; re-save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{name}:{lineno}: malformed JSON ({e.msg}); fix or remove that line") from None
            if not isinstance(record, dict):
                raise UserError(f"{name}:{lineno}: expected a JSON object, got {type(record).__name__}")
            yield lineno, record


def read_jsonl(path: str | Path) -> list[dict]:
    return [record for _, record in iter_jsonl(path)]


def read_json(path: str | Path):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found; check the path")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; re-save the file as UTF-8") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: malformed JSON ({e.msg}); fix the file") from None


@contextmanager
def atomic_open(path: str | Path, mode: str = "w"):
    """Open a temporary file beside `path`; on success fsync and rename it into place."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise UserError(f"{path.parent}: cannot write {path.name} there ({e.strerror}); "
                        f"remove whatever blocks that folder or make it writable") from None
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes files owner-only; outputs are ordinary files
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: str | Path, records) -> None:
    with atomic_open(path) as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def write_json(path: str | Path, obj) -> None:
    with atomic_open(path) as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")
