"""See inside the model in Chromium: Sketch's five views fill after a drawn digit, Train shows a run's insight.

The neighbour index of 60,000 training images takes ~110 s to build; the server's runs folder is seeded
with one of SEED_IMAGES training images stored under the full set's key, which the app loads as its own.
Screenshots of both pages with the views open go to docs/screenshots/ (as test_browser.py's do).
"""

from __future__ import annotations

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # conftest.py skips every test with the reason (in CI: fails them)
    expect = None

from bench import harness
from mnist.checkpoint import BUNDLED_DIR, load_checkpoint
from mnist.neighbours import (
    TRAIN_FEATURES_FILE,
    NeighbourIndex,
    build_neighbour_index,
    neighbour_index_key,
    save_neighbour_index,
)
from studio.background import CACHE_FOLDER

from .helpers import SCREENSHOTS, go_to, open_app, serve_app
from .test_browser import start_run

pytestmark = pytest.mark.e2e

SKETCH_VIEWS = ("feature-maps", "filters", "digit-map", "neighbours", "fool-the-model")
SEED_IMAGES = 3000
DRAWN = 7
BACKGROUND_TIMEOUT_MS = 180_000  # the digit map loads in the background (the bundled model's shipped file)
TRAIN_TIMEOUT_MS = 240_000
VIEWPORT_WIDTH, VIEWPORT_HEIGHT = 1400, 1000
MAX_SCREENSHOT_HEIGHT = 4000  # px
SCROLL_HEIGHT_JS = """() => Math.max(...["stMain", "stAppViewContainer", "stMainBlockContainer"].map(
  (id) => document.querySelector(`[data-testid="${id}"]`)?.scrollHeight || 0))"""


@pytest.fixture
def inside_server(mnist_dir, mnist_data, tmp_path):
    model = load_checkpoint(BUNDLED_DIR).model
    small = build_neighbour_index(model, mnist_data, limit=SEED_IMAGES)
    seeded = NeighbourIndex(small.features, small.labels, neighbour_index_key(model, mnist_data))
    folder = tmp_path / "runs" / CACHE_FOLDER / "bundled"
    folder.mkdir(parents=True)
    save_neighbour_index(seeded, folder / TRAIN_FEATURES_FILE)
    with serve_app(mnist_dir, tmp_path) as server:
        yield server


@pytest.fixture
def page(browser, inside_server):
    context = browser.new_context(viewport={"width": VIEWPORT_WIDTH, "height": VIEWPORT_HEIGHT})
    context.set_default_timeout(60_000)
    page = context.new_page()
    yield page
    context.close()


def screenshot_whole(page, name: str) -> None:
    """The whole page: Streamlit scrolls inside its own container, so full_page=True sees one screen only;
    a window as tall as the content does."""
    height = page.evaluate(SCROLL_HEIGHT_JS)
    page.set_viewport_size({"width": VIEWPORT_WIDTH, "height": min(height, MAX_SCREENSHOT_HEIGHT)})
    harness.wait_until_idle(page, 60_000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), animations="disabled")
    page.set_viewport_size({"width": VIEWPORT_WIDTH, "height": VIEWPORT_HEIGHT})


def test_views_fill_after_a_drawing_and_train_shows_the_insight(page, inside_server):
    open_app(page, inside_server.url)
    harness.draw_digit(page, DRAWN)
    assert harness.prediction_heading(page).startswith(f"Prediction: {DRAWN} (")
    for key in SKETCH_VIEWS:
        expect(page.locator(f".st-key-{key}")).to_have_count(0)  # off for a first visit

    page.get_by_text("Inside the model", exact=True).click()
    expect(page.locator(".st-key-feature-maps img")).to_have_count(5)  # cnn-bn: five conv layers
    expect(page.locator(".st-key-filters img")).to_have_count(1)
    expect(page.locator(".st-key-digit-map .js-plotly-plot")).to_be_visible(timeout=BACKGROUND_TIMEOUT_MS)
    expect(page.locator(".st-key-neighbours img")).to_have_count(8, timeout=BACKGROUND_TIMEOUT_MS)
    expect(page.locator(".st-key-neighbours")).to_contain_text("distance")
    fool = page.locator(".st-key-fool-the-model")
    fool.get_by_role("button", name="Fool the model").click()
    expect(fool).to_contain_text("the model reads a 3")
    expect(fool.locator("img")).to_have_count(3)  # original, change, result
    harness.wait_until_idle(page, 60_000)
    screenshot_whole(page, "sketch-inside.png")

    go_to(page, "Train", "Train a model")
    start_run(page, images=5000, epochs=2, batch=64)
    insight = page.locator(".st-key-training-insight")
    expect(insight.locator("img")).to_have_count(17, timeout=TRAIN_TIMEOUT_MS)  # the filters and 16 test digits
    expect(page.get_by_text("Finished: test accuracy")).to_be_visible(timeout=TRAIN_TIMEOUT_MS)
    expect(insight.locator(".js-plotly-plot")).to_be_visible()  # the confusion matrix
    # A window tall enough for the whole panel: images below the window are not painted in time.
    page.set_viewport_size({"width": VIEWPORT_WIDTH, "height": MAX_SCREENSHOT_HEIGHT})
    harness.wait_until_idle(page, 60_000)
    expect(insight.locator("img").last).to_be_visible()
    insight.screenshot(path=str(SCREENSHOTS / "train-insight.png"), animations="disabled")
