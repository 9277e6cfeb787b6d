"""Touching digits: a wide group of ink cut in two along valleys, kept as two digits when the cut reads better."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .calibration import Calibration
from .reading import Box, GroupReading
from .segment import CROP_PAD
from .shape import SUSPECT_DISTANCE_SHARE

# Touching digits (recognition-based segmentation of one group of ink into two digits)
SPLIT_MIN_ASPECT = 0.75  # a group at least this wide for its height may be two digits that touch
SPLIT_MIN_WIDTH_PX = 8  # narrower groups are never cut: no room for two digits
SPLIT_MARGIN = 0.15  # cuts are tried between this share of the group's width from each side
SPLIT_STEP = 0.04  # a cut around every this share of the width (cuts that end up the same are read once)
SPLIT_REACH = 0.1  # a cut strays at most this share of the width from its column
SPLIT_CONFIDENT = 0.8  # each half must be read at least this sure, and typical (see model_reason)
UNCUT_CONFIDENT = 0.99  # a group read whole this surely, and typical (SUSPECT_DISTANCE_SHARE), is not cut
VALLEY_STEP_COST = 0.05  # ink cost of every pixel of a cut: the shortest of equally blank paths
SPLIT_MIN_HEIGHT = 0.8  # and span at least this share of the group's height
FRAGMENT_SHARE = 0.15  # after a cut, ink pieces under this share of the half's largest are dropped


def worth_cutting(whole: GroupReading, calibration: Calibration) -> bool:
    """Whether a group might be two touching digits: not when read whole as a sure, typical digit (most
    single digits; this also saves the cuts' forward pass)."""
    typical = whole.distance is None or whole.distance <= SUSPECT_DISTANCE_SHARE * calibration.max_distance
    return not (whole.verdict == "digit" and whole.confidence >= UNCUT_CONFIDENT and typical)


def cut_candidates(box: Box, crop: np.ndarray) -> list[tuple[tuple[Box, np.ndarray], tuple[Box, np.ndarray]]]:
    """A group wide enough to be two touching digits: (left piece, right piece) for each distinct cut, each
    piece as group_crop gives it (its canvas box, its padded crop). Narrower groups: none."""
    if box.width < SPLIT_MIN_ASPECT * box.height or box.width < SPLIT_MIN_WIDTH_PX:
        return []
    ink = crop[CROP_PAD:-CROP_PAD, CROP_PAD:-CROP_PAD]
    paths = {tuple(valley(ink, column).tolist()) for column in cut_columns(ink.shape[1])}
    pairs = [cut_along(box, ink, np.array(path)) for path in sorted(paths)]
    return [pair for pair in pairs if pair is not None]


def cut_columns(width: int) -> list[int]:
    """Columns around which cuts are tried: every SPLIT_STEP of the width, SPLIT_MARGIN from each side
    (the valley between two touching digits can be anywhere in the middle, and a few are not the least
    inked columns: a 1's stroke is thinner than the digit it touches)."""
    step = max(1, round(SPLIT_STEP * width))
    return list(range(round(SPLIT_MARGIN * width), round((1 - SPLIT_MARGIN) * width) + 1, step))


def valley(ink: np.ndarray, column: int) -> np.ndarray:
    """The least inked path from the top row to the bottom one, moving at most one column a row and
    staying within SPLIT_REACH of the group's width around `column`: per row, the first column of the
    right-hand piece. Digits that overlap are cut around each other, not straight through."""
    h, w = ink.shape
    reach = max(1, round(SPLIT_REACH * w))
    low, high = max(1, column - reach), min(w - 1, column + reach + 1)
    cost = ink[:, low:high] + VALLEY_STEP_COST
    total = cost[0].copy()
    came = np.zeros(cost.shape, dtype=np.int8)  # -1, 0, +1: the column step from the row above
    for r in range(1, h):
        left = np.concatenate([[np.inf], total[:-1]])
        right = np.concatenate([total[1:], [np.inf]])
        options = np.stack([left, total, right])
        step = options.argmin(0)
        came[r] = step - 1
        total = options[step, np.arange(len(total))] + cost[r]
    path = np.empty(h, dtype=np.int64)
    path[-1] = int(total.argmin())
    for r in range(h - 1, 0, -1):
        path[r - 1] = path[r] + came[r, path[r]]
    return path + low


def cut_along(box: Box, ink: np.ndarray, path: np.ndarray):
    """The group's ink cut along a path into two pieces, each without the other digit's fragments; None
    when a side has no ink."""
    right_side = np.arange(ink.shape[1])[None, :] >= path[:, None]
    halves = []
    for part in (ink * ~right_side, ink * right_side):
        part = main_ink(part)
        ys, xs = np.nonzero(part.any(axis=1))[0], np.nonzero(part.any(axis=0))[0]
        if len(ys) == 0:
            return None
        tight = Box(box.left + int(xs[0]), box.top + int(ys[0]), box.left + int(xs[-1]) + 1, box.top + int(ys[-1]) + 1)
        halves.append((tight, np.pad(part[ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1], CROP_PAD)))
    return tuple(halves)


def main_ink(part: np.ndarray) -> np.ndarray:
    """The ink without pieces (8-connected) under FRAGMENT_SHARE of the largest one's ink."""
    labels, count = ndimage.label(part > 0, structure=np.ones((3, 3)))
    if count <= 1:
        return part
    mass = ndimage.sum_labels(part, labels, np.arange(1, count + 1))
    keep = np.concatenate([[False], mass >= FRAGMENT_SHARE * mass.max()])
    return part * keep[labels]


def confident_digit(group: GroupReading, height: int) -> bool:
    """A piece of a cut that reads as a digit of its own: sure, and nearly the whole group's height (a
    stroke shaved off a digit's side is shorter)."""
    tall = group.box.height >= SPLIT_MIN_HEIGHT * height
    return tall and group.verdict == "digit" and group.confidence >= SPLIT_CONFIDENT


def best_reading(
    whole: GroupReading, pairs: list[tuple[GroupReading, GroupReading]], calibration: Calibration
) -> tuple[GroupReading, ...]:
    """The group read whole, or as the two digits of its likeliest cut (the product of its pieces'
    probabilities; recognition-based segmentation) when both pieces are confident digits and the cut beats
    the whole: each piece more typical than it, and surer, or the whole atypical (beyond
    SUSPECT_DISTANCE_SHARE of max_distance: "14" read as a 4 at 96%). A wide 0 stays one 0, a 9 keeps
    its tail."""
    split = [pair for pair in pairs if all(confident_digit(half, whole.box.height) for half in pair)]
    if whole.verdict != "not_a_digit":
        atypical = whole.distance is not None and whole.distance > SUSPECT_DISTANCE_SHARE * calibration.max_distance
        split = [
            (a, b)
            for a, b in split
            if more_typical((a, b), whole) and (atypical or min(a.confidence, b.confidence) > whole.confidence)
        ]
    if not split:
        return (whole,)
    return max(split, key=lambda pair: pair[0].confidence * pair[1].confidence)


def more_typical(pair: tuple[GroupReading, GroupReading], whole: GroupReading) -> bool:
    """Both pieces nearer the digits than the whole, in the model's features (always, uncalibrated)."""
    if whole.distance is None:
        return True
    return max(pair[0].distance, pair[1].distance) < whole.distance
