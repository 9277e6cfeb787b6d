"""The digit map: the 10,000 MNIST test images laid out in 2-D by how the model sees them.

Each test image's penultimate features (the input of the model's last linear layer, inside.extract_features)
are laid out in 2-D so that images the model finds alike sit together; each point carries its true label,
the model's prediction (mistakes: `DigitMap.mistakes`) and confidence.

Method: a neighbour-graph embedding (UMAP's recipe in plain torch, mnist.layout), not PCA or t-SNE:

- It separates what the model separates. On the bundled model, a test point's 10 nearest map neighbours
  share its label 99.3% of the time, against 82% for PCA, whose 2-D shadow of a 128-D space piles
  several digits onto each other (bench/inside.py measures both).
- Speed on 2 busy cores: 28 s for the bundled model's 10,000 points on one thread, 17 s of it the feature
  pass and 11 s the layout (bench/inside.py, with other work keeping both cores busy), within the 60 s
  budget. Exact t-SNE is O(N^2) per iteration (10,000^2 pairs x 1,000 iterations: minutes); Barnes-Hut
  t-SNE and UMAP are not in torch, and umap-learn would be a new dependency bringing numba (whose first
  compile alone costs tens of seconds), pynndescent and scikit-learn, for what 100 lines of torch do.
- Stable: deterministic for a seed and thread count, started from a sign-fixed PCA layout so the same
  model always gives the same picture.
- A new drawing is placed from its nearest neighbours in feature space (`DigitMap.place`): the
  inverse-distance-weighted mean position of its PLACE_NEIGHBOURS nearest test images, found among the
  test features reduced by PCA to PLACE_DIMS dimensions (which keeps the file under 1 MB). A test image
  placed that way from its nearest *other* test images lands a median 1.1% of the map's spread from its
  own point (bench/inside.py). A drawing between two digits lands between their clusters. The "pca"
  method is offered too; it places by its own transform.

File: digit_map.safetensors beside the model (a run folder; mnist/assets/default-model ships the bundled
model's), a mnist.store file keyed by the model's weights and the test set: tensors coords (N, 2)
float32, labels and predictions (N,) uint8, confidences (N,) float16, reference (N, P) float16, mean (D,)
and components (P, D) float32; info: method, seed, epochs, seconds. A damaged, stale or foreign file
reads as None and `load_or_compute_digit_map` recomputes it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from .constants import NUM_CLASSES
from .data import MnistData
from .errors import MnistError
from .inside import Progress, features_and_probabilities
from .layout import LAYOUT_EPOCHS, embed_neighbour_graph, pca_basis
from .machine import background_threads, limited_threads
from .predict import single_thread
from .store import DIGIT_MAP_FILE, Stored, StoreKey, digest_images, digest_model, load_or_compute, read, write

DIGIT_MAP_FORMAT = "mnist-studio-digit-map"
DIGIT_MAP_VERSION = 1  # bump when the layout changes: older files are then recomputed
Method = Literal["neighbour-graph", "pca"]
METHODS: tuple[Method, ...] = ("neighbour-graph", "pca")
PLACE_DIMS = 32  # PCA dimensions of the stored test features: 10,000 x 32 float16 = 640 KB
PLACE_NEIGHBOURS = 10  # test images whose positions place a new drawing
PLACE_EPSILON = 1e-6  # added to distances: a drawing equal to a test image lands on it, without dividing by 0
FEATURES_SHARE = 0.5  # of the progress bar: the feature pass; the layout gets the rest
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureProjection:
    """PCA of the test features: mean (D,) and components (P, D), float32."""

    mean: np.ndarray
    components: np.ndarray

    def apply(self, features: np.ndarray) -> np.ndarray:
        """(..., D) features -> (..., P) coordinates along the components."""
        return (np.asarray(features, np.float32) - self.mean) @ self.components.T


@dataclass(frozen=True)
class DigitMap:
    """The test images in 2-D (coordinates in arbitrary units: only distances on the map mean something)."""

    coords: np.ndarray  # (N, 2) float32: test image i is at coords[i]
    labels: np.ndarray  # (N,) int64: true digits
    predictions: np.ndarray  # (N,) int64: the model's digits
    confidences: np.ndarray  # (N,) float32: probability of the prediction
    method: Method
    key: StoreKey  # the model and test set it was computed for
    projection: FeatureProjection  # features -> reference space
    reference: np.ndarray  # (N, P) float32: the test features projected (float16 precision, as stored)
    seconds: float  # compute time, feature pass included
    seed: int = 0
    epochs: int = LAYOUT_EPOCHS

    def __len__(self) -> int:
        return len(self.coords)

    @property
    def mistakes(self) -> np.ndarray:
        """(N,) bool: the test images the model gets wrong."""
        return self.predictions != self.labels

    def place(self, features: np.ndarray) -> np.ndarray:
        """Map position (2,) of one drawing's penultimate features (D,), or (B, 2) of a batch (B, D)."""
        z = self.projection.apply(features)
        single = z.ndim == 1
        z = np.atleast_2d(z)
        if self.method == "pca":
            placed = z[:, :2]  # the method's own transform: coords are the first two components
        else:
            placed = self._place_by_neighbours(z)
        return placed[0] if single else placed

    def _place_by_neighbours(self, z: np.ndarray) -> np.ndarray:
        ref = torch.from_numpy(self.reference)
        q = torch.from_numpy(np.ascontiguousarray(z, np.float32))
        with single_thread(len(q) == 1):
            d2 = (q * q).sum(1, keepdim=True) - 2 * q @ ref.T + (ref * ref).sum(1)
            k = min(PLACE_NEIGHBOURS, len(ref))
            d2, nearest = d2.topk(k, largest=False)
        weights = 1 / (d2.clamp(min=0).sqrt() + PLACE_EPSILON)  # (B, k)
        coords = torch.from_numpy(self.coords)[nearest]  # (B, k, 2)
        return ((coords * weights[..., None]).sum(1) / weights.sum(1, keepdim=True)).numpy()


