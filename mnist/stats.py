"""Data-set statistics: class counts, mean images and index lists (plain PyTorch)."""

from __future__ import annotations

import numpy as np
import torch

from .constants import IMAGE_SIZE, NUM_CLASSES


def class_counts(labels: torch.Tensor) -> list[int]:
    """How many images of each digit 0..9."""
    return torch.bincount(labels.long().flatten(), minlength=NUM_CLASSES)[:NUM_CLASSES].tolist()


def mean_images(images: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """(10, 28, 28) float32 in [0, 1]: the average image of each digit (zeros for an absent digit)."""
    x = images.float().reshape(len(images), -1) / 255.0
    one_hot = torch.nn.functional.one_hot(labels.long(), NUM_CLASSES).float()  # (N, 10)
    sums = one_hot.T @ x  # (10, 784)
    counts = one_hot.sum(0).clamp(min=1).unsqueeze(1)
    return (sums / counts).reshape(NUM_CLASSES, IMAGE_SIZE, IMAGE_SIZE).numpy().astype(np.float32)


def indices_of(labels: torch.Tensor, digit: int | None = None) -> torch.Tensor:
    """Indices of the images showing `digit` (all images when None), in data-set order."""
    if digit is None:
        return torch.arange(len(labels))
    return (labels == digit).nonzero().flatten()
