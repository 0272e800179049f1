"""Fail fast when the Hugging Face hub is needed but cannot be reached.

Without this, transformers and datasets retry for half a minute before they give up
with a message that does not say what to do instead.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from kdscale.errors import UserError


def hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}:
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        port = url.port or (80 if url.scheme == "http" else 443)
        socket.create_connection((url.hostname, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def in_hf_cache(repo_id: str, repo_type: str) -> bool:
    from huggingface_hub import scan_cache_dir

    try:
        return any(r.repo_id == repo_id and r.repo_type == repo_type for r in scan_cache_dir().repos)
    except Exception:  # no cache folder yet
        return False


def prepare_hub_access(repo_id: str, repo_type: str, key: str) -> None:
    """Go on when the hub is reachable or the repo is cached (then offline); else a one-line error."""
    if hub_reachable():
        return
    if in_hf_cache(repo_id, repo_type):
        os.environ["HF_HUB_OFFLINE"] = "1"  # use the cache without half a minute of retries
        return
    raise UserError(
        f"cannot reach the Hugging Face hub to fetch {repo_type} '{repo_id}' ({key}); "
        f"set {key} to a local path, or use the offline default profile: kdscale profile embedded"
    )
