"""Nearest training images to a drawing, in the model's penultimate-feature space.

`build_neighbour_index(model, data)` computes the penultimate features of the 60,000 training images once
per model (110 s on one thread of a busy 2-core machine for the bundled model: bench/inside.py);
`index.nearest(f)` then finds the NEIGHBOURS training images whose features are closest (Euclidean) to a
drawing's features `f` (inside.inspect_drawing(...).features). Exact search: one matrix-vector product over
60,000 x D ranks every image by |x|^2 - 2 x.f, the best CANDIDATE_FACTOR x k of them get their distances
computed directly, and those decide the order (the product's rounding could only matter if it exceeded
the gap between the k-th and the 4k-th neighbour; tests/test_inside.py checks the result against brute force).

Features are kept at float16 precision (3 significant digits), in memory as float32: a freshly built index
and one read back from its file are the same. Memory: 60,000 x D x 4 bytes (31 MB for the bundled model's
128 features; 138 MB for cnn-bn-fast's 576).

File: train_features.safetensors (a mnist.store file keyed by the model's weights and the training set):
features (N, D) float16 (float32 if a value exceeds float16's range), labels (N,) uint8.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .constants import NUM_CLASSES
from .data import MnistData
from .errors import MnistError
from .inside import Progress, extract_features
from .machine import background_threads
from .predict import single_thread
from .store import TRAIN_FEATURES_FILE, Stored, StoreKey, digest_images, digest_model, load_or_compute, read, write

TRAIN_FEATURES_FORMAT = "mnist-studio-train-features"
TRAIN_FEATURES_VERSION = 1
NEIGHBOURS = 8  # training images shown for a drawing
CANDIDATE_FACTOR = 4  # candidates taken by the fast distance formula, per neighbour asked for, then re-ranked
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Neighbour:
    index: int  # into data.train_images
    label: int  # its true digit
    distance: float  # Euclidean distance between its features and the drawing's


@dataclass(frozen=True)
class NeighbourIndex:
    """Penultimate features of the training images, searchable. Read-only: safe to share between threads."""

    features: torch.Tensor  # (N, D) float32, float16-precision values; held column-major (below)
    labels: np.ndarray  # (N,) int64
    key: StoreKey  # the model and training set it was computed for
    squared_norms: torch.Tensor = field(init=False, repr=False)  # (N,) float32

    def __post_init__(self) -> None:
        # Column-major (each feature's N values contiguous): the one-query product below ran 3.5x faster
        # than over rows for 128 features and 2x for 576 (one thread, an AVX2 EPYC), in the same memory.
        object.__setattr__(self, "features", self.features.t().contiguous().t())
        object.__setattr__(self, "squared_norms", (self.features * self.features).sum(1))

    def __len__(self) -> int:
        return len(self.features)

    def nearest(self, features: np.ndarray, k: int = NEIGHBOURS) -> list[Neighbour]:
        """The k training images nearest to one drawing's features (D,), nearest first."""
        q = torch.as_tensor(np.asarray(features, np.float32)).flatten()
        if q.shape[0] != self.features.shape[1]:
            raise MnistError(f"features have {q.shape[0]} values; this index holds {self.features.shape[1]}")
        k = min(k, len(self))
        with single_thread():  # one query: a second thread costs more than it saves on a busy machine
            # |x - q|^2 = |x|^2 - 2 x.q + |q|^2; |q|^2 is the same for every x, so it is left out of the ranking.
            scores = self.squared_norms - 2 * (self.features @ q)
            candidates = scores.topk(min(len(self), k * CANDIDATE_FACTOR), largest=False).indices
            # The formula loses digits to cancellation: the candidates' distances are computed directly.
            exact = (self.features[candidates] - q).pow(2).sum(1).sqrt()
            order = exact.argsort(stable=True)[:k]
        return [Neighbour(int(candidates[i]), int(self.labels[candidates[i]]), float(exact[i])) for i in order.tolist()]


def at_float16_precision(features: torch.Tensor) -> torch.Tensor:
    """Features rounded to float16 (as stored) and held as float32; unrounded if float16 cannot hold them."""
    half = features.half()
    return half.float() if torch.isfinite(half).all() else features.float()


def build_neighbour_index(
    model: nn.Module,
    data: MnistData,
    *,
    limit: int | None = None,
    threads: int | None = None,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
) -> NeighbourIndex:
    """Features of the training images (the first `limit`; None: all 60,000). Thread-safe like
    inside.extract_features; threads default to half the cores."""
    images, labels = data.train_images[:limit], data.train_labels[:limit]
    features = extract_features(model, images, threads=threads or background_threads(), stop=stop, progress=progress)
    key = neighbour_index_key(model, data, limit)
    return NeighbourIndex(at_float16_precision(torch.from_numpy(features)), labels.long().numpy(), key)


def neighbour_index_key(model: nn.Module, data: MnistData, limit: int | None = None) -> StoreKey:
    return StoreKey(digest_model(model), digest_images(data.train_images[:limit], data.train_labels[:limit]))


def neighbour_index_stored(index: NeighbourIndex) -> Stored:
    """What the file holds: float16 features when they fit (else float32) and uint8 labels."""
    half = index.features.half()
    features = half if torch.isfinite(half).all() else index.features
    return Stored({"features": features, "labels": torch.from_numpy(index.labels).to(torch.uint8)}, index.key)


def neighbour_index_from_stored(stored: Stored) -> NeighbourIndex | None:
    """The index in a stored file, or None (logged) when its tensors are damaged."""
    features, labels = stored.tensors.get("features"), stored.tensors.get("labels")
    valid = (
        features is not None
        and labels is not None
        and features.dim() == 2
        and labels.shape == (len(features),)
        and len(features) > 0
        and torch.isfinite(features.float()).all()
        and int(labels.max()) < NUM_CLASSES
    )
    if not valid:
        log.warning("ignoring damaged training features")
        return None
    return NeighbourIndex(features.float(), labels.long().numpy(), stored.key)


def save_neighbour_index(index: NeighbourIndex, path: Path | str) -> None:
    """Write the index atomically (float16 features when they fit)."""
    write(path, neighbour_index_stored(index), TRAIN_FEATURES_FORMAT, TRAIN_FEATURES_VERSION)


def load_neighbour_index(path: Path | str, key: StoreKey | None = None) -> NeighbourIndex | None:
    """The index stored at `path` if valid and made for `key` (None: any), else None."""
    found = read(path, TRAIN_FEATURES_FORMAT, TRAIN_FEATURES_VERSION, key)
    return None if found is None else neighbour_index_from_stored(found)


def load_or_build_neighbour_index(
    model: nn.Module, data: MnistData, folder: Path | str | None, **options
) -> NeighbourIndex:
    """folder/train_features.safetensors if it fits the model and data, else built (build_neighbour_index's
    options) and saved there when the folder can be written; folder None: build, no file."""
    return load_or_compute(
        Path(folder) / TRAIN_FEATURES_FILE if folder is not None else None,
        TRAIN_FEATURES_FORMAT,
        TRAIN_FEATURES_VERSION,
        neighbour_index_key(model, data, options.get("limit")),
        lambda: build_neighbour_index(model, data, **options),
        to_stored=neighbour_index_stored,
        from_stored=neighbour_index_from_stored,
    )
