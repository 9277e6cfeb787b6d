"""Writing files so that a crash never leaves half of one: write beside, fsync, rename over.

Its own module so that writing a cache or a note imports no training code (it used to live in
mnist.checkpoint, which imports the models, the trainer and the ensemble code).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

READABLE = 0o644  # mkstemp makes files owner-only; runs and caches are ordinary readable files


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside path, fsync, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, READABLE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True).encode())
