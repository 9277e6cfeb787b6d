"""Page helpers: paging, images for display, mistake filtering, prediction and progress text.

Everything returns plain Python or NumPy values, so the pages only lay things out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from mnist.preprocess import CanvasImage
from mnist.records import RunRecord
from mnist.train import StepEvent
from mnist.verdict import REASONS, Reading, digit_text

CANVAS_SIZE = 280  # pixels per side of the app's drawing canvas (10x MNIST)
MISTAKE_ORDERS = ("most confident first", "least confident first")
RIGHT_MARK, WRONG_MARK = "✓", "✗"
WRONG_FRAME_RGB = (230, 57, 70)  # red, the colour of a wrong prediction; readable on the dark and light themes
FRAME_WIDTH = 3  # pixels of the red frame round a wrongly predicted thumbnail


@dataclass(frozen=True)
class Page:
    """One page of a paged list: items [start, stop) of total, page number 1-based."""

    number: int
    count: int  # number of pages, at least 1
    start: int
    stop: int
    total: int

    def caption(self, noun: str = "images") -> str:
        if self.total == 0:
            return f"No {noun}."
        shown = f"{noun.capitalize()} {self.start + 1:,}–{self.stop:,} of {self.total:,}"
        return f"{shown} (page {self.number} of {self.count})"


def paginate(total: int, page: int, per_page: int) -> Page:
    """Clamp `page` (1-based) into range and return its bounds."""
    per_page = max(1, per_page)
    count = max(1, math.ceil(total / per_page))
    number = min(max(1, page), count)
    start = (number - 1) * per_page
    return Page(number, count, min(start, total), min(start + per_page, total), total)


# --- images -----------------------------------------------------------------------------------


def to_uint8(image) -> np.ndarray:
    """uint8 image from a uint8 array/tensor or floats in [0, 1]."""
    arr = image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.dtype == np.uint8:
        return arr
    return (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def upscale(image, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement (pixels stay crisp squares), as uint8."""
    arr = to_uint8(image)
    return np.repeat(np.repeat(arr, factor, axis=0), factor, axis=1)


def digit_canvas(image, size: int = CANVAS_SIZE) -> np.ndarray:
    """A 28x28 digit drawn onto a size x size opaque RGBA canvas, white ink on black, like the app's canvas."""
    arr = to_uint8(image)
    factor = size // arr.shape[0]
    big = upscale(arr, factor)
    canvas = np.zeros((size, size, 4), dtype=np.uint8)
    canvas[..., 3] = 255
    h, w = big.shape
    top, left = (size - h) // 2, (size - w) // 2
    for c in range(3):
        canvas[top : top + h, left : left + w, c] = big
    return canvas


def framed(image, colour: tuple[int, int, int] | None, width: int = FRAME_WIDTH) -> np.ndarray:
    """A grey image as RGB uint8, with a `colour` frame `width` pixels wide inside its edge (None: no frame)."""
    arr = to_uint8(image)
    rgb = np.repeat(arr[..., None], 3, axis=2)
    if colour is not None:
        for edge in (np.s_[:width], np.s_[-width:]):
            rgb[edge, :] = colour
            rgb[:, edge] = colour
    return rgb


def mnist_input(image) -> CanvasImage:
    """An MNIST image (28x28, uint8 or floats in [0, 1]) as the model input, untouched.

    Not through preprocess_canvas: MNIST digits are centred already, and re-centring and rescaling them
    changed the bundled model's answer on 10 of its 34 test mistakes (the very images people open).
    """
    arr = np.asarray(image)
    pixels = arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32)
    return CanvasImage(np.clip(pixels, 0.0, 1.0))


def saliency_overlay(
    pixels: np.ndarray, saliency: np.ndarray, factor: int = 8, strength: float = 0.95, gamma: float = 0.6
) -> np.ndarray:
    """RGB uint8 composite: the input in dim grey, the saliency on top in a black-red-yellow heat scale.

    The saliency is shown with a gamma below 1 so that weaker evidence stays visible next to the peak.
    """
    gray = np.clip(np.asarray(pixels, dtype=np.float32), 0, 1) * 0.45
    s = np.clip(np.asarray(saliency, dtype=np.float32), 0, 1) ** gamma
    # "hot" colour map: red rises first, then green (yellow), blue stays low.
    heat = np.stack([np.clip(s * 2, 0, 1), np.clip(s * 2 - 1, 0, 1), np.zeros_like(s)], axis=-1)
    alpha = (s * strength)[..., None]
    rgb = gray[..., None] * (1 - alpha) + heat * alpha
    return upscale(rgb, factor)


def a_digit(digit) -> str:
    """The digit with its article, as it is read aloud: "an 8", "a 7"."""
    return f"{'an' if int(digit) == 8 else 'a'} {digit}"


# --- a model's mistakes -----------------------------------------------------------------------


