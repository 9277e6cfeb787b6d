"""Data-set statistics: class counts, mean images and index lists (plain PyTorch)."""

from __future__ import annotations

import numpy as np
import torch

from .constants import IMAGE_SIZE, NUM_CLASSES

MEAN_CHUNK = 4096  # images per step of mean_images: 25 MB of int64 pixels


def class_counts(labels: torch.Tensor) -> list[int]:
    """How many images of each digit 0..9."""
    return torch.bincount(labels.long().flatten(), minlength=NUM_CLASSES)[:NUM_CLASSES].tolist()


def mean_images(images: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """(10, 28, 28) float32 in [0, 1]: the average image of each digit (zeros for an absent digit).

    Pixel sums are exact integers, added MEAN_CHUNK images at a time: a float copy of the training set
    at once cost 376 MB for the Explore page's first visitor.
    """
    labels = labels.long().flatten()
    sums = torch.zeros(NUM_CLASSES, IMAGE_SIZE * IMAGE_SIZE, dtype=torch.int64)
    for start in range(0, len(images), MEAN_CHUNK):
        chunk = images[start : start + MEAN_CHUNK].reshape(-1, IMAGE_SIZE * IMAGE_SIZE)
        sums.index_add_(0, labels[start : start + MEAN_CHUNK], chunk.long())
    counts = torch.bincount(labels, minlength=NUM_CLASSES)[:NUM_CLASSES].clamp(min=1).unsqueeze(1)
    means = sums.double() / counts / 255.0
    return means.reshape(NUM_CLASSES, IMAGE_SIZE, IMAGE_SIZE).numpy().astype(np.float32)


def indices_of(labels: torch.Tensor, digit: int | None = None) -> torch.Tensor:
    """Indices of the images showing `digit` (all images when None), in data-set order."""
    if digit is None:
        return torch.arange(len(labels))
    return (labels == digit).nonzero().flatten()
