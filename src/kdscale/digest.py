"""md5 digests of data files and folders, as `dvc.lock` records them: what a stage's fingerprint and
an MLflow run's key are made of, without importing MLflow."""

from __future__ import annotations

import hashlib
from pathlib import Path


def md5_file(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def data_md5(paths: list[Path]) -> str:
    """md5 of files and folders. A file: its md5 (as `dvc.lock` has it). A folder: md5 of its
    sorted "relative path<TAB>file md5" lines. Several paths: md5 of their md5s, in order."""
    digests = []
    for path in map(Path, paths):
        if path.is_dir():
            lines = sorted(f"{p.relative_to(path).as_posix()}\t{md5_file(p)}\n"
                           for p in path.rglob("*") if p.is_file())
            digests.append(hashlib.md5("".join(lines).encode()).hexdigest())
        elif path.is_file():
            digests.append(md5_file(path))
        else:
            raise FileNotFoundError(f"data to tag not found: {path}")
    if len(digests) == 1:
        return digests[0]
    return hashlib.md5("\n".join(digests).encode()).hexdigest()
