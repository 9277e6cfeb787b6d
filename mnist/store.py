"""One store for the files kept beside a model: one identity, one file format, one load-or-compute.

Identity. Everything stored for a model is keyed by `digest_model`: a SHA-256 of the loaded model's state
tensors (names, dtypes, shapes, bytes). Not of its weights file: an uploaded model or an ensemble built in
memory has no file of its own, a float16 weights file and the float32 model loaded from it are the same
model, and the digest of a model in memory needs no disk read. What a computation read from the data set
is keyed by `digest_images` of that split; a `StoreKey` holds both.

Format. A stored file is a safetensors file (raw tensors, never unpickled) whose string metadata holds its
format name and version, the key it was computed for (model_digest, data_digest) and extra info as JSON.
It is written atomically (mnist.io.atomic_write_bytes) and at most MAX_STORED_BYTES long. Reading returns
None, never raises, for a file that is missing, too large, damaged, of another format or version, or made
for another model or data set: `load_or_compute` then computes it again and writes it back.

The files computed from a model (COMPUTED_FILES) can be deleted at any time (mnist.disk does to free
space): they are recomputed on demand. A run's insight (mnist.insight) uses the same format but is
recorded during training, so it is not among them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

from .io import atomic_write_bytes

TRAIN_FEATURES_FILE = "train_features.safetensors"  # mnist.neighbours
DIGIT_MAP_FILE = "digit_map.safetensors"  # mnist.digit_map
CALIBRATION_FILE = "verdict.safetensors"  # mnist.verdict
COMPUTED_FILES = (TRAIN_FEATURES_FILE, DIGIT_MAP_FILE, CALIBRATION_FILE)  # recomputed from the model when missing
MAX_STORED_BYTES = 256 * 1024 * 1024  # the largest: 60,000 training features of cnn-bn-fast, 576-D float16 = 69 MB
HEADER_LENGTH_BYTES = 8  # safetensors layout: an 8-byte little-endian header length, then the JSON header
NARROW_FLOATS = (torch.float16, torch.bfloat16)  # weights stored narrower than they are computed in
READ_ERRORS = (OSError, SafetensorError, ValueError, KeyError, TypeError, RuntimeError, OverflowError)
log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class StoreKey:
    """What a stored computation depends on: a change in either makes it stale."""

    model_digest: str  # digest_model
    data_digest: str | None = None  # digest_images of the split it read; None when looking up: any data

    def fits(self, found: StoreKey) -> bool:
        """Whether a file stored under `found` is one this key asks for."""
        same_data = self.data_digest is None or self.data_digest == found.data_digest
        return self.model_digest == found.model_digest and same_data


@dataclass(frozen=True)
class Stored:
    """A stored file's contents: its tensors, the key it was made for and its extra info."""

    tensors: dict[str, torch.Tensor]
    key: StoreKey
    info: dict = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)  # all of it, for formats older than this module


def digest_model(model: nn.Module) -> str:
    """SHA-256 of every state tensor's name, dtype, shape and bytes: equal digests, same model."""
    return digest_state(model.state_dict())


def digest_weights_file(path: Path | str) -> str | None:
    """digest_model of the model a weights file loads as, without building it; None when it cannot be read.

    The loader (mnist.checkpoint) widens float16 and bfloat16 tensors to the float32 the models compute in."""
    try:
        data = read_bytes(path)
        state = None if data is None else load_safetensors_bytes(data)
    except READ_ERRORS:
        return None
    if state is None:
        return None
    return digest_state({name: t.float() if t.dtype in NARROW_FLOATS else t for name, t in state.items()})


def digest_state(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict, in name order."""
    h = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        t = tensor.detach().cpu().contiguous()  # contiguous: a channels-last copy of a model digests the same
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())  # reshape: 0-d tensors cannot be viewed
    return h.hexdigest()


def digest_images(images: torch.Tensor, labels: torch.Tensor) -> str:
    """SHA-256 of a data split (images and labels): a file made from other data is not reused."""
    h = hashlib.sha256()
    for t in (images, labels):
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())  # the tensor's own bytes: no 47 MB copy
    return h.hexdigest()


def encode(stored: Stored, fmt: str, version: int) -> bytes:
    """The safetensors bytes of `stored` as format `fmt`, version `version`."""
    metadata = {
        "format": fmt,
        "format_version": str(version),
        "model_digest": stored.key.model_digest,
        "data_digest": stored.key.data_digest or "",
        "info": json.dumps(stored.info, sort_keys=True),
    }
    contiguous = {name: t.detach().cpu().contiguous() for name, t in stored.tensors.items()}
    return save_safetensors_bytes(contiguous, metadata=metadata)


def decode(data: bytes, fmt: str, version: int) -> Stored:
    """Parse stored bytes; ValueError (or a safetensors error) when they are not format `fmt`, `version`."""
    metadata = read_metadata(data)
    if metadata.get("format") != fmt or metadata.get("format_version") != str(version):
        raise ValueError(f"not a {fmt} file of version {version}")
    info = json.loads(metadata.get("info", "{}"))
    if not isinstance(info, dict):
        raise ValueError("its info is not a mapping")
    key = StoreKey(metadata.get("model_digest", ""), metadata.get("data_digest", ""))
    return Stored(load_safetensors_bytes(data), key, info, metadata)


def read_metadata(data: bytes) -> dict[str, str]:
    """The __metadata__ of safetensors bytes."""
    header_len = int.from_bytes(data[:HEADER_LENGTH_BYTES], "little")
    header = json.loads(data[HEADER_LENGTH_BYTES : HEADER_LENGTH_BYTES + header_len])
    metadata = (header.get("__metadata__") or {}) if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError("metadata is not a mapping")
    return metadata


def write(path: Path | str, stored: Stored, fmt: str, version: int) -> None:
    """Atomically write `stored` to `path` (OSError when the folder cannot be written)."""
    atomic_write_bytes(Path(path), encode(stored, fmt, version))


def read_bytes(path: Path | str) -> bytes | None:
    """A file's bytes, or None when it is missing or larger than MAX_STORED_BYTES (OSError when unreadable)."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size > MAX_STORED_BYTES:
        return None
    return path.read_bytes()


def read(path: Path | str, fmt: str, version: int, key: StoreKey | None = None) -> Stored | None:
    """The file at `path` if it is a valid `fmt` file of `version` made for `key` (None: any key), else None."""
    try:
        data = read_bytes(path)
        stored = None if data is None else decode(data, fmt, version)
    except READ_ERRORS as exc:
        log.warning("ignoring stored file %s: %s", path, exc)
        return None
    if stored is None or (key is not None and not key.fits(stored.key)):
        return None
    return stored


def load_or_compute(
    path: Path | str | None,
    fmt: str,
    version: int,
    key: StoreKey,
    compute: Callable[[], T],
    *,
    to_stored: Callable[[T], Stored],
    from_stored: Callable[[Stored], T | None],
) -> T:
    """The value stored at `path` for `key`, else `compute()`d and stored there.

    from_stored turns a file that fits into the value (None: it does not, e.g. damaged: compute again);
    to_stored turns a computed value into what is written. A folder that cannot be written keeps the value
    in memory only (logged); path None: compute, no file.
    """
    if path is not None:
        found = read(path, fmt, version, key)
        value = from_stored(found) if found is not None else None
        if value is not None:
            return value
    value = compute()
    if path is not None:
        try:
            write(path, to_stored(value), fmt, version)
        except OSError as exc:
            log.warning("%s kept in memory only: cannot write %s (%s)", fmt, path, exc)
    return value
