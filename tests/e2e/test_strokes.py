"""A Sketch stroke reruns only the canvas and the prediction (a fragment), never the sidebar, and nothing goes stale.

What the server sent is read from the page's websocket (bench.harness.ScriptRunWatcher): every script run's
end status (a fragment run or the whole page) and each element's root container (the sidebar is root 1).
"""

from __future__ import annotations

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # conftest.py skips every test with the reason (in CI: fails them)
    expect = None

from bench import harness
from mnist.checkpoint import save_run
from mnist.config import TrainConfig

from .helpers import open_app, serve_app

pytestmark = pytest.mark.e2e

FRAGMENT_RUN, FULL_RUN = 3, 0  # ForwardMsg.ScriptFinishedStatus: FINISHED_FRAGMENT_RUN_SUCCESSFULLY, ..._SUCCESSFULLY
SIDEBAR = 1  # root container of the sidebar's elements (0 is the main area)
RUN_NAME = "tiny"  # a second model, besides the bundled one, to switch to in the sidebar
WIDE_STROKE_INK = 1.5  # a stroke at the widest pen (40) has at least this many times the ink of the default (20)


@pytest.fixture
def two_model_server(mnist_dir, mnist_data, tmp_path):
    """An app whose runs folder holds a quickly trained run: the sidebar offers it next to the bundled model."""
    config = TrainConfig(train_limit=2_000, epochs=1, device="cpu")
    from mnist.train import run_training

    done = run_training(config, mnist_data)
    save_run(done.model, config, done.metrics(), done.history, tmp_path / "runs", RUN_NAME)
    with serve_app(mnist_dir, tmp_path) as server:
        yield server


@pytest.fixture
def sketch(browser, two_model_server):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(60_000)
    page = context.new_page()
    open_app(page, two_model_server.url)
    harness.wait_for_canvas(page)
    yield page
    context.close()


class Sent:
    """What the server sends from now on: script runs' end statuses and sidebar elements."""

    def __init__(self, page) -> None:
        self.runs = harness.script_runs(page)
        self.finished, self.sidebar = len(self.runs.finished), self.runs.deltas[SIDEBAR]

    def statuses(self) -> list[int]:
        return self.runs.finished[self.finished :]

    def sidebar_elements(self) -> int:
        return self.runs.deltas[SIDEBAR] - self.sidebar


def clear(page) -> None:
    page.get_by_role("button", name="Clear").click()
    expect(page.locator(harness.PREDICTION_SELECTOR)).to_contain_text("Draw a digit")
    harness.wait_for_canvas(page)


def ink_of_a_one(page) -> int:
    harness.draw_digit(page, 1)
    return harness.canvas_ink(page)


def test_strokes_slider_and_clear_rerun_only_the_fragment(sketch):
    page, prediction = sketch, sketch.locator(harness.PREDICTION_SELECTOR)
    sent = Sent(page)
    harness.draw_digit(page, 4)  # two strokes
    assert harness.prediction_heading(page).startswith("Prediction: 4 (")
    clear(page)
    assert sent.statuses() == [FRAGMENT_RUN] * 3  # two strokes and Clear, each a fragment run
    assert sent.sidebar_elements() == 0
    expect(prediction).not_to_contain_text("Prediction:")  # Clear: no stale prediction
    expect(page.get_by_text("What the model sees")).to_have_count(0)

    default_ink = ink_of_a_one(page)
    clear(page)
    sent = Sent(page)
    slider = page.get_by_role("slider", name="Stroke width")
    slider.focus()
    page.keyboard.press("End")  # the widest pen
    expect(slider).to_have_value("40")
    harness.wait_until_idle(page, 60_000)
    wide_ink = ink_of_a_one(page)
    assert wide_ink >= WIDE_STROKE_INK * default_ink, (default_ink, wide_ink)  # the new width reached the canvas
    assert set(sent.statuses()) == {FRAGMENT_RUN} and sent.sidebar_elements() == 0


def test_choosing_another_model_in_the_sidebar_redoes_the_prediction(sketch):
    page = sketch
    harness.draw_digit(page, 7)
    caption = page.get_by_text("· cpu ·")  # "<model label> · cpu · N ms" under the prediction
    expect(caption).to_contain_text("Bundled")
    sent = Sent(page)
    model = page.get_by_role("combobox", name="Active model")
    model.click()
    model.fill(RUN_NAME)  # the select box filters its options (a run's name) by what is typed
    page.keyboard.press("Enter")
    expect(caption).to_contain_text(f"run {RUN_NAME}")  # the same drawing, predicted by the other model
    assert harness.prediction_heading(page).startswith("Prediction: ")
    assert FULL_RUN in sent.statuses() and sent.sidebar_elements() > 0  # the whole page ran, sidebar included


def test_a_stroke_with_compare_on_shows_both_models(sketch):
    page = sketch
    menu = page.get_by_role("combobox", name="Compare with another model")
    menu.click()
    menu.fill(RUN_NAME)
    page.keyboard.press("Enter")
    harness.wait_until_idle(page, 60_000)
    sent = Sent(page)
    harness.draw_digit(page, 7)
    compared = page.locator(".st-key-compare")
    expect(compared).to_contain_text("Bundled")
    expect(compared).to_contain_text(RUN_NAME)
    expect(compared.get_by_text("Prediction:")).to_have_count(2)  # each model's verdict, side by side
    assert harness.prediction_heading(page).startswith("Prediction: 7 (")  # the active model's, where it was
    assert set(sent.statuses()) == {FRAGMENT_RUN} and sent.sidebar_elements() == 0  # still only the fragment