def filter_mistakes(
    mistakes: list[dict],
    true: int | None = None,
    predicted: int | None = None,
    order: str = MISTAKE_ORDERS[0],
) -> list[dict]:
    """Misclassified images (EvalResult.misclassified()) with that true label and/or prediction, sorted."""
    if order not in MISTAKE_ORDERS:
        raise ValueError(f"order must be one of {MISTAKE_ORDERS}, got {order!r}")
    rows = [
        m
        for m in mistakes
        if (true is None or m["label"] == true) and (predicted is None or m["predicted"] == predicted)
    ]
    return sorted(rows, key=lambda m: (m["confidence"], -m["index"]), reverse=order == MISTAKE_ORDERS[0])


def prediction_caption(label: int, predicted: int) -> str:
    """Under a sample: `7 ✓` when the model is right, `true 4 → 9 ✗` when it is wrong."""
    if predicted == label:
        return f"{label} {RIGHT_MARK}"
    return f"true {label} → {predicted} {WRONG_MARK}"


def sketch_image_caption(index: int, label: int) -> str:
    return f"MNIST test image #{index} (label {label})"


# --- alt text: what an image shows, for a screen reader (read in place of the picture) ----------


def image_alt(what: str, index: int, label: int, predicted: int | None = None, confidence: float | None = None) -> str:
    """`test image #3422, label 6, predicted 0 at 69%`; without a prediction, `training image #5, label 2`."""
    text = f"{what} #{index}, label {label}"
    if predicted is not None:
        text += f", predicted {predicted}"
        if confidence is not None:
            text += f" at {confidence:.0%}"
    return text


def input_alt(digit: int | None, what: str = "drawing") -> str:
    """The 28×28 input Sketch shows next to its verdict; `what` the visitor gave: "drawing" or "picture"."""
    read = "" if digit is None else f", read as {digit}"
    return f"Your {what} as the model sees it: 28 by 28 pixels, centred like MNIST{read}"


def saliency_alt(digit: int) -> str:
    return f"Saliency map for {digit}: the pixels that pushed the model towards {digit} glow red to yellow"


def second_choice(probabilities) -> int:
    """The runner-up digit of ten probabilities."""
    return int(np.argsort(np.asarray(probabilities))[-2])


def prediction_text(digit: int, confidence: float, probabilities, threshold: float) -> str:
    """`Prediction: 7 (98.3%)`, with a hedge and the runner-up below the threshold."""
    text = f"Prediction: {digit} ({confidence * 100:.1f}%)"
    if confidence < threshold:
        text += f" — not sure, maybe {second_choice(probabilities)}"
    return text


def verdict_text(reading: Reading, threshold: float) -> str:
    """A drawing's one verdict line: `Prediction: D (P%)`, `Number: 17`, `Not a digit: a dot`."""
    if reading.verdict == "not_a_digit":
        return f"Not a digit: {REASONS[reading.reason]}"
    if len(reading.groups) > 1:
        text = f"Number: {digit_text(reading.digits)}"
        if reading.verdict == "unsure":
            first, second = reading.top_two
            text += f" — not sure of one digit: {first.digit} or {second.digit}"
        return text
    group = reading.groups[0]
    return prediction_text(group.digit, group.confidence, group.probabilities, threshold)


# --- training runs ----------------------------------------------------------------------------


def format_duration(seconds: float | None) -> str:
    """'45 s', '3 min 05 s', '1 h 02 min'; '–' when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "–"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@dataclass(frozen=True)
class Progress:
    fraction: float  # 0..1
    text: str


def training_progress(steps: list[StepEvent], epochs: int) -> Progress:
    """Progress bar value and text from a job's step events so far."""
    if not steps:
        return Progress(0.0, f"Epoch 1/{epochs} · starting…")
    last = steps[-1]
    total = max(1, last.total_steps)
    fraction = min(1.0, last.step / total)
    text = (
        f"Epoch {last.epoch}/{epochs} · step {last.step:,}/{total:,} · "
        f"{last.images_per_sec:,.0f} images/s · ETA {format_duration(last.eta)}"
    )
    return Progress(fraction, text)


def queue_text(position: int, slots: int, busy: int) -> str:
    """Where a queued run waits and for what: the pool's one training slot, or one of its `slots`."""
    if slots == 1:
        wait = "the training slot frees up (the server trains one run at a time)"
    else:
        wait = f"one of the {slots} training slots frees up ({busy} of {slots} in use)"
    return f"Queued: position {position} in line. It starts when {wait}."


def run_row(name: str, record: RunRecord, made_by: str) -> dict:
    """One row of the run-history table; made_by: "you", "another visitor", "the operator"."""
    config, metrics = record.config, record.metrics
    return {
        "run": name,
        "made by": made_by,
        "created": record.created.replace("T", " ")[:19],
        "arch": record.model_text,
        "test accuracy %": None if metrics.test_accuracy is None else round(metrics.test_accuracy * 100, 2),
        "epochs": metrics.epochs_done,
        "train time": format_duration(metrics.train_seconds),
        "precision": metrics.precision or "",  # "": saved before it was recorded
        "stopped early": metrics.stopped,
        "optimizer": config.optimizer,
        "lr": config.lr,
        "batch": config.batch_size,
        "scheduler": config.scheduler,
        "augment": config.augment,
        "label smoothing": config.label_smoothing,
        "EMA decay": config.ema,
        "train images": f"{config.train_limit:,}" if config.train_limit else "all",
        "parameters": record.parameters,
    }
