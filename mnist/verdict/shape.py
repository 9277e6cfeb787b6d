"""The ink rules: shape statistics of a group's 28x28 image, and the reasons ink and model give to reject it."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull

from .calibration import Calibration
from .reading import CONFIDENT, Box, InkStats, Reason
from .segment import EIGHT_NEIGHBOURS

# Ink rules, on the canvas and on the group's 28x28 image (thresholds: see InkStats)
MIN_EXTENT = 0.03  # group's longest side / canvas' longest side below this: too little ink
DOT_MAX_EXTENT = 0.15  # a filled group up to this share of the canvas is a dot, above it a blob
LINE_ELONGATION = 4.0  # ratio of the ink's major to minor standard deviation from which it is a stroke
LINE_MIN_TILT = 55.0  # degrees from vertical from which an elongated stroke is a line, not a 1
SCRIBBLE_HOLES = 4  # enclosed loops from which a group looks like a scribble (8 has 2)
BUSY_HOLES = 3  # a group too far from every digit is called a scribble from this many loops
SUSPECT_DISTANCE_SHARE = 0.5  # a dot, blob or scribble look-alike is kept only this close to a digit
STATS_INK_LEVEL = 0.5  # 28x28 pixels at least this bright count as ink for the shape statistics
FALLBACK_MIN_CONFIDENCE = 0.35  # uncalibrated: a top probability below this is unlike any digit


def erosion_depth(mask: np.ndarray) -> int:
    """How many 3x3 erosions leave some ink: about half the width of the thickest part, in pixels.
    Outside the image is background (binary_erosion's border_value=0)."""
    depth = 0
    current = ndimage.binary_erosion(mask, EIGHT_NEIGHBOURS)
    while current.any():
        depth += 1
        current = ndimage.binary_erosion(current, EIGHT_NEIGHBOURS)
    return depth


def solidity(mask: np.ndarray) -> float:
    """Ink pixels / the area of the convex hull of their squares (the corners of each row's end pixels).
    Those squares always span an area, so the hull is never degenerate (a single pixel's is 1)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return 0.0
    first = mask[rows].argmax(axis=1)
    last = mask.shape[1] - 1 - mask[rows, ::-1].argmax(axis=1)
    xs = np.concatenate([first - 0.5, first - 0.5, last + 0.5, last + 0.5])
    ys = np.concatenate([rows - 0.5, rows + 0.5, rows - 0.5, rows + 0.5])
    corners = np.column_stack([xs, ys])
    hx, hy = corners[ConvexHull(corners).vertices].T
    # Shoelace over the hull's corners: exact for these quarter-integer products, unlike ConvexHull.volume.
    area = 0.5 * abs(float(np.dot(hx, np.roll(hy, 1)) - np.dot(hy, np.roll(hx, 1))))
    return float(mask.sum()) / area


def count_holes(mask: np.ndarray) -> int:
    """Background regions (4-connected) not reaching the border: the loops the ink closes."""
    labels, count = ndimage.label(~mask)  # ndimage's default structure: 4-connected
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    return count - len(np.unique(border[border > 0]))


def axis_shape(pixels: np.ndarray) -> tuple[float, float]:
    """(elongation, tilt in degrees from vertical) from the ink's second moments."""
    total = float(pixels.sum())
    ys, xs = np.mgrid[0 : pixels.shape[0], 0 : pixels.shape[1]]
    cy, cx = float((pixels * ys).sum()) / total, float((pixels * xs).sum()) / total
    dy, dx = ys - cy, xs - cx
    syy, sxx, sxy = (float((pixels * a * b).sum()) / total for a, b in ((dy, dy), (dx, dx), (dx, dy)))
    half_trace, det = (syy + sxx) / 2, syy * sxx - sxy * sxy
    spread = math.sqrt(max(half_trace * half_trace - det, 0.0))
    major, minor = half_trace + spread, max(half_trace - spread, 1e-6)
    tilt = abs(math.degrees(0.5 * math.atan2(2 * sxy, syy - sxx)))  # major axis vs the y axis
    return math.sqrt(major / minor), tilt


def measure_ink(pixels: np.ndarray, box: Box, canvas_shape: tuple[int, int]) -> InkStats:
    mask = pixels >= STATS_INK_LEVEL
    elongation, tilt = axis_shape(pixels)
    extent = max(box.width, box.height) / max(canvas_shape)
    return InkStats(extent, elongation, tilt, erosion_depth(mask), count_holes(mask), solidity(mask))


def ink_reason(ink: InkStats) -> Reason | None:
    """The ink rules that need no model: why a group cannot be a digit, or None."""
    if ink.extent < MIN_EXTENT:
        return "too_little_ink"
    if ink.elongation >= LINE_ELONGATION and ink.tilt >= LINE_MIN_TILT:
        return "line"
    return None


def suspect_reason(ink: InkStats) -> Reason | None:
    """Ink that looks like a dot, a blob or a scribble, but a very bold digit or a looped one can too."""
    if ink.filled:
        return "dot" if ink.extent <= DOT_MAX_EXTENT else "blob"
    if ink.holes >= SCRIBBLE_HOLES:
        return "scribble"
    return None


def model_reason(calibration: Calibration, distance: float | None, confidence: float, ink: InkStats) -> Reason | None:
    """The model's evidence, with the ink: suspect ink that the model does not find typical (under
    SUSPECT_DISTANCE_SHARE of max_distance and confident), or anything too far from every digit.
    Uncalibrated (FALLBACK), suspect ink is rejected and "too far" becomes "too unsure"."""
    suspect = suspect_reason(ink)
    if distance is None:
        if suspect:
            return suspect
        unlike = confidence < FALLBACK_MIN_CONFIDENCE
    else:
        typical = distance <= SUSPECT_DISTANCE_SHARE * calibration.max_distance and confidence >= CONFIDENT
        if suspect and not typical:
            return suspect
        unlike = distance > calibration.max_distance
    if not unlike:
        return None
    return "scribble" if ink.holes >= BUSY_HOLES else "unlike_any_digit"
