"""The Docker engine bench/hosting.py drives: the CLI, a dockerd started when none answers, image facts."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from bench.harness import stop_process

DOCKERD_STOP_TIMEOUT_S = 30  # the engine stops its containers first
DOCKERD_LOG = Path("/tmp/dockerd.log")
# Debian's docker.io CLI (20.10) has BuildKit built in; a newer CLI on PATH needs the buildx plugin,
# which bookworm does not package (docker-buildx is in trixie and later).
DEBIAN_DOCKER_CLI = Path("/usr/bin/docker")
MB = 1024 * 1024  # Docker reports sizes in bytes; the reports show MiB
DOCKERD_START_TIMEOUT_S = 60.0
BUILD_TIMEOUT_S = 3600.0
COMMAND_TIMEOUT_S = 600.0


def docker_cli() -> str:
    return str(DEBIAN_DOCKER_CLI) if DEBIAN_DOCKER_CLI.is_file() else (shutil.which("docker") or "docker")


def docker(*args: str, timeout: float = COMMAND_TIMEOUT_S, check: bool = True, **kwargs) -> str:
    done = subprocess.run([docker_cli(), *args], capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


def engine_answers() -> bool:
    try:
        return subprocess.run([docker_cli(), "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextlib.contextmanager
def docker_engine() -> Iterator[str]:
    """An answering engine: the running one, else a dockerd started here (and stopped on exit)."""
    if engine_answers():
        yield "already running"
        return
    with DOCKERD_LOG.open("ab") as log:
        dockerd = subprocess.Popen(["dockerd", "--bridge=none", "--iptables=false"], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + DOCKERD_START_TIMEOUT_S
        while not engine_answers():
            if dockerd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not start (see {DOCKERD_LOG})")
            time.sleep(1)
        yield f"started here (pid {dockerd.pid}, log {DOCKERD_LOG})"
    finally:
        stop_process(dockerd, timeout_s=DOCKERD_STOP_TIMEOUT_S)


def buildx_status() -> str:
    done = subprocess.run([docker_cli(), "buildx", "version"], capture_output=True, text=True, timeout=20)
    if done.returncode == 0:
        return done.stdout.strip()
    return "not installed (bookworm has no docker-buildx package); BuildKit is the CLI's built-in one"


def image_inspect(image: str) -> dict | None:
    text = docker("image", "inspect", image, check=False)
    items = json.loads(text) if text.strip() else []
    return items[0] if items else None
