"""Plain helpers the tests import (`from helpers import ...`); fixtures live in conftest.py.

Data the tests make: random MnistData, IDX files written to a folder, and where the real MNIST is; drawings on
the 280x280 canvas as arrays (a digit pasted, digits side by side, pen strokes); the app opened through AppTest
(`open_app`). Browser strokes, mouse and touch, are in e2e/helpers.py.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
SHARED_MNIST = REPO.parent / "shared" / "mnist"
APP = REPO / "streamlit_app.py"
APP_TIMEOUT = 120  # seconds per AppTest script run: the machine is slow and shared
PAGES = {"sketch": "pages/sketch.py", "train": "pages/train.py", "explore": "pages/explore.py"}
CANVAS_PX = 280  # the Sketch canvas's side
SUPERSAMPLE = 2  # strokes are drawn this many times larger, then box-filtered down: smooth edges like a browser


def random_mnist(train: int, test: int, seed: int = 0):
    """MnistData of random images and labels: `train` training and `test` test images (jobs, pools, faults)."""
    from mnist.data import random_mnist as make

    return make(train, test, seed)


def real_mnist_dir() -> Path | None:
    for candidate in (os.environ.get("MNIST_DATA_DIR"), SHARED_MNIST):
        if candidate and Path(candidate).is_dir():
            from mnist.data import find_mnist_files

            if find_mnist_files(Path(candidate)):
                return Path(candidate)
    return None


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False, magic: int | None = None) -> Path:
    """Write a uint8 array as an IDX file (optionally gzipped, optionally with a forged magic)."""
    array = np.asarray(array, dtype=np.uint8)
    magic = magic if magic is not None else (0x08 << 8) | array.ndim
    payload = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


def write_small_mnist(folder: Path, *, n_train: int = 50, n_test: int = 20, gz: bool = False, seed: int = 0):
    """Four valid IDX files with random images and labels 0..9; returns (train_images, train_labels)."""
    rng = np.random.default_rng(seed)
    suffix = ".gz" if gz else ""
    arrays = {}
    for split, n, prefix in (("train", n_train, "train"), ("test", n_test, "t10k")):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, gz=gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz=gz)
        arrays[split] = (images, labels)
    return arrays


# --- drawings on the canvas, as arrays ---------------------------------------------------------------------


def as_rgba(gray: np.ndarray) -> np.ndarray:
    """A grey-level canvas as the RGBA array the canvas component sends: grey in RGB, fully opaque."""
    out = np.zeros((*gray.shape, 4), dtype=np.uint8)
    out[..., :3] = gray[..., None]
    out[..., 3] = 255
    return out


def paste_digit(digit: np.ndarray, scale: int, top: int, left: int, *, rgba: bool = True) -> np.ndarray:
    """A 28x28 uint8 digit scaled up by `scale` (nearest) and pasted on a black 280x280 canvas at (top, left)."""
    big = np.kron(np.asarray(digit, dtype=np.uint8), np.ones((scale, scale), dtype=np.uint8))
    canvas = np.zeros((CANVAS_PX, CANVAS_PX), dtype=np.uint8)
    canvas[top : top + big.shape[0], left : left + big.shape[1]] = big
    return as_rgba(canvas) if rgba else canvas


def digits_side_by_side(images, *, scale: int = 4, top: int = 80, left: int = 20, gap: int = 10) -> np.ndarray:
    """28x28 uint8 digits enlarged `scale` times, left to right `gap` px apart, on a black grey-level canvas."""
    canvas = np.zeros((CANVAS_PX, CANVAS_PX), np.uint8)
    for image in images:
        big = np.kron(np.asarray(image, dtype=np.uint8), np.ones((scale, scale), np.uint8))
        canvas[top : top + big.shape[0], left : left + big.shape[1]] = big
        left += big.shape[1] + gap
    return canvas


def draw_strokes(strokes, width: float = 18, fills=()) -> np.ndarray:
    """Polylines (round joints and caps) and filled polygons, in canvas pixels, as an RGBA canvas."""
    image = Image.new("L", (CANVAS_PX * SUPERSAMPLE, CANVAS_PX * SUPERSAMPLE), 0)
    pen = ImageDraw.Draw(image)
    w = round(width * SUPERSAMPLE)
    for points in strokes:
        scaled = [(x * SUPERSAMPLE, y * SUPERSAMPLE) for x, y in points]
        if len(scaled) > 1:
            pen.line(scaled, fill=255, width=w, joint="curve")
        for x, y in (scaled[0], scaled[-1]):
            pen.ellipse((x - w / 2, y - w / 2, x + w / 2, y + w / 2), fill=255)
    for points in fills:
        pen.polygon([(x * SUPERSAMPLE, y * SUPERSAMPLE) for x, y in points], fill=255)
    return as_rgba(np.asarray(image.resize((CANVAS_PX, CANVAS_PX), Image.BOX)))


# --- the app through AppTest -------------------------------------------------------------------------------


def assert_no_exception(at) -> None:
    """The script run raised nothing; else the exceptions' messages are the failure."""
    assert not at.exception, [e.value for e in at.exception]


def open_app(page: str = "sketch", *, token=None, query=None, via_sketch=True, timeout=APP_TIMEOUT, **state):
    """A new AppTest session of the app on `page` ("sketch", "train" or "explore"), after one clean run.

    token: the browser's visitor token; query: the address's query parameters; state: session_state set before
    the first run. via_sketch: the first run is Sketch (a visitor landing there), then the page is switched to;
    False opens `page`'s address directly, so its query reaches that page first.
    """
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=timeout)
    if token is not None:
        at.session_state["visitor_token"] = token
    for name, value in (query or {}).items():
        at.query_params[name] = value
    for key, value in state.items():
        at.session_state[key] = value
    if page == "sketch" or via_sketch:
        at.run()
    if page != "sketch":
        at.switch_page(PAGES[page]).run()
    assert_no_exception(at)
    return at
