"""Sketch's Picture tab: a picture of a digit gets the drawing's verdict display; a bad file a plain refusal."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from helpers import open_app
from PIL import Image
from streamlit.testing.v1 import AppTest

from mnist.checkpoint import BUNDLED_DIR, WEIGHTS_FILE
from studio.sketch_state import CANVAS_OVERRIDE_KEY
from studio.views import digit_canvas

SCALE = 12  # an MNIST digit enlarged to 336 px, on a sheet of paper
PAPER = 235  # the paper's grey level: light, not pure white
MARGIN = 150  # pixels of paper around the digit
PREDICTION_RE = re.compile(r"^### Prediction: (\d) \(\d+\.\d%\)")

pytestmark = pytest.mark.skipif(not (BUNDLED_DIR / WEIGHTS_FILE).is_file(), reason="needs the bundled model")


def paper_png(digit: np.ndarray) -> bytes:
    """A 28x28 MNIST digit as a PNG of dark ink on light paper, enlarged and with a margin."""
    ink = np.kron(digit.astype(np.float32) / 255, np.ones((SCALE, SCALE), np.float32))
    sheet = np.full((ink.shape[0] + 2 * MARGIN, ink.shape[1] + 2 * MARGIN), PAPER, np.float32)
    sheet[MARGIN:-MARGIN, MARGIN:-MARGIN] -= ink * (PAPER - 30)  # ink 30, paper 235
    buffer = io.BytesIO()
    Image.fromarray(sheet.astype(np.uint8)).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def open_picture_tab(**state) -> AppTest:
    return open_app(**state, sketch_input="Picture")


def prediction(at: AppTest) -> str:
    return "\n".join(m.value for m in at.container(key="prediction").markdown)


def test_a_picture_of_a_digit_on_paper_is_read(mnist_data, runs_dir):
    at = open_picture_tab()
    assert prediction(at) == "### Give a picture"
    index = 0
    at.file_uploader(key="picture_upload").upload("seven.png", paper_png(mnist_data.test_images[index].numpy()))
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    match = PREDICTION_RE.match(prediction(at))
    assert match and int(match.group(1)) == int(mnist_data.test_labels[index]), prediction(at)
    alts = [img.alt for image in at.image for img in getattr(image.proto, "imgs", [image.proto])]
    assert any(alt.startswith("The ink found in seven.png") for alt in alts), alts
    assert any(alt.startswith("Your picture as the model sees it") for alt in alts), alts  # the 28x28 input
    assert any(alt.startswith("Saliency map for") for alt in alts), alts
    assert len(at.get("plotly_chart")) == 1  # its ten probabilities


def test_a_text_file_is_refused_in_plain_words_and_the_drawing_is_kept(mnist_data, runs_dir):
    drawing = digit_canvas(mnist_data.test_images[1])  # a 2 on the canvas
    at = open_picture_tab(**{CANVAS_OVERRIDE_KEY: drawing})
    at.file_uploader(key="picture_upload").upload("notes.png", b"shopping list: milk, eggs", "image/png").run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("notes.png: ") and "PNG or JPEG" in errors[0], errors
    assert prediction(at) == "### Give a picture"
    at.session_state["sketch_input"] = "Draw"
    at.run()
    match = PREDICTION_RE.match(prediction(at))
    assert match and int(match.group(1)) == int(mnist_data.test_labels[1]), prediction(at)
