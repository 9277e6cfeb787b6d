"""Integrated gradients: the few path points a live view affords per stroke still give the same map."""

from __future__ import annotations

import numpy as np
import pytest

from mnist.checkpoint import BUNDLED_DIR, WEIGHTS_FILE, load_checkpoint
from mnist.predict import LIVE_IG_STEPS, predict_canvas, saliency_map
from studio.views import digit_canvas

REFERENCE_STEPS = 64  # close to the exact path integral
DIGITS = 30  # MNIST test digits compared
MIN_MEDIAN_CORRELATION = 0.9  # measured: 0.96 for 4 points, 0.98 for 8, 0.99 for 16

pytestmark = pytest.mark.skipif(not (BUNDLED_DIR / WEIGHTS_FILE).is_file(), reason="needs the bundled model")


@pytest.fixture(scope="module")
def model():
    return load_checkpoint(BUNDLED_DIR).model


@pytest.mark.slow
def test_the_live_views_few_steps_give_the_reference_map(model, mnist_data):
    steps = LIVE_IG_STEPS  # what Sketch uses per stroke
    correlations = []
    for index in range(DIGITS):
        image, prediction = predict_canvas(model, digit_canvas(mnist_data.test_images[index]))
        coarse = saliency_map(model, image, prediction.digit, steps=steps)
        fine = saliency_map(model, image, prediction.digit, steps=REFERENCE_STEPS)
        assert coarse.shape == (28, 28) and coarse.min() >= 0 and coarse.max() == pytest.approx(1.0)
        correlations.append(np.corrcoef(coarse.ravel(), fine.ravel())[0, 1])
    assert np.median(correlations) >= MIN_MEDIAN_CORRELATION, sorted(correlations)


def test_steps_must_be_positive(model, mnist_data):
    image, _ = predict_canvas(model, digit_canvas(mnist_data.test_images[0]))
    with pytest.raises(ValueError, match="steps"):
        saliency_map(model, image, steps=0)
