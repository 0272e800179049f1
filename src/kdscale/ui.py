"""`kdscale ui`: the MLflow UI over the project's tracking store, on 127.0.0.1 by default.

One server worker and no MLflow job runner (GenAI evaluation jobs, which this project does not
use): `mlflow ui`'s defaults start a dozen processes on a 2-core machine, take half a minute to
answer, and leave job consumers running after a SIGTERM. MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true
brings the runner back.
"""

from __future__ import annotations

import argparse
import os
import sys

from kdscale import tracking


def command(host: str, port: int, workers: int = 1) -> list[str]:
    uri = tracking.tracking_uri()
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port),
           "--workers", str(workers)]
    if tracking.artifact_location(uri):
        cmd += ["--default-artifact-root", tracking.artifact_location(uri)]
    return cmd


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="kdscale ui", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1",
                        help="bind address (default 127.0.0.1: the UI has no authentication)")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=1, help="server worker processes (default 1)")
    args = parser.parse_args(argv)
    tracking.setup()  # creates the store and experiment, so the UI opens on them
    cmd = command(args.host, args.port, args.workers)
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    print(f"ui: http://{args.host}:{args.port} over {tracking.tracking_uri()}", flush=True)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    from kdscale.cli import run

    run(main)