def compute_digit_map(
    model: nn.Module,
    data: MnistData,
    *,
    method: Method = "neighbour-graph",
    limit: int | None = None,
    seed: int = 0,
    epochs: int = LAYOUT_EPOCHS,
    threads: int | None = None,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
) -> DigitMap:
    """The digit map of `model` over the test set (its first `limit` images; None: all 10,000).

    Thread-safe: reads the model only (thread-filtered hooks), with its own random generator. Runs on
    `threads` torch threads (default: half the cores) in the calling thread. The model must be in eval
    mode. `stop` set: ComputationStopped. `progress(fraction)` is called as it goes.
    """
    if method not in METHODS:
        raise MnistError(f"unknown digit map method {method!r}; choose one of {', '.join(METHODS)}")
    started = time.perf_counter()
    images, labels = data.test_images[:limit], data.test_labels[:limit]
    with limited_threads(threads or background_threads()):
        features_progress = scaled_progress(progress, 0.0, FEATURES_SHARE)
        features, probabilities = features_and_probabilities(model, images, stop=stop, progress=features_progress)
        x = torch.from_numpy(features)
        mean, components = pca_basis(x, min(PLACE_DIMS, *x.shape))
        if method == "pca":
            coords = (x - mean) @ components[:2].T
        else:
            layout_progress = scaled_progress(progress, FEATURES_SHARE, 1.0)
            coords = embed_neighbour_graph(x, epochs=epochs, seed=seed, stop=stop, progress=layout_progress)
        reference = ((x - mean) @ components.T).half().float()  # the precision it is stored with
    return DigitMap(
        coords=coords.float().numpy(),
        labels=labels.long().numpy(),
        predictions=probabilities.argmax(1).astype(np.int64),
        confidences=probabilities.max(1).astype(np.float16).astype(np.float32),  # as stored
        method=method,
        key=digit_map_key(model, data, limit),
        projection=FeatureProjection(mean.numpy(), components.numpy()),
        reference=reference.numpy(),
        seconds=time.perf_counter() - started,
        seed=seed,
        epochs=epochs,
    )


def scaled_progress(progress: Progress | None, low: float, high: float) -> Progress | None:
    """A part's progress (0..1) reported as the stretch low..high of the whole."""
    if progress is None:
        return None
    return lambda fraction: progress(low + fraction * (high - low))


def digit_map_tensors(digit_map: DigitMap) -> dict[str, torch.Tensor]:
    """The file's tensors; labels and predictions as uint8, confidences and reference as float16."""
    return {
        "coords": torch.from_numpy(digit_map.coords).float(),
        "labels": torch.from_numpy(digit_map.labels).to(torch.uint8),
        "predictions": torch.from_numpy(digit_map.predictions).to(torch.uint8),
        "confidences": torch.from_numpy(digit_map.confidences).half(),
        "reference": torch.from_numpy(digit_map.reference).half(),
        "mean": torch.from_numpy(digit_map.projection.mean).float(),
        "components": torch.from_numpy(digit_map.projection.components).float(),
    }


