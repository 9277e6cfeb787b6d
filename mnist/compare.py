"""A second model's reading of the same drawing, reusing the first reading's work.

`mnist.verdict.read_drawing` normalises the ink, splits it into groups, crops each group and centres it
like MNIST, measures its shape, then asks the model. Only the last step depends on the model, so a
second model reads the first reading's 28x28 groups and shape statistics as they are: one batched
forward pass and its own calibration's distances, and the same rules (`verdict.ink_reason`,
`verdict.model_reason`, `verdict.combine`) decide its verdict. Reading the drawing again from scratch
would give the same groups, at twice the preprocessing.

    second = reread(other_model, reading, other_calibration)
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .constants import NUM_CLASSES
from .verdict import (
    CONFIDENT,
    FALLBACK,
    Calibration,
    GroupReading,
    Reading,
    combine,
    ink_reason,
    model_reason,
    score_batch,
)


def reread(model: nn.Module, reading: Reading, calibration: Calibration = FALLBACK) -> Reading:
    """`reading`'s drawing as `model` reads it: the same groups, pixels and ink statistics, its own
    probabilities, distances and verdicts. The model must be in eval mode.

    Raises MnistError for a model that gives NaN probabilities (broken weights)."""
    if not reading.groups:  # nothing drawn: no model is asked
        return reading
    rows, dists = score_batch(model, [group.pixels for group in reading.groups], calibration)
    groups = tuple(regroup(group, rows[i], dists[i], calibration) for i, group in enumerate(reading.groups))
    return combine(groups)


def regroup(
    group: GroupReading, probs: tuple[float, ...], distance: float | None, calibration: Calibration
) -> GroupReading:
    """One group with another model's answer: `verdict.read_group`'s rules on the ink it already measured."""
    top = max(range(NUM_CLASSES), key=probs.__getitem__)
    confidence = probs[top]
    reason = ink_reason(group.ink) or model_reason(calibration, distance, confidence, group.ink)
    verdict = "not_a_digit" if reason else ("digit" if confidence >= CONFIDENT else "unsure")
    return GroupReading(
        group.box, group.pixels, verdict, None if reason else top, confidence, probs, distance, reason, group.ink
    )


@dataclass(frozen=True)
class Agreement:
    """Whether two readings of one drawing say the same thing, for people."""

    same: bool
    text: str


def agreement(first: Reading, second: Reading) -> Agreement:
    """'Both read 7.', 'They disagree: 7 or 1.', 'Neither reads a digit.'"""
    if first.verdict == "not_a_digit" and second.verdict == "not_a_digit":
        return Agreement(True, "Neither model reads a digit here.")
    if first.digits and first.digits == second.digits:
        return Agreement(True, f"Both models read {''.join(map(str, first.digits))}.")
    return Agreement(False, f"The models disagree: {said(first)} against {said(second)}.")


def said(reading: Reading) -> str:
    return "not a digit" if not reading.digits else "".join(map(str, reading.digits))
