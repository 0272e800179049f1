"""`kdscale ui`: the MLflow UI over the project's tracking store, on 127.0.0.1 by default.

One server worker and no MLflow job runner (GenAI evaluation jobs, which this project does not
use): `mlflow ui`'s defaults start a dozen processes on a 2-core machine, take half a minute to
answer, and leave job consumers running after a SIGTERM. MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true
brings the runner back.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from kdscale import tracking


def command(host: str, port: int, workers: int = 1) -> list[str]:
    uri = tracking.tracking_uri()
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port),
           "--workers", str(workers)]
    if tracking.artifact_location(uri):
        cmd += ["--default-artifact-root", tracking.artifact_location(uri)]
    return cmd


def runs_url(host: str, port: int, experiment_id: str) -> str:
    """The experiment's training runs: where a researcher starts, not MLflow's home page."""
    return f"http://{host}:{port}/#/experiments/{experiment_id}/runs"


# waits for the server, then opens the page; a child of its own, since the server replaces this process
OPENER = """import sys, time, urllib.request, webbrowser
for _ in range(120):
    try:
        urllib.request.urlopen(sys.argv[1], timeout=2).close()
        break
    except OSError:
        time.sleep(0.5)
webbrowser.open(sys.argv[2])
"""


def open_when_up(host: str, port: int, url: str) -> bool:
    """Open `url` in a browser once the server answers, where this session has a screen to show it on."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or sys.platform in ("darwin", "win32")):
        return False
    subprocess.Popen([sys.executable, "-c", OPENER, f"http://{host}:{port}/health", url], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return True


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="kdscale ui", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1",
                        help="bind address (default 127.0.0.1: the UI has no authentication)")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=1, help="server worker processes (default 1)")
    args = parser.parse_args(argv)
    experiment_id = tracking.setup()  # creates the store and experiment, so the UI opens on them
    cmd = command(args.host, args.port, args.workers)
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    url = runs_url(args.host, args.port, experiment_id)
    opened = " (opening it in your browser)" if open_when_up(args.host, args.port, url) else ""
    print(f"ui: the training runs at {url}{opened}; the store is {tracking.tracking_uri()}", flush=True)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    from kdscale.cli import run

    run(main)
