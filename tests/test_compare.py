"""A second model's reading of a drawing (mnist.compare.reread) is the reading it would make on its own."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import CANVAS_PX as CANVAS
from helpers import digits_side_by_side

from mnist.checkpoint import BUNDLED_DIR, WEIGHTS_FILE, load_checkpoint
from mnist.compare import Agreement, agreement, reread
from mnist.models import build_model, ready_for_inference
from mnist.verdict import FALLBACK, Reading, read_drawing


@pytest.fixture(scope="module")
def bundled():
    if not (BUNDLED_DIR / WEIGHTS_FILE).is_file():
        pytest.skip("needs the bundled model")
    return load_checkpoint(BUNDLED_DIR).model.eval()


@pytest.fixture(scope="module")
def untrained():
    torch.manual_seed(0)
    return ready_for_inference(build_model("mlp")).eval()


def same_reading(a, b) -> None:
    assert (a.verdict, a.digits, a.reason) == (b.verdict, b.digits, b.reason)
    assert len(a.groups) == len(b.groups)
    for x, y in zip(a.groups, b.groups, strict=True):
        assert x.box == y.box and x.verdict == y.verdict and x.reason == y.reason
        np.testing.assert_allclose(x.probabilities, y.probabilities, atol=1e-5)


@pytest.mark.parametrize("indices", [[0], [2, 1]], ids=["one digit", "a number"])
def test_a_second_model_reads_the_drawing_as_it_would_alone(bundled, untrained, mnist_data, indices):
    drawing = digits_side_by_side([mnist_data.test_images[i].numpy() for i in indices])
    first = read_drawing(bundled, drawing, FALLBACK)
    same_reading(reread(untrained, first, FALLBACK), read_drawing(untrained, drawing, FALLBACK))
    same_reading(reread(bundled, first, FALLBACK), first)


def test_nothing_drawn_asks_no_model(untrained):
    blank = read_drawing(untrained, np.zeros((CANVAS, CANVAS), np.uint8))
    assert reread(untrained, blank).empty


def test_agreement_says_when_the_models_differ():
    seven, one = (Reading("digit", d, (d,), 0.9, None, None, ()) for d in (7, 1))
    nothing = Reading("not_a_digit", None, (), None, None, "dot", ())
    assert agreement(seven, seven).text == "Both models read 7."
    assert agreement(seven, one) == Agreement(False, "The models disagree: 7 against 1.")
    assert agreement(seven, nothing).text == "The models disagree: 7 against not a digit."
    assert agreement(nothing, nothing).same
