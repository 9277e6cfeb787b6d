"""A test image opened from Explore in Sketch, in Chromium: the model's prediction for it, its saliency, and back."""

from __future__ import annotations

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # conftest.py skips every test with the reason (in CI: fails them)
    expect = None

from bench import harness
from mnist.checkpoint import BUNDLED_DIR, load_checkpoint
from mnist.data import normalize
from mnist.predict import predict_tensor

from .helpers import go_to, open_app
from .test_browser import set_number

pytestmark = pytest.mark.e2e

SEARCHED = 1000  # test images searched for a mistake of the bundled model (the app's default model)
INDEX_LABEL = "Test image # (0 to 9,999)"


def first_mistake(mnist_data) -> tuple[int, int]:
    """(index, predicted digit) of the bundled model's first mistake among the first test images."""
    model = load_checkpoint(BUNDLED_DIR).model
    predicted = predict_tensor(model, normalize(mnist_data.test_images[:SEARCHED])).argmax(1)
    wrong = (predicted != mnist_data.test_labels[:SEARCHED]).nonzero().flatten().tolist()
    index = wrong[0] if wrong else 0
    return index, int(predicted[index])


def test_a_test_image_opens_in_sketch_with_its_saliency(page, app_server, mnist_data, tmp_path):
    index, predicted = first_mistake(mnist_data)
    label = int(mnist_data.test_labels[index])
    open_app(page, app_server.url)
    go_to(page, "Explore", "Explore")
    set_number(page, INDEX_LABEL, index)
    harness.wait_until_idle(page, 60_000)
    page.locator(".st-key-open_test_image button").click()

    expect(page.get_by_role("heading", name="Sketch a digit")).to_be_visible()
    expect(page.get_by_text(f"MNIST test image #{index} (label {label})")).to_be_visible()
    expect(page.locator(f"{harness.PREDICTION_SELECTOR} h3")).to_contain_text(f"Prediction: {predicted} (")
    why = page.locator('[data-testid="stImage"]').filter(has_text=f"Why {predicted}: pixels that pushed")
    expect(why.locator("img")).to_be_visible()
    assert why.locator("img").evaluate("img => img.complete && img.naturalWidth") > 0  # the picture loaded
    expect(page.locator(harness.CANVAS_SELECTOR)).to_have_count(0)  # the image replaces the canvas
    harness.wait_until_idle(page, 60_000)
    path = tmp_path / "open-in-sketch.png"
    page.screenshot(path=str(path), animations="disabled")
    print(f"screenshot: {path}")

    page.get_by_role("button", name="Back to drawing").click()
    expect(page.locator(harness.CANVAS_SELECTOR)).to_be_visible()
    expect(page.locator(harness.PREDICTION_SELECTOR)).to_contain_text("Draw a digit")
