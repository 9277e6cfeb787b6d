"""Touching digits: a wide group of ink cut in two along valleys, kept as two digits when the cut reads better."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .calibration import Calibration
from .reading import Box, GroupReading
from .segment import CROP_PAD
from .shape import SUSPECT_DISTANCE_SHARE

# Touching digits (recognition-based segmentation of one group of ink into two digits)
SPLIT_MIN_ASPECT = 0.75  # a group read as a digit, at least this wide for its height, may be two that touch
WEAK_SPLIT_MIN_ASPECT = 0.4  # a group read unsure: "11" or "31" written fast is narrower than a 0 (not a refused
# group: narrow blobs and scribbles cut in two read as "11" too often)
SPLIT_MIN_WIDTH_PX = 8  # narrower groups are never cut: no room for two digits
SPLIT_MARGIN = 0.15  # cuts are tried between this share of the group's width from each side
SPLIT_STEP = 0.04  # a cut around every this share of the width (cuts that end up the same are read once)
SPLIT_REACH = 0.1  # a cut strays at most this share of the width from its column
SPLIT_CONFIDENT = 0.8  # each half must be read at least this sure, and typical (see model_reason)
UNCUT_CONFIDENT = 0.93  # a group read whole this surely, and typical (SUSPECT_DISTANCE_SHARE), is not cut: the bundled
# model (label smoothing) reads a clean digit at about 96%, so at 99% nearly every wide digit was cut, 90 ms a stroke
VALLEY_STEP_COST = 0.05  # ink cost of every pixel of a cut: the shortest of equally blank paths
SPLIT_MIN_HEIGHT = 0.8  # and span at least this share of the group's height
FRAGMENT_SHARE = 0.15  # after a cut, ink pieces under this share of the half's largest are dropped
# A group the model cannot place (refused as unlike any digit, or unsure) may be read from a looser cut:
# two touching digits are often such a group, and each half of the right cut is close to the digits.
# Not a group refused by an ink rule (blob, scribble, dot, line): those are what non-digits look like.
LOOSE_MIN_HEIGHT = 0.7  # each piece spans at least this share of the group's height (a 1 is often shorter)
LOOSE_CONFIDENT = 0.6  # and is read at least this sure (CONFIDENT: the Sketch page's bar) ...
LOOSE_UNSURE = 0.3  # ... or, for one piece of the two, unsure but at least this sure (marked unsure)
LOOSE_MAX_DISTANCE = 0.9  # and each piece is within this share of max_distance of the digits
LOOSE_SUM_DISTANCE = 1.2  # and both together within this share: a star or blob cut in two is not
LOOSE_REASONS = (None, "unlike_any_digit")  # whole groups refused for these reasons (or unsure) may be cut loosely
TYPICAL_WEIGHT = 1.0  # a cut's score: log p(left) + log p(right) - this x (distances / max_distance)


def worth_cutting(whole: GroupReading, calibration: Calibration) -> bool:
    """Whether a group might be two touching digits: not when read whole as a sure, typical digit (most
    single digits; this also saves the cuts' forward pass)."""
    typical = whole.distance is None or whole.distance <= SUSPECT_DISTANCE_SHARE * calibration.max_distance
    return not (whole.verdict == "digit" and whole.confidence >= UNCUT_CONFIDENT and typical)


def min_aspect(whole: GroupReading) -> float:
    """How wide for its height a group must be to be cut: narrower when the model is unsure of it whole."""
    return WEAK_SPLIT_MIN_ASPECT if whole.verdict == "unsure" else SPLIT_MIN_ASPECT


def cut_candidates(
    box: Box, crop: np.ndarray, aspect: float = SPLIT_MIN_ASPECT
) -> list[tuple[tuple[Box, np.ndarray], tuple[Box, np.ndarray]]]:
    """A group wide enough to be two touching digits (width >= aspect x height): (left piece, right piece)
    for each distinct cut, each piece as group_crop gives it (its canvas box, its padded crop). Narrower
    groups: none."""
    if box.width < aspect * box.height or box.width < SPLIT_MIN_WIDTH_PX:
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


def loose_pair(pair: tuple[GroupReading, GroupReading], height: int, calibration: Calibration) -> bool:
    """A cut of a group the model cannot place whose pieces are digits, less sure than confident_digit asks
    (one may be unsure), but both close to the digits in the model's features (LOOSE_*)."""
    if calibration.max_distance is None or any(half.distance is None for half in pair):
        return False  # uncalibrated: no evidence that the pieces are digits rather than halves of a shape
    if any(half.box.height < LOOSE_MIN_HEIGHT * height for half in pair):
        return False
    sure = [half.verdict == "digit" and half.confidence >= LOOSE_CONFIDENT for half in pair]
    unsure = [half.verdict == "unsure" and half.confidence >= LOOSE_UNSURE for half in pair]
    if not all(s or u for s, u in zip(sure, unsure, strict=True)) or not any(sure):
        return False
    shares = [half.distance / calibration.max_distance for half in pair]
    return max(shares) <= LOOSE_MAX_DISTANCE and sum(shares) <= LOOSE_SUM_DISTANCE


def may_cut_loosely(whole: GroupReading) -> bool:
    """A whole the model cannot place (unsure, or refused as unlike any digit), not one an ink rule refused."""
    return whole.verdict != "digit" and whole.reason in LOOSE_REASONS


def cut_score(pair: tuple[GroupReading, GroupReading], calibration: Calibration) -> float:
    """How likely a cut is the right one: its pieces' probabilities, and how typical they are. A model trained
    with label smoothing reads most clean digits at 95-97%, so typicality separates cuts that both read sure:
    a 4 cut into "4" and a sliver read as 1 is surer than "44" but further from the digits."""
    score = sum(math.log(half.confidence) for half in pair)
    if calibration.max_distance is not None and all(half.distance is not None for half in pair):
        score -= TYPICAL_WEIGHT * sum(half.distance for half in pair) / calibration.max_distance
    return score


def best_reading(
    whole: GroupReading, pairs: list[tuple[GroupReading, GroupReading]], calibration: Calibration
) -> tuple[GroupReading, ...]:
    """The group read whole, or as the two digits of its best cut (cut_score; recognition-based
    segmentation) when both pieces are confident digits, or a loose_pair of a whole the model cannot place,
    and the cut beats the whole: each piece more typical than it, and surer, or the whole atypical (beyond
    SUSPECT_DISTANCE_SHARE of max_distance: "14" read as a 4 at 96%). A wide 0 stays one 0, a 9 keeps
    its tail, a blob or a star stays refused."""
    height = whole.box.height
    loose = may_cut_loosely(whole)
    split = [
        pair
        for pair in pairs
        if all(confident_digit(half, height) for half in pair) or (loose and loose_pair(pair, height, calibration))
    ]
    if whole.verdict != "not_a_digit":
        atypical = whole.distance is not None and whole.distance > SUSPECT_DISTANCE_SHARE * calibration.max_distance
        split = [
            (a, b)
            for a, b in split
            if more_typical((a, b), whole) and (atypical or min(a.confidence, b.confidence) > whole.confidence)
        ]
    if not split:
        return (whole,)
    return max(split, key=lambda pair: cut_score(pair, calibration))


def more_typical(pair: tuple[GroupReading, GroupReading], whole: GroupReading) -> bool:
    """Both pieces nearer the digits than the whole, in the model's features (always, uncalibrated)."""
    if whole.distance is None:
        return True
    return max(pair[0].distance, pair[1].distance) < whole.distance
