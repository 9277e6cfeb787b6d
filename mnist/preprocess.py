"""Turn a drawing of any size and polarity into an MNIST-style 28x28 input."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .constants import DIGIT_BOX, IMAGE_SIZE, MNIST_CENTER_OF_MASS
from .data import normalize
from .errors import MnistError

MAX_CANVAS_SIDE = 2048  # pixels; the app's canvas is 280
INK_THRESHOLD = 0.2  # ink fainter than this fraction of the strongest stroke is noise
MIN_INK_CONTRAST = 0.05  # a drawing whose ink differs from its background by less is blank
OPAQUE_ALPHA = 0.98  # below this somewhere, alpha is the stroke coverage (transparent canvas)


class CanvasError(MnistError):
    """The array cannot be read as an image."""


@dataclass(frozen=True)
class CanvasImage:
    """A preprocessed drawing: white ink on black like MNIST, or empty."""

    pixels: np.ndarray | None  # (28, 28) float32 in [0, 1]; None when the drawing is blank

    @property
    def empty(self) -> bool:
        return self.pixels is None

    def to_tensor(self) -> torch.Tensor:
        """(1, 1, 28, 28) float, normalised exactly like the training set."""
        if self.pixels is None:
            raise MnistError("the drawing is empty: there is nothing to predict")
        return normalize(torch.from_numpy(self.pixels)[None])


EMPTY = CanvasImage(None)


def unit_divisor(array: np.ndarray) -> float:
    """What the image's values are divided by to lie in [0, 1] (1, 255 or 65535), or CanvasError saying
    what is wrong. Reads the array as it is: no float copy of an integer image."""
    if array.dtype == bool:
        return 1.0
    if np.issubdtype(array.dtype, np.floating):
        with np.errstate(over="ignore"):  # float64 beyond float32's range would become inf: refused too
            finite = bool(np.isfinite(array.astype(np.float32, copy=False)).all())
        if not finite:
            raise CanvasError("image contains NaN or infinite (or absurdly large) values")
    elif not np.issubdtype(array.dtype, np.integer):
        raise CanvasError(f"image pixels must be numbers, got dtype {array.dtype}")
    low, high = float(array.min()), float(array.max())
    if low < 0:
        raise CanvasError(f"image has negative pixel values (min {low:g}); expected 0..1 or 0..255")
    if array.dtype == np.uint16:
        return 65535.0
    if high <= 1.0:
        return 1.0
    if high <= 255.0:
        return 255.0
    raise CanvasError(f"image pixel values go up to {high:g}; expected 0..1 or 0..255")


def scaled(values: np.ndarray, divisor: float) -> np.ndarray:
    """values as float32 in [0, 1], given unit_divisor of the image they come from."""
    x = values.astype(np.float32)
    return x if divisor == 1.0 else x / divisor


def to_unit_float(array: np.ndarray) -> np.ndarray:
    """Any numeric image array -> float32 in [0, 1], or CanvasError saying what is wrong."""
    return scaled(array, unit_divisor(array))


def ink_map(array) -> np.ndarray:
    """(H, W) float32 in [0, 1], 1 = full ink, whatever the input's channels and polarity.

    Only the channels used are converted to float: a 280x280 RGBA canvas is 1.25 MB as float32, and
    converting all of it cost Sketch's preprocessing most of its time.
    """
    try:
        arr = np.asarray(array)
    except Exception as exc:  # noqa: BLE001 - arbitrary objects may fail in arbitrary ways
        raise CanvasError(f"cannot read the image as an array ({exc})") from None
    if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
        channels = arr.shape[2]
    elif arr.ndim == 2:
        channels = 0
    else:
        raise CanvasError(f"image must be (H, W) or (H, W, 1|3|4), got shape {arr.shape}")
    h, w = arr.shape[:2]
    if h == 0 or w == 0:
        raise CanvasError(f"image has no pixels (shape {arr.shape})")
    if max(h, w) > MAX_CANVAS_SIDE:
        raise CanvasError(f"image is {w}x{h}; the largest side may be {MAX_CANVAS_SIDE} pixels")
    divisor = unit_divisor(arr)
    if channels == 4:
        alpha = scaled(arr[..., 3], divisor)
        if float(alpha.min()) < OPAQUE_ALPHA:
            # Strokes on a transparent canvas: whatever their colour, alpha is where the ink is.
            return alpha
    if channels >= 3:
        red, green, blue = (scaled(arr[..., c], divisor) for c in range(3))
        gray = red * 0.299 + green * 0.587 + blue * 0.114
    else:
        gray = scaled(arr.reshape(h, w), divisor)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    # A bright border means dark ink on a light page: invert to MNIST's white on black.
    return 1.0 - gray if float(np.median(border)) > 0.5 else gray


def fit_digit_box(ink: np.ndarray) -> np.ndarray:
    """Crop to the ink, scale the longest side to 20 px (anti-aliased, aspect kept)."""
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    scale = DIGIT_BOX / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    t = torch.from_numpy(np.ascontiguousarray(crop))[None, None]
    resized = F.interpolate(t, size=size, mode="bilinear", antialias=scale < 1, align_corners=False)
    return resized[0, 0].clamp_(0, 1).numpy()


def center_by_mass(box: np.ndarray) -> np.ndarray:
    """Paste into 28x28 so the centre of mass lands where MNIST's does, keeping the digit in frame."""
    h, w = box.shape
    total = float(box.sum())
    ys, xs = np.arange(h), np.arange(w)
    cy = float((box.sum(1) * ys).sum()) / total
    cx = float((box.sum(0) * xs).sum()) / total
    top = int(np.clip(round(MNIST_CENTER_OF_MASS - cy), 0, IMAGE_SIZE - h))
    left = int(np.clip(round(MNIST_CENTER_OF_MASS - cx), 0, IMAGE_SIZE - w))
    out = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    out[top : top + h, left : left + w] = box
    return out


def preprocess_canvas(array) -> CanvasImage:
    """Drawing (H, W), (H, W, 1|3|4) in uint8 0..255 or float 0..1 -> CanvasImage (28x28 or EMPTY).

    Threshold away faint noise, crop to the ink's bounding box, scale the longest side to 20 px with
    anti-aliasing, paste in 28x28 with the centre of mass where MNIST has it (pixel 14, 14).
    Raises CanvasError (a ValueError) for arrays that are not images.
    """
    ink = ink_map(array)
    low, high = float(ink.min()), float(ink.max())
    if high - low < MIN_INK_CONTRAST:
        return EMPTY
    ink = (ink - low) / (high - low)  # strongest stroke = 1, background = 0
    ink[ink < INK_THRESHOLD] = 0.0
    return CanvasImage(center_by_mass(fit_digit_box(ink)))
