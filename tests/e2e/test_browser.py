"""The real app in a real browser: `streamlit run` on a free port, driven by Playwright in headless Chromium.

Each test opens its own browser session at `/` (a fresh server's first request to a subpage takes a detour, see
studio/session.page_setup) and goes to its page through the sidebar, as a person would. The screenshots for
docs/app.md are written to docs/screenshots/ along the way.
"""

from __future__ import annotations

import re

import pytest

try:
    from playwright.sync_api import Page, expect
except ImportError:  # conftest.py skips every test with the reason (in CI: fails them)
    Page = expect = None

from bench import harness
from mnist.config import TrainConfig

from .helpers import TIMEOUT_MS, go_to, markdown, open_app, screenshot

pytestmark = pytest.mark.e2e

SKETCHED_DIGITS = (0, 1, 3, 4, 7)  # drawn with the mouse, in this order; the last one is in the screenshot
TRAIN_RUN_TIMEOUT_MS = 240_000  # a short run, but the machine may be shared with other work
PROGRESS_RE = re.compile(r"Epoch (\d+)/(\d+) · step ([\d,]+)/([\d,]+) · ([\d,]+) images/s · ETA")


DEFAULT_ARCH = TrainConfig().arch  # the form starts from the fast preset


MORE_SETTINGS = "More settings"  # Train's expander of the fields after Start (pages/train.py MORE_SETTINGS)


def more_settings(page: Page):
    return page.locator('[data-testid="stExpander"] summary').filter(has_text=MORE_SETTINGS).first


def open_more_settings(page: Page) -> None:
    """Open Train's More settings expander (its fields are hidden while it is closed)."""
    summary = more_settings(page)
    if summary.locator("xpath=..").get_attribute("open") is None:
        summary.click()


def set_number(page: Page, label: str, value: int) -> None:
    field = page.locator(f'input[aria-label="{label}"]')
    # Wait for the page: the field, or (on Train) the closed expander that hides it; then open that if needed.
    expect(field.or_(more_settings(page)).first).to_be_visible()
    if not field.is_visible():
        open_more_settings(page)
    field.fill(str(value))
    field.press("Enter")  # commits the value: the app reruns
    expect(field).to_have_value(str(value))


# --- Sketch -----------------------------------------------------------------------------------


def test_sketch_predicts_drawn_digits_and_clears(page: Page, app_server):
    open_app(page, app_server.url)
    prediction = page.locator(harness.PREDICTION_SELECTOR)
    expect(prediction).to_contain_text("Draw a digit")

    for i, digit in enumerate(SKETCHED_DIGITS):
        harness.draw_digit(page, digit)
        heading = harness.prediction_heading(page)
        assert heading.startswith(f"Prediction: {digit} ("), f"drew a {digit}, the app says {heading!r}"
        # The explanation next to the prediction: what the model sees and why it chose this digit.
        expect(page.get_by_text(f"Why {digit}: pixels that pushed towards it glow")).to_be_visible()
        expect(page.get_by_text("What the model sees: 28×28")).to_be_visible()
        if i == len(SKETCHED_DIGITS) - 1:
            screenshot(page, "sketch.png")
        page.get_by_role("button", name="Clear").click()
        expect(prediction).to_contain_text("Draw a digit")
        expect(prediction).not_to_contain_text("Prediction:")
        expect(page.get_by_text("What the model sees")).to_have_count(0)


# --- Train ------------------------------------------------------------------------------------


def progress_text(page: Page) -> str:
    bar = page.locator('[data-testid="stProgress"]').first
    expect(bar).to_contain_text("images/s", timeout=TRAIN_RUN_TIMEOUT_MS)  # the first steps are done
    return bar.inner_text().strip()


def step_of(progress: str) -> int:
    return int(PROGRESS_RE.search(progress).group(3).replace(",", ""))


def start_run(page: Page, *, images: int, epochs: int, batch: int) -> None:
    set_number(page, "Training images (0 = all)", images)
    set_number(page, "Epochs", epochs)
    set_number(page, "Batch size", batch)
    harness.wait_until_idle(page, TIMEOUT_MS)
    page.get_by_role("button", name="Start training").click()


def test_train_run_shows_live_progress_and_summary(page: Page, app_server):
    open_app(page, app_server.url)
    go_to(page, "Train", "Train a model")
    expect(page.get_by_text("Start a run to watch it learn here")).to_be_visible()

    start_run(page, images=3000, epochs=3, batch=32)  # 279 steps: a few seconds on an idle machine
    title = markdown(page, rf"{DEFAULT_ARCH} · 3 epochs · batch 32 · first 3,000 images · ")
    expect(title).to_be_visible()

    first = progress_text(page)
    assert PROGRESS_RE.search(first), repr(first)
    expect(page.locator(".st-key-live_step_loss .js-plotly-plot").first).to_be_visible()
    # The live panel refreshes itself every second: the progress moves on while the run goes on.
    bar = page.locator('[data-testid="stProgress"]').first
    expect(bar).not_to_have_text(first, timeout=TRAIN_RUN_TIMEOUT_MS)
    assert bar.count() == 1, f"the run ended before its progress moved on from {first!r}"
    second = bar.inner_text().strip()
    assert second != first and PROGRESS_RE.search(second), (first, second)
    assert step_of(second) > step_of(first), (first, second)

    summary = page.get_by_text(re.compile(r"Finished: test accuracy \d+\.\d\d% after")).first
    expect(summary).to_be_visible(timeout=TRAIN_RUN_TIMEOUT_MS)
    # 3,000 // 32 = 93 steps per epoch; then the number format it trained in (bfloat16 on an AMX CPU)
    expect(summary).to_contain_text(re.compile(r"\(3 epochs, 279 steps, in (float32|bfloat16|float16)\)"))
    expect(title).to_contain_text("· finished")
    expect(bar).to_have_count(0)
    for chart in ("live_step_loss", "live_epochs", "live_lr"):
        expect(page.locator(f".st-key-{chart} .js-plotly-plot").first).to_be_visible()
    accuracy = float(re.search(r"test accuracy (\d+\.\d\d)%", summary.inner_text()).group(1))
    assert accuracy > 50, f"3 epochs on 3,000 images should learn something, got {accuracy}%"
    # The run is saved and listed.
    expect(page.get_by_role("heading", name="Saved runs")).to_be_visible()
    expect(page.get_by_text("No saved runs yet")).to_have_count(0)
    harness.wait_until_idle(page, TIMEOUT_MS)
    page.get_by_text("Progress", exact=True).scroll_into_view_if_needed()
    screenshot(page, "train.png")