def digit_map_stored(digit_map: DigitMap) -> Stored:
    """What the file holds: digit_map_tensors, the key, and method, seconds, seed and epochs as info."""
    info = {"method": digit_map.method, "seconds": digit_map.seconds, "seed": digit_map.seed}
    info["epochs"] = digit_map.epochs
    return Stored(digit_map_tensors(digit_map), digit_map.key, info)


def digit_map_from_stored(stored: Stored) -> DigitMap | None:
    """The map in a stored file, or None (logged) when its tensors or info are damaged."""
    try:
        return digit_map_from_tensors(stored.tensors, stored.key, stored.info)
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("ignoring damaged digit map: %s", exc)
        return None


def save_digit_map(digit_map: DigitMap, path: Path | str) -> None:
    """Write the map to `path` (a .safetensors file) atomically."""
    write(path, digit_map_stored(digit_map), DIGIT_MAP_FORMAT, DIGIT_MAP_VERSION)


def load_digit_map(path: Path | str, key: StoreKey | None = None) -> DigitMap | None:
    """The map stored at `path` if it is valid and was made for `key` (None: for any model), else None."""
    found = read(path, DIGIT_MAP_FORMAT, DIGIT_MAP_VERSION, key)
    return None if found is None else digit_map_from_stored(found)


def digit_map_from_tensors(tensors: dict[str, torch.Tensor], key: StoreKey, info: dict) -> DigitMap:
    """Check shapes, ranges and finiteness (ValueError naming the problem) and build the DigitMap."""
    arrays = {name: tensors[name].float().numpy() for name in ("coords", "confidences", "reference", "mean")}
    arrays["components"] = tensors["components"].float().numpy()
    labels, predictions = tensors["labels"].long().numpy(), tensors["predictions"].long().numpy()
    n, (p, d) = len(labels), arrays["components"].shape
    shapes = {
        "coords": (n, 2),
        "confidences": (n,),
        "reference": (n, p),
        "mean": (d,),
        "predictions": (n,),
    }
    for name, shape in shapes.items():
        got = predictions.shape if name == "predictions" else arrays[name].shape
        if got != shape:
            raise ValueError(f"{name} is {got}, expected {shape}")
    if n == 0 or not all(np.isfinite(a).all() for a in arrays.values()):
        raise ValueError("empty, or holds NaN or infinite values")
    if labels.max() >= NUM_CLASSES or predictions.max() >= NUM_CLASSES:
        raise ValueError("a label or prediction is out of range 0..9")
    if info.get("method") not in METHODS:
        raise ValueError(f"unknown method {info.get('method')!r}")
    return DigitMap(
        coords=arrays["coords"],
        labels=labels,
        predictions=predictions,
        confidences=arrays["confidences"],
        method=info["method"],
        key=key,
        projection=FeatureProjection(arrays["mean"], arrays["components"]),
        reference=arrays["reference"],
        seconds=float(info.get("seconds", 0.0)),
        seed=int(info.get("seed", 0)),
        epochs=int(info.get("epochs", LAYOUT_EPOCHS)),
    )


def digit_map_key(model: nn.Module, data: MnistData, limit: int | None = None) -> StoreKey:
    """The key a map of this model over these test images (the first `limit`) is stored under."""
    return StoreKey(digest_model(model), digest_images(data.test_images[:limit], data.test_labels[:limit]))


def load_or_compute_digit_map(model: nn.Module, data: MnistData, folder: Path | str | None, **options) -> DigitMap:
    """The map in folder/digit_map.safetensors if it fits the model and data, else computed (compute_digit_map's
    options) and saved there. A folder that cannot be written (the installed bundled model) keeps it in memory
    only; folder None: compute, no file."""
    path = Path(folder) / DIGIT_MAP_FILE if folder is not None else None
    method = options.get("method")

    def from_stored(stored: Stored) -> DigitMap | None:
        found = digit_map_from_stored(stored)
        return found if found is not None and found.method == (method or found.method) else None

    return load_or_compute(
        path,
        DIGIT_MAP_FORMAT,
        DIGIT_MAP_VERSION,
        digit_map_key(model, data, options.get("limit")),
        lambda: compute_digit_map(model, data, **options),
        to_stored=digit_map_stored,
        from_stored=from_stored,
    )
