"""Explore on a 390x844 touch phone, in Chromium: one tap on a confusion-matrix cell filters the mistakes, one tap
on a mistake opens it in Sketch. The taps are real touch events (DevTools Input.dispatchTouchEvent), not clicks."""

from __future__ import annotations

import re

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # conftest.py skips every test with the reason (in CI: fails them)
    expect = None

from bench import harness

from .helpers import TIMEOUT_MS, markdown, screenshot, tap
from .test_phone_layout import PHONE

pytestmark = pytest.mark.e2e

CELLS = ".st-key-confusion path[aria-label]"  # the matrix renders as SVG: one labelled path per cell
CELL_RE = re.compile(r"predicted digit: (\d); true digit: (\d); mistakes: \d+; images: (\d+)")
TILES = '.st-key-mistake_tiles [role="button"]'
EVALUATION_MS = 240_000  # the first visit to the mistakes evaluates the model on 10,000 images


def cell_counts(page) -> dict[tuple[int, int], int]:
    """(true, predicted) -> images, read from the cells' labels."""
    counts = {}
    for label in page.locator(CELLS).evaluate_all("paths => paths.map(p => p.getAttribute('aria-label'))"):
        match = CELL_RE.match(label)
        if match:
            predicted, true, images = map(int, match.groups())
            counts[true, predicted] = images
    return counts


def cell(page, true: int, predicted: int):
    return page.locator(f'{CELLS}[aria-label^="predicted digit: {predicted}; true digit: {true};"]')


@pytest.fixture
def phone(browser, app_server):
    context = browser.new_context(**PHONE)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{app_server.url}/explore")
    expect(page.get_by_role("heading", name="Explore", exact=True)).to_be_visible()
    yield page
    context.close()


def test_one_tap_on_a_cell_filters_and_one_tap_on_a_mistake_opens_it(phone):
    page = phone
    tap(page, page.get_by_role("tab", name="The model's mistakes"))
    heading = markdown(page, r"[\d,]+ misclassified test images? \(true")
    expect(heading).to_contain_text("(true any, predicted any)", timeout=EVALUATION_MS)
    harness.wait_until_idle(page, TIMEOUT_MS)
    expect(page.locator(CELLS)).to_have_count(100)
    counts = cell_counts(page)
    true, predicted = max((c for c in counts if c[0] != c[1]), key=lambda c: (counts[c], -c[0], -c[1]))
    expected = counts[true, predicted]
    assert expected > 0, "the bundled model makes no mistake at all?"

    target = cell(page, true, predicted)
    target.evaluate("cell => cell.scrollIntoView({block: 'center'})")  # clear of the phone's fixed header
    harness.wait_until_idle(page, TIMEOUT_MS)  # the chart as the last run left it, listening
    tap(page, target)  # one tap: no hover first
    noun = "image" if expected == 1 else "images"
    # The filtered page is a whole rerun (the data tab runs too): slow on a loaded 2-core machine.
    expect(heading).to_contain_text(
        f"{expected:,} misclassified test {noun} (true {true}, predicted {predicted})", timeout=EVALUATION_MS
    )
    expect(cell(page, true, predicted)).to_have_attribute("stroke", re.compile("#ff8c42", re.IGNORECASE))
    harness.wait_until_idle(page, TIMEOUT_MS)
    tiles = page.locator(TILES)
    expect(tiles).to_have_count(min(expected, 40))
    screenshot(page, "explore-phone-cell.png")

    first = tiles.first
    index = int(re.search(r"#(\d+)", first.get_attribute("aria-label")).group(1))
    first.scroll_into_view_if_needed()
    tap(page, first)
    expect(page.get_by_role("heading", name="Sketch a digit")).to_be_visible()
    expect(page.get_by_text(f"MNIST test image #{index} (label {true})")).to_be_visible()
    expect(page.locator(f"{harness.PREDICTION_SELECTOR} h3")).to_contain_text(f"Prediction: {predicted} (")


def test_a_test_sample_opens_in_sketch_from_the_keyboard(page, app_server):
    page.goto(f"{app_server.url}/explore")
    expect(page.get_by_role("heading", name="Explore", exact=True)).to_be_visible()
    page.get_by_role("radio", name="test", exact=True).click()  # the Split control
    tiles = page.locator('.st-key-sample_tiles [role="button"]')
    expect(tiles).to_have_count(60)
    tile = tiles.nth(1)  # test image #1, a 2
    expect(tile).to_have_attribute("aria-label", "Open in Sketch: test image #1, a 2")
    tile.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Sketch a digit")).to_be_visible()
    expect(page.get_by_text("MNIST test image #1 (label 2)")).to_be_visible()
