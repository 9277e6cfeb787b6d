"""Reading a drawing: its groups of ink through the model in one batch, the rules, and one verdict."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..constants import NUM_CLASSES
from ..data import normalize
from ..errors import MnistError
from ..features import features_and_logits
from ..preprocess import CanvasImage, preprocess_canvas
from .calibration import FALLBACK, Calibration, distances
from .cuts import best_reading, cut_candidates, min_aspect, worth_cutting
from .reading import CONFIDENT, Box, Choice, GroupReading, GroupVerdict, Reading
from .segment import group_crop, normalized_ink, split_groups
from .shape import ink_reason, measure_ink, model_reason


def read_group(
    box: Box, image: CanvasImage, probs: tuple[float, ...], distance: float | None, calibration: Calibration, shape
) -> GroupReading:
    ink = measure_ink(image.pixels, box, shape)
    top = max(range(NUM_CLASSES), key=probs.__getitem__)
    confidence = probs[top]
    reason = ink_reason(ink) or model_reason(calibration, distance, confidence, ink)
    verdict: GroupVerdict = "not_a_digit" if reason else ("digit" if confidence >= CONFIDENT else "unsure")
    return GroupReading(
        box,
        image.pixels,
        verdict,
        None if reason else top,
        confidence,
        probs,
        distance,
        reason,
        ink,
    )


def read_drawing(model: nn.Module, array, calibration: Calibration = FALLBACK) -> Reading:
    """A drawing (any array preprocess_canvas takes) -> its Reading. The model must be in eval mode.

    Raises CanvasError (a ValueError) for arrays that are not images, MnistError for a broken model.
    """
    ink = normalized_ink(array)
    if ink is None:
        return Reading("not_a_digit", None, (), None, None, "empty", ())
    segments = split_groups(ink)
    crops = [group_crop(segments, g) for g in range(len(segments.boxes))]
    wholes = read_pieces(model, crops, calibration, ink.shape)
    cuts = [  # per group: (left, right) pieces per distinct cut tried
        cut_candidates(box, crop, min_aspect(whole)) if worth_cutting(whole, calibration) else []
        for (box, crop), whole in zip(crops, wholes, strict=True)
    ]
    pieces = [piece for group_cuts in cuts for pair in group_cuts for piece in pair]
    readings = read_pieces(model, pieces, calibration, ink.shape) if pieces else []
    groups: list[GroupReading] = []
    k = 0
    for whole, group_cuts in zip(wholes, cuts, strict=True):
        pairs = [(readings[k + 2 * i], readings[k + 2 * i + 1]) for i in range(len(group_cuts))]
        k += 2 * len(group_cuts)
        groups += best_reading(whole, pairs, calibration)
    return combine(tuple(groups))


def score_batch(
    model: nn.Module, pixels: list[np.ndarray], calibration: Calibration
) -> tuple[list[tuple[float, ...]], list[float | None]]:
    """One batch of 28x28 inputs through the model: each one's ten probabilities and its distance to the
    calibration's digits (None without a calibration). Raises MnistError for NaN probabilities (broken weights)."""
    x = normalize(torch.from_numpy(np.stack(pixels)))
    feats, logits = features_and_logits(model, x)
    probs = logits.softmax(1)
    if not torch.isfinite(probs).all():
        raise MnistError("the model produced NaN probabilities; its weights are broken")
    dist = distances(calibration, feats)
    rows = [tuple(row) for row in probs.tolist()]
    return rows, [None] * len(rows) if dist is None else [float(d) for d in dist]


def read_pieces(
    model: nn.Module, pieces: list[tuple[Box, np.ndarray]], calibration: Calibration, shape: tuple[int, int]
) -> list[GroupReading]:
    """Each piece of ink (its box, its padded crop) read like a drawing of its own, all in one batch."""
    images = [preprocess_canvas(crop) for _, crop in pieces]
    rows, dists = score_batch(model, [image.pixels for image in images], calibration)
    return [
        read_group(box, image, rows[i], dists[i], calibration, shape)
        for i, ((box, _), image) in enumerate(zip(pieces, images, strict=True))
    ]


def combine(groups: tuple[GroupReading, ...]) -> Reading:
    """The drawing's verdict from its groups' (see the module docstring)."""
    single = groups[0].probabilities if len(groups) == 1 else None
    rejected = [g for g in groups if g.verdict == "not_a_digit"]
    if rejected:
        return Reading("not_a_digit", None, (), None, single, rejected[0].reason, groups)
    digits = tuple(g.digit for g in groups)
    confidence = math.prod(g.confidence for g in groups)
    if len(groups) > 1:
        return Reading("several_digits", None, digits, confidence, None, None, groups)
    if groups[0].verdict == "unsure":
        return Reading("unsure", digits[0], digits, confidence, single, None, groups, top_two(groups[0]))
    return Reading("digit", digits[0], digits, confidence, single, None, groups)


def top_two(group: GroupReading) -> tuple[Choice, Choice]:
    """The model's first and second choice for one group."""
    return Choice(group.digit, group.confidence), Choice(*group.runner_up)
