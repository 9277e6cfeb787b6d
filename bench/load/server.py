"""The server the load test drives: its runs folder and data, its log's errors, loopback addresses only."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlsplit

from bench import benchlib

SERVER_LOG = benchlib.RESULTS_DIR / "load-server.log"


def server_env(runs: Path) -> dict[str, str]:
    """A temporary runs folder (seeded with a model when the bundled one is missing) and the data."""
    path, _description = benchlib.checkpoint_path()
    if path is not None:
        shutil.copytree(path, runs / path.name)
    return {"MNIST_DATA_DIR": str(benchlib.data_dir()), "MNIST_RUNS_DIR": str(runs)}


def server_log_errors(text: str) -> list[str]:
    """Tracebacks and errors the server logged (the line and the exception's line)."""
    found, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback") or " ERROR " in line or line.startswith("Exception"):
            tail = [ln for ln in lines[i + 1 : i + 40] if ln and not ln[0].isspace()][:1]
            found.append(" ".join([line, *tail]))
    return found


def check_loopback(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost") or not parts.port:
        raise SystemExit(f"--url must be http://127.0.0.1:PORT (loopback only), got {url!r}")
    return f"http://127.0.0.1:{parts.port}"
