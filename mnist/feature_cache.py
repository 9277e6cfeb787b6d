"""Files of arrays computed from a model (digit map, training features): safetensors, keyed, never trusted.

A cache file is a safetensors file (raw tensors, never unpickled) whose string metadata holds its format
name and version and the `CacheKey` it was computed for: the model's weights digest and the data's digest.
It is written atomically (mnist.io.atomic_write_bytes). Reading returns None, never raises, for a file
that is missing, too large, damaged, of another format or version, or made for another model or data
set: the caller recomputes it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from .io import atomic_write_bytes

MAX_CACHE_BYTES = 256 * 1024 * 1024  # the largest: 60,000 training features of cnn-bn-fast, 576-D float16 = 69 MB
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheKey:
    """What a cached computation depends on: a change in either invalidates it."""

    model_digest: str  # inside.digest_model
    data_digest: str  # inside.digest_images of the split the computation read


def write_cache(path: Path, tensors: dict[str, torch.Tensor], fmt: str, version: int, key: CacheKey, **info) -> None:
    """Atomically write tensors with their format, version, key and extra info (JSON-encoded) as metadata."""
    metadata = {
        "format": fmt,
        "format_version": str(version),
        "model_digest": key.model_digest,
        "data_digest": key.data_digest,
        "info": json.dumps(info, sort_keys=True),
    }
    contiguous = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    atomic_write_bytes(Path(path), save_safetensors_bytes(contiguous, metadata=metadata))


def read_cache(
    path: Path, fmt: str, version: int, key: CacheKey | None
) -> tuple[dict[str, torch.Tensor], CacheKey, dict] | None:
    """(tensors, key, info) of a valid file of this format and version made for `key` (None: any key), or None."""
    path = Path(path)
    try:
        if not path.is_file() or path.stat().st_size > MAX_CACHE_BYTES:
            return None
        data = path.read_bytes()
        tensors = load_safetensors_bytes(data)
        metadata = _metadata(data)
        found = CacheKey(metadata["model_digest"], metadata["data_digest"])
        info = json.loads(metadata.get("info", "{}"))
        same_format = metadata.get("format") == fmt and metadata.get("format_version") == str(version)
    except (OSError, SafetensorError, ValueError, KeyError, TypeError, RuntimeError, OverflowError) as exc:
        log.warning("ignoring damaged cache file %s: %s", path, exc)
        return None
    if not same_format or (key is not None and found != key) or not isinstance(info, dict):
        return None
    return tensors, found, info


def _metadata(data: bytes) -> dict[str, str]:
    """The __metadata__ of safetensors bytes (layout: 8-byte little-endian header length, JSON header)."""
    header_len = int.from_bytes(data[:8], "little")
    metadata = json.loads(data[8 : 8 + header_len]).get("__metadata__") or {}
    if not isinstance(metadata, dict):
        raise ValueError("metadata is not a mapping")
    return metadata
