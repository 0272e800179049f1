"""Where this checkout is: its repository root (where the MLflow store lives) and the pipeline's folder in it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def git(*args: str, cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def project_root() -> Path:
    """The DVC project's root (where the MLflow store lives): DVC_ROOT under DVC (in a queued experiment's temporary
    copy DVC points it at the real one), else the nearest folder up from here that holds .dvc/ (a study made with
    `dvc init --subdir` is a project of its own), else git's top level, else the working directory."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).expanduser().resolve()
    return dvc_root(Path.cwd().resolve()) or toplevel(Path.cwd()) or Path.cwd().resolve()


def dvc_root(cwd: Path) -> Path | None:
    return next((folder for folder in [cwd, *cwd.parents] if (folder / ".dvc").is_dir()), None)


def toplevel(cwd: Path) -> Path | None:
    """git's top level from `cwd`, or None outside a repository."""
    top = git("rev-parse", "--show-toplevel", cwd=cwd)
    return Path(top).resolve() if top else None


def pipeline_folder() -> str:
    """The folder of the pipeline run from here, relative to its checkout's root, with a trailing slash
    ("" at the root, "studies/reference/" there). The checkout is git's top level from here: a queued
    experiment's temporary copy is a checkout of its own, whatever DVC_ROOT says."""
    cwd = Path.cwd().resolve()
    try:
        folder = cwd.relative_to(toplevel(cwd) or project_root()).as_posix()
    except ValueError:
        return ""
    return "" if folder == "." or not (cwd / "dvc.yaml").is_file() else folder + "/"


def dvc_folder() -> str:
    """The pipeline's folder relative to its DVC project (the nearest folder up from here that holds .dvc/), with a
    trailing slash: how `dvc exp show` names its files. "" at the root and in a study that is a DVC project of its
    own (studies/embedded-sweep); "studies/x/" for a pipeline folder inside the root project."""
    cwd = Path.cwd().resolve()
    root = dvc_root(cwd)
    if root is None:
        return pipeline_folder()
    inside = cwd.relative_to(root).as_posix()
    return "" if inside == "." else inside + "/"
