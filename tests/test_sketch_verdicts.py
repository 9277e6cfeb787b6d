"""The Sketch page shows the drawing's one verdict: Prediction: D (P%), Number: 17, or Not a digit: <reason>."""

from __future__ import annotations

import re

import numpy as np
import pytest
from helpers import CANVAS_PX as CANVAS
from helpers import digits_side_by_side, open_app

from mnist.checkpoint import BUNDLED_DIR, WEIGHTS_FILE
from studio.sketch_state import CANVAS_OVERRIDE_KEY

pytestmark = pytest.mark.skipif(not (BUNDLED_DIR / WEIGHTS_FILE).is_file(), reason="needs the bundled model")


def heading(drawing: np.ndarray) -> str:
    at = open_app(**{CANVAS_OVERRIDE_KEY: drawing})
    return "\n".join(m.value for m in at.container("prediction").markdown)


def test_one_digit_reads_as_a_prediction(mnist_data):
    index = 0
    text = heading(digits_side_by_side([mnist_data.test_images[index].numpy()]))
    match = re.match(r"^### Prediction: (\d) \(\d+\.\d%\)", text)
    assert match and int(match.group(1)) == int(mnist_data.test_labels[index]), text


def test_two_digits_read_as_a_number_with_each_digit_shown(mnist_data):
    labels = mnist_data.test_labels
    first, second = int((labels == 1).nonzero()[0]), int((labels == 7).nonzero()[0])
    drawing = digits_side_by_side([mnist_data.test_images[first].numpy(), mnist_data.test_images[second].numpy()])
    at = open_app(**{CANVAS_OVERRIDE_KEY: drawing})
    assert "\n".join(m.value for m in at.container("prediction").markdown).startswith("### Number: 17")
    assert len(at.get("plotly_chart")) == 2, "one probabilities chart per digit"


def test_a_dot_is_not_a_digit():
    drawing = np.zeros((CANVAS, CANVAS), np.uint8)
    yy, xx = np.mgrid[:CANVAS, :CANVAS]
    drawing[(yy - 140) ** 2 + (xx - 140) ** 2 <= 12**2] = 255  # a filled dot, 24 px across
    assert heading(drawing) == "### Not a digit: a dot"


def test_a_blank_canvas_asks_for_a_drawing():
    assert heading(np.zeros((CANVAS, CANVAS), np.uint8)).startswith("### Draw a digit")
