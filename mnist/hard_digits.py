"""Hard digits across runs: the test images that most models get wrong (like NNWebViz's "hard for every model").

Given several models' predicted digits for the same test images, rank the images by how many of the
models miss them. Plain tensors in, plain records out: the app decides which models and how many.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .errors import MnistError


@dataclass(frozen=True)
class HardDigit:
    """One test image and how the models did on it."""

    index: int  # in the test set
    label: int
    missed_by: int  # models that predicted another digit
    models: int  # models asked
    common_answer: int  # the wrong digit given most often (the smallest on a tie)

    @property
    def text(self) -> str:
        """ "missed by 4 of 5 runs"."""
        return f"missed by {self.missed_by} of {self.models} run{'' if self.models == 1 else 's'}"


def rank_hard_digits(predictions: Sequence[torch.Tensor], labels: torch.Tensor, min_missed: int = 1) -> list[HardDigit]:
    """Images missed by at least `min_missed` of the models, most missed first (then by index).

    `predictions`: one 1-D tensor of predicted digits per model, each as long as `labels`.
    """
    if not predictions:
        return []
    labels = torch.as_tensor(labels).long()
    for k, predicted in enumerate(predictions):
        if predicted.shape != labels.shape:
            raise MnistError(f"model {k + 1}'s predictions cover {predicted.numel():,} images, not {labels.numel():,}")
    stacked = torch.stack([p.long() for p in predictions])  # (models, images)
    wrong = stacked != labels
    missed = wrong.sum(0)
    chosen = (missed >= max(1, min_missed)).nonzero().flatten()
    # Most missed first; a stable sort of the ascending indices keeps ties in index order.
    order = torch.sort(missed[chosen], descending=True, stable=True).indices
    return [_hard_digit(int(i), stacked[:, i], wrong[:, i], int(labels[i])) for i in chosen[order].tolist()]


def _hard_digit(index: int, answers: torch.Tensor, wrong: torch.Tensor, label: int) -> HardDigit:
    wrong_answers = answers[wrong]
    common = int(torch.bincount(wrong_answers).argmax()) if wrong_answers.numel() else label
    return HardDigit(index, label, int(wrong.sum()), int(answers.numel()), common)
