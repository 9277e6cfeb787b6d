"""Explore's sample grid with the model's predictions, and a test image opened from Explore in Sketch (AppTest).

The expected predictions come from the library's own evaluate() of the active (bundled) model, not from the app.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from helpers import PAGES, open_app
from streamlit.testing.v1 import AppTest

from mnist.checkpoint import BUNDLED_DIR, WEIGHTS_FILE, load_checkpoint
from mnist.data import normalize
from mnist.predict import predict_canvas
from mnist.records import ModelRef
from mnist.train import evaluate
from studio.sketch_state import SKETCH_IMAGE_KEY
from studio.views import WRONG_FRAME_RGB, digit_canvas, framed

SKETCH = PAGES["sketch"]
TIMEOUT = 180  # seconds per script run: the first Explore run with a model evaluates it on 10,000 images
PER_PAGE = 60  # pages/explore.py SAMPLES_PER_PAGE
SAMPLE_GRID = 10  # st.image elements before the sample grid: the ten mean images
PREDICTION_RE = re.compile(r"^### Prediction: (\d) \((\d{1,3}\.\d)%\)")
TRAIN_PAGE = 7  # a page of training images no other test asks for, so its predictions are not cached yet


@pytest.fixture(scope="module")
def model():
    if not (BUNDLED_DIR / WEIGHTS_FILE).is_file():
        pytest.fail("the bundled model is part of the checkout: mnist/assets/default-model/")
    return load_checkpoint(BUNDLED_DIR).model


@pytest.fixture(scope="module")
def result(model, mnist_data):
    return evaluate(model, mnist_data.test_images, mnist_data.test_labels)


def open_explore() -> AppTest:
    return open_app("explore", active_model=ModelRef.bundled(), timeout=TIMEOUT)


def expected_caption(label: int, predicted: int) -> str:
    return f"{label} ✓" if label == predicted else f"true {label} → {predicted} ✗"


def heading(at: AppTest) -> str:
    return "\n".join(m.value for m in at.container("prediction").markdown)


def button(at: AppTest, key: str):
    return next(b for b in at.button if b.key == key)


@pytest.mark.slow
def test_test_samples_mark_the_evaluations_right_and_wrong(with_data, mnist_data, result):
    first_mistake = int((result.predictions != result.labels).nonzero()[0])
    page = first_mistake // PER_PAGE + 1
    at = open_explore()
    at.segmented_control(key="sample_split").set_value("test").run()
    at.number_input(key="sample_page_test_None").set_value(page).run()
    shown = range(*page_range(page))
    assert at.image[SAMPLE_GRID].captions == [f"#{i} · {int(mnist_data.test_labels[i])}" for i in shown]

    at.toggle(key="sample_predictions").set_value(True).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    captions = at.image[SAMPLE_GRID].captions
    assert captions == [f"#{i} · {expected_caption(int(result.labels[i]), int(result.predictions[i]))}" for i in shown]
    wrong = f"true {int(result.labels[first_mistake])} → {int(result.predictions[first_mistake])} ✗"
    assert f"#{first_mistake} · {wrong}" in captions


def page_range(page: int) -> tuple[int, int]:
    return (page - 1) * PER_PAGE, page * PER_PAGE


@pytest.mark.slow
def test_train_samples_are_predicted_one_page_at_a_time(with_data, mnist_data, model, monkeypatch):
    import mnist.predict

    batches = []
    real = mnist.predict.predict_tensor

    def counted(m, x):
        batches.append(len(x))
        return real(m, x)

    monkeypatch.setattr(mnist.predict, "predict_tensor", counted)  # pages/explore.py imports it at each run
    at = open_explore()
    at.toggle(key="sample_predictions").set_value(True).run()
    at.number_input(key="sample_page_train_None").set_value(TRAIN_PAGE).run()
    assert not at.exception and not at.error, [e.value for e in at.error]

    start, stop = page_range(TRAIN_PAGE)
    predicted = real(model, normalize(mnist_data.train_images[start:stop])).argmax(1).tolist()
    labels = mnist_data.train_labels[start:stop].tolist()
    pairs = enumerate(zip(labels, predicted, strict=True), start=start)
    expected = [f"#{i} · {expected_caption(t, p)}" for i, (t, p) in pairs]
    assert at.image[SAMPLE_GRID].captions == expected
    assert batches and max(batches) <= PER_PAGE, batches  # a page's batch, never the training set


def test_wrong_thumbnails_get_a_red_frame_and_right_ones_none():
    image = np.full((6, 6), 200, np.uint8)
    assert (framed(image, None) == 200).all()
    marked = framed(image, WRONG_FRAME_RGB, width=1)
    assert tuple(marked[0, 3]) == WRONG_FRAME_RGB and tuple(marked[3, 0]) == WRONG_FRAME_RGB
    assert tuple(marked[3, 3]) == (200, 200, 200)


def check_sketch_shows(at: AppTest, index: int, result, mnist_data) -> None:
    """Sketch shows test image `index` with the model's own prediction for it (evaluate()'s)."""
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.title[0].value == "Sketch a digit"
    assert at.session_state[SKETCH_IMAGE_KEY] == index
    match = PREDICTION_RE.match(heading(at))
    assert match, heading(at)
    predicted = int(result.predictions[index])
    assert int(match.group(1)) == predicted
    assert float(match.group(2)) == pytest.approx(float(result.confidences[index]) * 100, abs=0.06)
    label = int(mnist_data.test_labels[index])
    assert f"MNIST test image #{index} (label {label})" in [c.value for c in at.caption]
    assert any(f"Why {predicted}: pixels that pushed" in c for image in at.image for c in image.captions)


@pytest.mark.slow
def test_open_a_test_image_in_sketch_and_back_to_drawing(with_data, mnist_data, result):
    index = 1234
    at = open_explore()
    at.number_input(key="open_test_index").set_value(index).run()
    button(at, "open_test_image").click().run()
    check_sketch_shows(at, index, result, mnist_data)

    at.switch_page(SKETCH)  # AppTest's next run would go back to the page it last chose itself, Explore
    next(b for b in at.button if b.label == "Back to drawing").click().run()
    assert not at.exception
    assert SKETCH_IMAGE_KEY not in at.session_state
    assert "Draw a digit" in heading(at) and "Prediction" not in heading(at)


@pytest.mark.slow
def test_a_mistake_opens_with_the_prediction_explore_lists(with_data, mnist_data, model, result):
    # A mistake the canvas preprocessing (re-centring, rescaling) would read differently: Sketch must not.
    mistakes = [m["index"] for m in result.misclassified()][:40]  # the gallery's first page, most confident first
    redrawn = {i: predict_canvas(model, digit_canvas(mnist_data.test_images[i]))[1].digit for i in mistakes}
    index = next(i for i in mistakes if redrawn[i] != int(result.predictions[i]))
    at = open_explore()
    at.selectbox(key="open_mistake_index").set_value(index).run()
    button(at, "open_mistake").click().run()
    check_sketch_shows(at, index, result, mnist_data)
