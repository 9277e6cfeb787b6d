"""Issue 24 in Chromium: on a 390x844 touch phone the answer shows under the whole canvas; every image says what
it shows, and the verdict is announced (an aria-live region)."""

from __future__ import annotations

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # conftest.py skips every test with the reason (in CI: fails them)
    expect = None

from bench import harness

from .helpers import PHONE, TIMEOUT_MS, go_to, open_app, screenshot, touch_digit

pytestmark = pytest.mark.e2e

DIGIT = 7
PROBABILITIES_SELECTOR = ".st-key-probabilities"
# Every <img> of the page that has no alt, or an empty one (Streamlit's own icons included).
IMAGES_WITHOUT_ALT_JS = """() => [...document.querySelectorAll('img')]
  .filter(img => !(img.getAttribute('alt') || '').trim()).map(img => img.src.slice(0, 80))"""


def in_viewport(page, selector: str) -> bool:
    """Whether the element's whole box is inside the window, as it is scrolled now."""
    box = page.locator(selector).first.bounding_box()
    size = page.viewport_size
    return box["y"] >= 0 and box["x"] >= 0 and box["y"] + box["height"] <= size["height"] and box["width"] > 0


@pytest.fixture
def phone(browser, app_server):
    context = browser.new_context(**PHONE)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    open_app(page, app_server.url)
    harness.wait_for_canvas(page)
    yield page
    context.close()


def test_phone_shows_the_verdict_and_probabilities_under_the_whole_canvas(phone):
    page = phone
    touch_digit(page, DIGIT)
    expect(page.locator(harness.PREDICTION_SELECTOR)).to_contain_text(f"Prediction: {DIGIT}")
    expect(page.locator(f"{PROBABILITIES_SELECTOR} .main-svg").first).to_be_visible()
    assert page.evaluate("window.scrollY") == 0  # as the page opened: nothing scrolled into view for the test
    for selector in (harness.CANVAS_SELECTOR, harness.PREDICTION_SELECTOR, PROBABILITIES_SELECTOR):
        assert in_viewport(page, selector), f"{selector} at {page.locator(selector).first.bounding_box()}"
    canvas, verdict = page.locator(harness.CANVAS_SELECTOR).bounding_box(), page.locator(".st-key-prediction h3")
    assert verdict.bounding_box()["y"] > canvas["y"] + canvas["height"]  # under the canvas
    for bar in page.locator(".modebar-container").all():  # a touch screen gets no Plotly tool bar
        expect(bar).to_be_hidden()
    screenshot(page, "sketch-phone.png")  # the README's


def test_every_image_has_alt_text_and_the_verdict_is_live(page, app_server):
    open_app(page, app_server.url)
    harness.draw_digit(page, DIGIT)
    prediction = page.locator(harness.PREDICTION_SELECTOR)
    expect(prediction).to_have_attribute("aria-live", "polite")
    expect(prediction.locator("h3")).to_contain_text(f"Prediction: {DIGIT}")
    expect(page.get_by_alt_text("Your drawing as the model sees it", exact=False)).to_be_visible()
    expect(page.get_by_alt_text(f"Saliency map for {DIGIT}", exact=False)).to_be_visible()
    expect(page.get_by_role("img", name="Drawing canvas", exact=False)).to_have_count(1)
    assert page.evaluate(IMAGES_WITHOUT_ALT_JS) == []

    go_to(page, "Explore", "Explore")
    expect(page.get_by_alt_text("mean training image of digit 0")).to_be_visible()
    expect(page.get_by_alt_text("sample image #", exact=False).first).to_be_visible()
    assert page.evaluate(IMAGES_WITHOUT_ALT_JS) == []
    page.get_by_role("tab", name="The model's mistakes").click()
    expect(page.get_by_alt_text("test image #", exact=False).first).to_be_visible()
    assert page.evaluate(IMAGES_WITHOUT_ALT_JS) == []
