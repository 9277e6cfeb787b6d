"""Per-epoch training insight: what a run looked like inside after each epoch, saved with the run.

After each epoch's evaluation, train() attaches an `EpochInsight` to its EpochEvent (`event.insight`):

- the test set's confusion matrix (10 x 10 counts, rows = true digit, columns = prediction);
- the first layer's filters (inside.extract_filters; a linear-only model's first MAX_INSIGHT_UNITS units);
- the probabilities the model gives a fixed panel of 16 test digits, PANEL_INDICES (`panel_indices`):
  the first test image of each digit 0..9 (indices 3, 2, 1, 18, 4, 8, 11, 0, 61, 7), then six the bundled
  model gets wrong (2130: a 4 it reads as 9, 1901: 9 as 4, 6576: 7 as 1, 9729: 5 as 6, 3422: 6 as 0, 8408:
  8 as 5), hard cases to watch a model learn. A smaller test set keeps the indices it has.

The insight is not part of history.json (History.to_dict leaves it out): save_run writes it beside, as
insight.safetensors, and `load_insight(run_dir)` reads it back (an empty list for a run without one or a
damaged file). A mnist.store file, with no key (it is the run's own record, read with the run, and
not recomputable). Tensors: epochs (E,) int32, confusion (E, 10, 10) int32, filters (E, ...)
float16, panel_indices and panel_labels (P,) int32, panel_probabilities (E, P, 10) float32; info: the
filters' layer name, kind and total units (files written before mnist.store kept them as a metadata
entry "filters", still read).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .constants import NUM_CLASSES
from .inside import Filters, extract_filters
from .store import READ_ERRORS, Stored, StoreKey, decode, encode, read_bytes

INSIGHT_FILE = "insight.safetensors"
INSIGHT_FORMAT = "mnist-studio-insight"
INSIGHT_VERSION = 1
FIRST_OF_EACH_DIGIT = (3, 2, 1, 18, 4, 8, 11, 0, 61, 7)  # test indices of the first 0, 1, ..., 9
BUNDLED_MISTAKES = (2130, 1901, 6576, 9729, 3422, 8408)  # the bundled model's confident mistakes
PANEL_INDICES = FIRST_OF_EACH_DIGIT + BUNDLED_MISTAKES
MAX_INSIGHT_UNITS = 64  # mlp: 64 of its 256 first-layer units per epoch (64 x 784 float16 = 100 KB)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochInsight:
    """A run's state after one epoch, for the Train page's training-insight view."""

    epoch: int  # 1-based
    confusion: np.ndarray  # (10, 10) int64, rows = true digit, columns = prediction, over the test set
    filters: Filters  # the first layer's weights after this epoch
    panel_indices: np.ndarray  # (P,) int64 test-set indices (PANEL_INDICES that exist), P <= 16
    panel_labels: np.ndarray  # (P,) int64 their true digits
    panel_probabilities: np.ndarray  # (P, 10) float32

    @property
    def panel_predictions(self) -> np.ndarray:
        return self.panel_probabilities.argmax(1)


def panel_indices(n_test: int) -> list[int]:
    """PANEL_INDICES below n_test, in order."""
    return [i for i in PANEL_INDICES if i < n_test]


@torch.inference_mode()
def compute_epoch_insight(
    model: nn.Module, epoch: int, confusion: torch.Tensor, panel_x: torch.Tensor, panel: list[int], panel_y
) -> EpochInsight:
    """The insight of a model being trained: panel_x (P, 1, 28, 28) normalised on the model's device.

    The model is switched to eval mode for the panel's forward pass and back.
    """
    was_training = model.training
    model.eval()
    try:
        probabilities = model(panel_x).float().softmax(1).cpu().numpy() if len(panel) else np.zeros((0, NUM_CLASSES))
    finally:
        model.train(was_training)
    return EpochInsight(
        epoch=epoch,
        confusion=confusion.cpu().long().numpy(),
        filters=extract_filters(model, MAX_INSIGHT_UNITS),
        panel_indices=np.asarray(panel, np.int64),
        panel_labels=torch.as_tensor(panel_y).cpu().long().numpy(),
        panel_probabilities=probabilities.astype(np.float32),
    )


def encode_insight(insights: list[EpochInsight]) -> bytes:
    """The insight.safetensors bytes of a run's epochs (at least one)."""
    first = insights[0]
    tensors = {
        "epochs": torch.tensor([i.epoch for i in insights], dtype=torch.int32),
        "confusion": torch.from_numpy(np.stack([i.confusion for i in insights])).int(),
        "filters": torch.from_numpy(np.stack([i.filters.weights for i in insights])).half(),
        "panel_indices": torch.from_numpy(first.panel_indices).int(),
        "panel_labels": torch.from_numpy(first.panel_labels).int(),
        "panel_probabilities": torch.from_numpy(np.stack([i.panel_probabilities for i in insights])).float(),
    }
    filters = {"name": first.filters.name, "kind": first.filters.kind, "total_units": first.filters.total_units}
    unkeyed = StoreKey("")  # recorded while training, read back with its run: never looked up by model
    return encode(Stored(tensors, unkeyed, {"filters": filters}), INSIGHT_FORMAT, INSIGHT_VERSION)


def decode_insight(data: bytes) -> list[EpochInsight]:
    """Parse insight.safetensors bytes; ValueError (or a safetensors error) when they are not a valid one."""
    stored = decode(data, INSIGHT_FORMAT, INSIGHT_VERSION)
    tensors = stored.tensors
    layer = stored.info["filters"] if "filters" in stored.info else json.loads(stored.metadata["filters"])
    if not isinstance(layer, dict):
        raise ValueError("the filters' description is not a mapping")
    epochs = tensors["epochs"].long().numpy()
    confusion = tensors["confusion"].long().numpy()
    filters = tensors["filters"].float().numpy()
    indices, labels = tensors["panel_indices"].long().numpy(), tensors["panel_labels"].long().numpy()
    probabilities = tensors["panel_probabilities"].float().numpy()
    e, p = len(epochs), len(indices)
    if confusion.shape != (e, NUM_CLASSES, NUM_CLASSES) or len(filters) != e or labels.shape != (p,):
        raise ValueError("tensor shapes do not agree")
    if probabilities.shape != (e, p, NUM_CLASSES) or layer.get("kind") not in ("conv", "linear"):
        raise ValueError("panel probabilities or the filters' kind do not fit")
    return [
        EpochInsight(
            epoch=int(epochs[i]),
            confusion=confusion[i],
            filters=Filters(str(layer["name"]), layer["kind"], filters[i], int(layer["total_units"])),
            panel_indices=indices,
            panel_labels=labels,
            panel_probabilities=probabilities[i],
        )
        for i in range(e)
    ]


def load_insight(run_dir: Path | str) -> list[EpochInsight]:
    """A saved run's per-epoch insight; [] when it has none or the file is damaged (logged)."""
    path = Path(run_dir) / INSIGHT_FILE
    try:
        data = read_bytes(path)
        return [] if data is None else decode_insight(data)
    except READ_ERRORS as exc:
        log.warning("ignoring damaged training insight %s: %s", path, exc)
        return []
