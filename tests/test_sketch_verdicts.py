"""The Sketch page shows the drawing's one verdict: Prediction: D (P%), Number: 17, or Not a digit: <reason>."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from mnist.checkpoint import BUNDLED_DIR, WEIGHTS_FILE
from studio.sketch_state import CANVAS_OVERRIDE_KEY

APP = Path(__file__).resolve().parent.parent / "streamlit_app.py"
TIMEOUT = 120  # seconds per AppTest run: the machine is slow and shared
CANVAS = 280  # the app's canvas, pixels a side
SCALE = 4  # an MNIST digit enlarged to 112 px, two fit side by side

pytestmark = pytest.mark.skipif(not (BUNDLED_DIR / WEIGHTS_FILE).is_file(), reason="needs the bundled model")


def heading(drawing: np.ndarray) -> str:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.session_state[CANVAS_OVERRIDE_KEY] = drawing
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return "\n".join(m.value for m in at.container("prediction").markdown)


def digits_side_by_side(images: list[np.ndarray]) -> np.ndarray:
    """28x28 uint8 digits enlarged SCALE times, left to right with a gap, on a black canvas (grey levels)."""
    canvas = np.zeros((CANVAS, CANVAS), np.uint8)
    left = 20
    for image in images:
        big = np.kron(image, np.ones((SCALE, SCALE), np.uint8))
        canvas[80 : 80 + big.shape[0], left : left + big.shape[1]] = big
        left += big.shape[1] + 10
    return canvas


def test_one_digit_reads_as_a_prediction(mnist_data):
    index = 0
    text = heading(digits_side_by_side([mnist_data.test_images[index].numpy()]))
    match = re.match(r"^### Prediction: (\d) \(\d+\.\d%\)", text)
    assert match and int(match.group(1)) == int(mnist_data.test_labels[index]), text


def test_two_digits_read_as_a_number_with_each_digit_shown(mnist_data):
    labels = mnist_data.test_labels
    first, second = int((labels == 1).nonzero()[0]), int((labels == 7).nonzero()[0])
    drawing = digits_side_by_side([mnist_data.test_images[first].numpy(), mnist_data.test_images[second].numpy()])
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.session_state[CANVAS_OVERRIDE_KEY] = drawing
    at.run()
    assert "\n".join(m.value for m in at.container("prediction").markdown).startswith("### Number: 17")
    assert len(at.get("plotly_chart")) == 2, "one probabilities chart per digit"


def test_a_dot_is_not_a_digit():
    drawing = np.zeros((CANVAS, CANVAS), np.uint8)
    yy, xx = np.mgrid[:CANVAS, :CANVAS]
    drawing[(yy - 140) ** 2 + (xx - 140) ** 2 <= 12**2] = 255  # a filled dot, 24 px across
    assert heading(drawing) == "### Not a digit: a dot"


def test_a_blank_canvas_asks_for_a_drawing():
    assert heading(np.zeros((CANVAS, CANVAS), np.uint8)).startswith("### Draw a digit")
