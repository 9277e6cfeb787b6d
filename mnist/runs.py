"""The runs folder: the saved runs in it (list_runs), a run's curves (load_history) and its weights file for
download, and the changes a visitor makes to it (delete_run, rename_run), each atomic.

A run folder is written by mnist.checkpoint (save_run, save_ensemble), which also names and places it
(check_run_name, run_path, default_runs_dir).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

from safetensors import SafetensorError, safe_open

from .checkpoint import (
    HISTORY_FILE,
    MAX_CHECKPOINT_BYTES,
    MAX_JSON_BYTES,
    META_FILE,
    WEIGHTS_FILE,
    default_runs_dir,
    encode_weights,
    load_checkpoint,
    read_limited,
    run_path,
)
from .errors import CheckpointError
from .io import atomic_write_bytes, atomic_write_json
from .records import ModelRef, RunRecord
from .train import History


@dataclass(frozen=True)
class SavedRun:
    """A run folder on disk and its parsed description; its history is read on demand (load_history)."""

    name: str  # the folder's name
    path: Path
    record: RunRecord

    @property
    def ref(self) -> ModelRef:
        return ModelRef.run(self.name)


def list_runs(runs_dir: Path | str | None = None) -> list[SavedRun]:
    """Saved runs, newest first. Damaged folders are skipped with a warning, hidden ones ignored."""
    runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    if not runs_dir.is_dir():
        return []
    runs = []
    for path in sorted(runs_dir.iterdir(), reverse=True):
        if path.name.startswith(".") or not path.is_dir():
            continue
        try:
            record = RunRecord.parse(read_limited(path / META_FILE, MAX_JSON_BYTES), str(path / META_FILE))
            check_weights_file(path / WEIGHTS_FILE)
        except CheckpointError as exc:
            warnings.warn(f"skipping damaged run folder: {exc}", stacklevel=2)
            continue
        runs.append(SavedRun(path.name, path, record))
    runs.sort(key=lambda r: r.record.created, reverse=True)  # ISO 8601 text sorts by time
    return runs


def check_weights_file(path: Path) -> None:
    """Cheap structural check of a safetensors file (header and size, no tensor read): catches truncation."""
    if not path.is_file():
        raise CheckpointError(f"{path.parent}: {WEIGHTS_FILE} is missing")
    try:
        with safe_open(str(path), framework="pt"):
            pass
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a valid safetensors file ({exc})") from None


def load_history(run_dir: Path) -> History:
    """The run's curves; a missing or damaged history.json reads as what it still holds (often nothing)."""
    try:
        values = json.loads((Path(run_dir) / HISTORY_FILE).read_text())
    except (OSError, ValueError, RecursionError):
        return History()
    return History.from_dict(values)


def delete_run(runs_dir: Path | str, name: str) -> None:
    """Remove a run folder: renamed to a hidden name first, so a crash mid-delete hides it."""
    path = run_path(Path(runs_dir), name)
    if not path.is_dir():
        raise CheckpointError(f"no run named {name!r}")
    trash = path.with_name(f".deleted-{name}-{secrets.token_hex(2)}")
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def rename_run(runs_dir: Path | str, name: str, new_name: str) -> Path:
    """Give a run a new name: its folder and the name in its description (meta.json and the weights' header).

    The renamed copy is built under a hidden name and renamed into place, then the old folder is removed,
    so a crash leaves either the old run or the new one visible, never half of one.
    """
    old, new = run_path(Path(runs_dir), name), run_path(Path(runs_dir), new_name)
    if not old.is_dir():
        raise CheckpointError(f"no run named {name!r}")
    if new.exists():
        raise CheckpointError(f"a run named {new_name!r} already exists; choose another name")
    checkpoint = load_checkpoint(old)
    record = replace(checkpoint.record, name=new_name)
    tmp = Path(tempfile.mkdtemp(dir=old.parent, prefix=f".{new_name}."))
    try:
        tmp.chmod(0o755)
        atomic_write_bytes(tmp / WEIGHTS_FILE, encode_weights(checkpoint.model, record))
        atomic_write_json(tmp / META_FILE, record.to_dict())
        for extra in old.iterdir():  # history.json, insight and files computed from the model come along
            if extra.name not in (WEIGHTS_FILE, META_FILE) and not extra.name.startswith(".") and extra.is_file():
                shutil.copy2(extra, tmp / extra.name)
        os.replace(tmp, new)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    delete_run(runs_dir, name)
    return new


def checkpoint_file_bytes(run_dir: Path) -> bytes:
    """The run's model.safetensors (its JSON embedded), for download."""
    return read_limited(Path(run_dir) / WEIGHTS_FILE, MAX_CHECKPOINT_BYTES)
