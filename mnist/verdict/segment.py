"""Groups of ink: the drawing's ink normalised, split into 8-connected pieces, pieces of one digit merged."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..preprocess import INK_THRESHOLD, MIN_INK_CONTRAST, ink_map
from .reading import Box

SEGMENT_SIDE = 96  # cells: the ink mask is reduced (any-pooling) to at most this many cells a side
SPECK_SHARE = 0.02  # a component with less ink than this share of the largest component's is a speck
MERGE_OVERLAP = 0.5  # x-extents overlapping by this share of the narrower component: the same digit
STACKED_OVERLAP = 0.5  # pieces overlapping in x and in y by less than this share of the shorter: stacked
MINOR_HEIGHT = 0.5  # a piece under this share of its neighbour's height, and close to it, is part of it
MINOR_GAP = 0.15  # how close: the gaps between their boxes, as a share of the neighbour's height
CROP_PAD = 2  # pixels of blank border around a group's crop, so preprocess_canvas sees a background
EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)  # ndimage.label's structure: diagonal neighbours touch


def count_components(mask: np.ndarray, *, diagonal: bool) -> int:
    """Connected pieces of True: 8-connected with `diagonal`, else 4-connected."""
    return ndimage.label(mask, structure=EIGHT_NEIGHBOURS if diagonal else None)[1]


@dataclass(frozen=True)
class Segments:
    """The drawing's ink split into groups; cells are SEGMENT_SIDE-grid squares of `factor` pixels."""

    ink: np.ndarray  # (H, W) float32 in [0, 1], normalised and thresholded like preprocess_canvas
    factor: int  # pixels per cell side
    cell_group: np.ndarray  # (h, w) int: group index of each cell, -1 for background and specks
    boxes: tuple[Box, ...]  # each group's cells' box, in pixels (clipped to the canvas), left to right


def normalized_ink(array) -> np.ndarray | None:
    """preprocess_canvas's ink: strongest stroke 1, faint noise 0; None when the drawing is blank."""
    ink = ink_map(array)
    low, high = float(ink.min()), float(ink.max())
    if high - low < MIN_INK_CONTRAST:
        return None
    ink = (ink - low) / (high - low)
    ink[ink < INK_THRESHOLD] = 0.0
    return ink


def cell_mass(ink: np.ndarray, factor: int) -> np.ndarray:
    """(H, W) -> (ceil(H/f), ceil(W/f)) sums of ink per f x f cell (f*f strided adds: faster than a
    reshape-and-sum over two axes, which numpy runs as a slow non-contiguous reduction)."""
    h, w = ink.shape
    padded = np.zeros((-(-h // factor) * factor, -(-w // factor) * factor), dtype=np.float32)
    padded[:h, :w] = ink
    mass = np.zeros((padded.shape[0] // factor, padded.shape[1] // factor), dtype=np.float32)
    for dy in range(factor):
        for dx in range(factor):
            mass += padded[dy::factor, dx::factor]
    return mass


def belong_together(a: Box, b: Box) -> bool:
    """Two pieces of ink are one digit when their x-extents overlap by MERGE_OVERLAP of the narrower one
    (a crossed 7, a two-stroke 4); when they overlap in x at all and are stacked, overlapping in y by
    under STACKED_OVERLAP of the shorter one (a 5's flag above its body); or when one is under
    MINOR_HEIGHT of the other's height and both gaps between their boxes are within MINOR_GAP of the
    taller one's height (a 5's flag beside its top, a 9's broken-off tail). Digits side by side in a
    number overlap a lot in y and not in x, so none of these holds for them."""
    x_overlap = min(a.right, b.right) - max(a.left, b.left)  # negative: the gap between them
    y_overlap = min(a.bottom, b.bottom) - max(a.top, b.top)
    if x_overlap >= MERGE_OVERLAP * min(a.width, b.width):
        return True
    if x_overlap > 0 and y_overlap < STACKED_OVERLAP * min(a.height, b.height):
        return True
    major, minor = (a, b) if a.height >= b.height else (b, a)
    near = max(-x_overlap, -y_overlap) <= MINOR_GAP * major.height
    return minor.height < MINOR_HEIGHT * major.height and near


def union_box(a: Box, b: Box) -> Box:
    return Box(min(a.left, b.left), min(a.top, b.top), max(a.right, b.right), max(a.bottom, b.bottom))


def merge_pieces(boxes: list[Box]) -> list[list[int]]:
    """Indices of the pieces in each group, merging pairs that belong together until none do; left to right."""
    groups = [(box, [i]) for i, box in enumerate(boxes)]
    merged = True
    while merged:
        merged = False
        for a in range(len(groups)):
            b = next((b for b in range(a + 1, len(groups)) if belong_together(groups[a][0], groups[b][0])), None)
            if b is not None:
                (box_b, members_b) = groups.pop(b)
                groups[a] = (union_box(groups[a][0], box_b), groups[a][1] + members_b)
                merged = True
                break
    return [members for _, members in sorted(groups, key=lambda g: g[0].left)]


def split_groups(ink: np.ndarray) -> Segments:
    """Connected components of the ink, specks dropped, pieces that belong together merged, left to right."""
    h, w = ink.shape
    factor = max(1, math.ceil(max(h, w) / SEGMENT_SIDE))
    mass = cell_mass(ink, factor)
    labels, count = ndimage.label(mass > 0, structure=EIGHT_NEIGHBOURS)  # 0: background, components 1..count
    comp_mass = ndimage.sum_labels(mass, labels, np.arange(1, count + 1))
    spans = ndimage.find_objects(labels)  # per component: its (rows, columns) slices, in cells
    kept = [c for c in range(count) if comp_mass[c] >= SPECK_SHARE * comp_mass.max()]
    pieces = [Box(spans[c][1].start, spans[c][0].start, spans[c][1].stop, spans[c][0].stop) for c in kept]
    label_group = np.full(count + 1, -1)  # group of each label: -1 for the background and specks
    boxes = []
    for g, members in enumerate(merge_pieces(pieces)):
        label_group[[kept[i] + 1 for i in members]] = g
        cells = functools.reduce(union_box, [pieces[i] for i in members])
        boxes.append(
            Box(cells.left * factor, cells.top * factor, min(cells.right * factor, w), min(cells.bottom * factor, h))
        )
    return Segments(ink, factor, label_group[labels], tuple(boxes))


def group_crop(segments: Segments, g: int) -> tuple[Box, np.ndarray]:
    """Group g's ink alone (other groups masked out), cropped to its exact box, with a blank border."""
    box = segments.boxes[g]  # its left and top are on cell boundaries
    f = segments.factor
    cells = segments.cell_group[box.top // f : -(-box.bottom // f), box.left // f : -(-box.right // f)]
    owner = np.repeat(np.repeat(cells, f, axis=0), f, axis=1)[: box.height, : box.width]  # group of each pixel
    crop = segments.ink[box.top : box.bottom, box.left : box.right] * ((owner == g) | (owner < 0))
    mine = crop * (owner == g)  # the exact box: the group's own ink, not specks at its edge
    ys, xs = np.nonzero(mine.any(axis=1))[0], np.nonzero(mine.any(axis=0))[0]
    tight = Box(box.left + int(xs[0]), box.top + int(ys[0]), box.left + int(xs[-1]) + 1, box.top + int(ys[-1]) + 1)
    crop = crop[ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1]
    return tight, np.pad(crop, CROP_PAD)