def test_train_run_can_be_stopped(page: Page, app_server):
    open_app(page, app_server.url)
    go_to(page, "Train", "Train a model")
    start_run(page, images=12000, epochs=3, batch=32)  # 1,125 steps: long enough to stop it on the way
    title = markdown(page, rf"{DEFAULT_ARCH} · 3 epochs · batch 32 · first 12,000 images · ")
    expect(title).to_contain_text("· training", timeout=TRAIN_RUN_TIMEOUT_MS)
    progress_text(page)

    page.get_by_role("button", name="Stop (keeps the model trained so far)").click()
    stopped = page.get_by_text(re.compile(r"Stopped after [\d,]+ steps: the model trained so far was saved")).first
    expect(stopped).to_be_visible(timeout=TRAIN_RUN_TIMEOUT_MS)
    expect(title).to_contain_text("· stopped")
    steps = int(re.search(r"Stopped after ([\d,]+) steps", stopped.inner_text()).group(1).replace(",", ""))
    assert 0 < steps < 1125, f"stopped mid-way, but after {steps} of 1,125 steps"
    expect(page.get_by_text("Finished: test accuracy")).to_have_count(0)


# --- Explore ----------------------------------------------------------------------------------

# A confusion-matrix cell's aria-label (studio/explore_charts.py): what a screen reader hears, and its count.
CELL_RE = re.compile(r"predicted digit: (\d); true digit: (\d); mistakes: \d+; images: (\d+)")


def test_explore_confusion_cell_filters_gallery(page: Page, app_server):
    open_app(page, app_server.url)
    go_to(page, "Explore", "Explore")
    page.get_by_role("tab", name="The model's mistakes").click()
    heading = markdown(page, r"[\d,]+ misclassified test images")
    expect(heading).to_contain_text("(true any, predicted any)", timeout=120_000)  # evaluates 10,000 images first
    harness.wait_until_idle(page, TIMEOUT_MS)

    cells = page.locator(".st-key-confusion path[aria-label]")
    expect(cells).to_have_count(100)
    counts = {}
    for label in cells.evaluate_all("ps => ps.map(p => p.getAttribute('aria-label'))"):
        predicted_digit, true_digit, images = map(int, CELL_RE.match(label).groups())
        counts[true_digit, predicted_digit] = images
    # The most frequent mistake: an off-diagonal cell.
    true, predicted = max((c for c in counts if c[0] != c[1]), key=counts.get)
    expected = counts[true, predicted]
    assert expected > 0, "the bundled model makes no mistake at all?"
    cell = page.locator(f'.st-key-confusion path[aria-label^="predicted digit: {predicted}; true digit: {true};"]')
    cell.click()

    expect(heading).to_contain_text(f"{expected:,} misclassified test images (true {true}, predicted {predicted})")
    expect(page.get_by_role("combobox", name="True digit")).to_have_value(str(true))  # the fallback filters follow
    expect(page.get_by_role("combobox", name="Predicted digit")).to_have_value(str(predicted))
    harness.wait_until_idle(page, TIMEOUT_MS)
    captions = page.locator('[data-testid="stImageCaption"]').filter(has_text="→")
    expect(captions).to_have_count(min(expected, 40))  # 40 mistakes per page
    for caption in captions.all_inner_texts():
        assert re.match(rf"#\d+: {true}→{predicted} \d+%", caption.strip()), caption
    # The matrix outlines the chosen cell.
    expect(cell).to_have_attribute("stroke", re.compile("#ff8c42", re.IGNORECASE))
    # Frame the model, its metrics, the matrix with its outlined cell and the filtered gallery in one viewport.
    page.evaluate(
        """() => {
          const captions = document.querySelectorAll('[data-testid="stMain"] [data-testid="stCaptionContainer"]');
          const caption = Array.from(captions).find(c => c.innerText.startsWith('Active model:'));
          caption.scrollIntoView({block: 'start'});
          let scroller = caption.parentElement;  // Streamlit scrolls its main block, not the window
          while (scroller && scroller.scrollTop === 0) scroller = scroller.parentElement;
          (scroller || document.scrollingElement).scrollBy(0, -16);  // a little room above the caption
        }"""
    )
    page.wait_for_timeout(500)
    screenshot(page, "explore.png")
