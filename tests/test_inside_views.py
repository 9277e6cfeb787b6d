"""The "Inside the model" views in the app, through AppTest: Sketch's five containers, Train's training insight.

The drawing comes through the canvas seam (studio.sketch_state.CANVAS_OVERRIDE_KEY): a real MNIST test digit on a
280x280 canvas. The digit map comes from the background worker (the bundled model's shipped file); the
neighbour index is built from NEIGHBOUR_IMAGES training images instead of 60,000 (110 s) to keep the test short.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import json
import re
import time

import numpy as np
import pytest
import torch
from helpers import open_app
from PIL import Image
from streamlit.testing.v1 import AppTest

from mnist import neighbours
from mnist.checkpoint import BUNDLED_DIR, WEIGHTS_FILE
from mnist.inside import extract_filters, inspect_drawing
from mnist.models import build_model
from studio import sketch_state
from studio.inside_maps import activation_image, activation_png, filters_image
from studio.views import digit_canvas

WAIT_SECONDS = 240  # for a background computation or a training run
SKETCH_VIEWS = ("feature-maps", "filters", "digit-map", "neighbours", "fool-the-model")
NEIGHBOUR_IMAGES = 2000
DRAWN = 0  # test image #0, a 7
STAR = "your drawing"
MAP_NEIGHBOURS = 20  # test points around the drawing's star whose labels are counted

pytestmark = pytest.mark.skipif(not (BUNDLED_DIR / WEIGHTS_FILE).is_file(), reason="needs the bundled model")


@pytest.fixture
def small_index(monkeypatch):
    """The neighbour index of the first NEIGHBOUR_IMAGES training images (the app asks for all 60,000)."""
    build = neighbours.build_neighbour_index
    monkeypatch.setattr("mnist.neighbours.build_neighbour_index", functools.partial(build, limit=NEIGHBOUR_IMAGES))


def sketch(mnist_data, **query) -> AppTest:
    return open_app(query=query, **{sketch_state.CANVAS_OVERRIDE_KEY: digit_canvas(mnist_data.test_images[DRAWN])})


def present(at: AppTest, key: str) -> bool:
    try:
        at.container(key)
    except KeyError:
        return False
    return True


def wait_for(at: AppTest, condition, what: str):
    """Rerun (as the page's poller would) until condition(at) is truthy."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        found = condition(at)
        if found:
            return found
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def decode(array) -> np.ndarray:
    """A plotly JSON array: a list, or {"dtype", "bdata"} (plotly 6's base64 typed arrays)."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))
    return np.asarray(array)


def map_traces(at: AppTest) -> list[dict] | None:
    charts = at.container("digit-map").get("plotly_chart")
    return json.loads(charts[0].proto.spec)["data"] if charts else None


def captions_of(element) -> list[str]:
    return element.captions


def gallery_captions(at: AppTest, key: str) -> list[str]:
    """The captions of a view's inlined images (inside_maps.gallery), in order."""
    text = "".join(h.value for h in at.container(key).html)
    return [html.unescape(c) for c in re.findall(r"<figcaption>(.*?)</figcaption>", text)]


# --- Sketch ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_views_are_off_for_a_first_visit_and_absent_when_switched_off(with_data, mnist_data):
    at = sketch(mnist_data)
    assert at.toggle(key="inside_on").value is False
    assert not any(present(at, key) for key in SKETCH_VIEWS)

    at.toggle(key="inside_on").set_value(True).run()
    assert all(present(at, key) for key in SKETCH_VIEWS)
    at.pills(key="inside_views").set_value(["filters"]).run()  # the others folded away
    assert [key for key in SKETCH_VIEWS if present(at, key)] == ["filters"]
    at.toggle(key="inside_on").set_value(False).run()
    assert not any(present(at, key) for key in SKETCH_VIEWS)


def test_query_parameter_switches_every_view_on(with_data, mnist_data):
    at = sketch(mnist_data, inside="on")
    assert at.toggle(key="inside_on").value is True
    assert all(present(at, key) for key in SKETCH_VIEWS)


def test_feature_maps_and_filters_of_the_bundled_cnn(with_data, mnist_data):
    at = sketch(mnist_data, inside="on")
    captions = gallery_captions(at, "feature-maps")
    assert len(captions) == 5, captions  # cnn-bn's five conv layers, one grid each
    assert "32 × 28 × 28 (32 channels)" in captions[0] and "128 × 7 × 7 (128 channels)" in captions[-1]
    assert "layer 0 · Conv2d → BatchNorm2d → ReLU" in captions[0]
    (filters,) = gallery_captions(at, "filters")
    assert "32 kernels (32 × 1 × 3 × 3)" in filters
    # Each view explains itself in plain words, with this model's and this drawing's numbers.
    (maps_text,) = [c.value for c in at.container("feature-maps").caption if "detectors" in c.value]
    assert "Layer 0 has 32 channels: 32 different detectors, each a 3×3 filter" in maps_text
    assert re.search(r"Channel \d+ fires most \(\d+\.\d\d\), in the [a-z ]+ of the image", maps_text), maps_text
    assert "128 channels in layer" in maps_text
    filters_text = "\n".join(c.value for c in at.container("filters").caption)
    assert "These are the 32 filters of the first layer, each a 3×3 grid of weights" in filters_text


@pytest.mark.slow
def test_digit_map_places_the_drawing_among_its_digit_and_neighbours_share_its_label(
    with_data, small_index, mnist_data
):
    at = sketch(mnist_data, inside="on")
    traces = wait_for(at, map_traces, "the background digit map")
    by_name = {t["name"]: t for t in traces}
    digits = [by_name[str(d)] for d in range(10)]
    assert sum(len(decode(t["x"])) for t in digits) == len(mnist_data.test_labels)  # every test image
    assert any(name.startswith("mistakes (") for name in by_name)
    star = np.array([by_name[STAR]["x"][0], by_name[STAR]["y"][0]])
    points = np.concatenate([np.stack([decode(t["x"]), decode(t["y"])], 1) for t in digits])
    labels = np.concatenate([np.full(len(decode(t["x"])), d) for d, t in enumerate(digits)])
    around = labels[np.argsort(np.linalg.norm(points - star, axis=1))[:MAP_NEIGHBOURS]]
    drawn = int(mnist_data.test_labels[DRAWN])
    assert (around == drawn).mean() >= 0.8, around  # the drawing of a 7 lands among the 7s

    captions = wait_for(at, lambda a: gallery_captions(a, "neighbours"), "the neighbour index")
    assert len(captions) == 8
    distances = [float(c.split("distance ")[1]) for c in captions]
    assert distances == sorted(distances)
    assert sum(c.startswith(f"a {drawn} ") for c in captions) >= 6, captions


def test_fool_the_model_reaches_the_target_or_says_the_budget_is_too_small(with_data, mnist_data):
    at = sketch(mnist_data, inside="on")
    fooled = at.container("fool-the-model")
    assert "The model reads a 7" in fooled.caption[-1].value
    at.button(key="fool_go").click().run()
    fooled = at.container("fool-the-model")
    assert fooled.success and "the model reads a 3" in fooled.success[0].value, [e.value for e in fooled.error]
    captions = [c for element in fooled.image for c in captions_of(element)]
    assert captions[0] == "original: 7" and captions[2] == "result: the model reads 3"
    assert "largest pixel change" in captions[1]
    assert any("makes the model read a 3, though to you" in c.value for c in fooled.caption)

    at.slider(key="fool_budget_linf").set_value(0.02).run()  # a fiftieth of full ink: not enough for a 7 -> 3
    at.button(key="fool_go").click().run()
    warning = at.container("fool-the-model").warning
    assert warning and warning[0].value.startswith("The budget is not enough"), warning


def test_linear_only_model_shows_its_hidden_units_and_first_layer_weights_as_images():
    model = build_model("mlp").eval()
    activations = inspect_drawing(model, np.zeros((28, 28), np.uint8)).activations
    assert [a.shape for a in activations] == [(256,), (128,)]
    assert activation_image(activations[0]).shape == (16, 16, 3)  # 256 units: a 16x16 grid, a pixel each
    weights = filters_image(extract_filters(model))
    assert weights.shape == (16 * 29 - 1, 16 * 29 - 1, 3)  # 256 images of 28x28, 1 px apart


@pytest.mark.parametrize(
    ("arch", "kind"),  # (layer kind, signed) that the arch must show: ReLU maps, raw conv maps, hidden units
    [("cnn-bn-fast", ("conv", False)), ("lenet-dropout", ("conv", True)), ("mlp", ("linear", False))],
)
def test_feature_map_pngs_hold_exactly_the_coloured_pixels(arch, kind, mnist_data):
    torch.manual_seed(0)
    model = build_model(arch).eval()
    activations = inspect_drawing(model, mnist_data.test_images[0].numpy()).activations
    kinds = set()
    for layer in activations:
        png, width = activation_png(layer)
        with Image.open(io.BytesIO(png)) as image:
            assert image.mode == "P"  # paletted: the cheap encoding the page sends on every stroke
            decoded = np.asarray(image.convert("RGB"))
        expected = activation_image(layer)
        assert width == expected.shape[1]
        np.testing.assert_array_equal(decoded, expected)
        kinds.add((layer.kind, bool((layer.values < 0).any())))
    assert kind in kinds  # the colour table of that kind of layer was checked


# --- Train -----------------------------------------------------------------------------------


def insight_images(at: AppTest, key: str) -> list[str]:
    return [c for element in at.container(key).image for c in captions_of(element)]


@pytest.mark.slow
def test_training_insight_live_then_finished_then_saved(with_data):
    at = open_app("train")
    # The net these counts were measured with: its panel of hard digits is 10 of 16 right after 3 epochs
    # (cnn-bn-lite, as accurate on the test set, gets 9: the panel is 16 digits, not an accuracy).
    at.selectbox(key="cfg_arch").set_value("cnn-bn-fast").run()
    at.text_input(key="cfg_train_limit").set_value("20000")
    at.text_input(key="cfg_epochs").set_value("3")
    at.run()
    next(b for b in at.button if b.label == "Start training").click().run()

    def live_insight(a):
        return a.get("progress") and present(a, "training-insight") and a.container("training-insight").image

    wait_for(at, live_insight, "an epoch's insight while the run trains")
    wait_for(at, lambda a: [s for s in a.success if "Finished" in s.value], "the run to finish")
    captions = insight_images(at, "training-insight")
    assert captions[0].startswith("First layer 0 after epoch 3: 16 kernels")  # cnn-bn-fast: conv 1 -> 16
    panel = captions[1:]
    assert len(panel) == 16 and all(c[0] in "✓✗" for c in panel)
    assert sum(c.startswith("✓") for c in panel) >= 10  # after 3 epochs most of the panel is right
    assert at.select_slider(key="job_insight_epoch_3").options == ["1", "2", "3"]
    explained = "\n".join(c.value for c in at.container("training-insight").caption)
    assert "After epoch 3:" in explained and "Each row is the true digit" in explained
    assert "Move the epoch slider" in explained
    at.select_slider(key="job_insight_epoch_3").set_value(1).run()
    assert "after epoch 1" in insight_images(at, "training-insight")[0]

    saved = insight_images(at, "run-insight")  # the Saved runs area: read back from insight.safetensors
    assert saved[0].startswith("First layer 0 after epoch 3") and len(saved) == 17
