"""A two-digit drawing in a real browser: the Sketch page reads it as a number, left to right."""

from __future__ import annotations

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # conftest.py skips every test with the reason (in CI: fails them)
    expect = None

from bench import harness

from .helpers import open_app, screenshot

pytestmark = pytest.mark.e2e

HALF = 0.5  # each digit drawn at half size, one in each half of the canvas
LEFT_X, RIGHT_X = 75, 205  # canvas pixels: the digits' centres, with a clear gap between them


def test_two_digits_side_by_side_read_as_a_number(page, app_server):
    open_app(page, app_server.url)
    harness.draw_digit(page, 1, centre_x=LEFT_X, scale=HALF)
    harness.draw_digit(page, 7, centre_x=RIGHT_X, scale=HALF)
    expect(page.locator(harness.PREDICTION_SELECTOR)).to_contain_text("Number: 17")
    assert harness.prediction_heading(page).startswith("Number: 17"), harness.prediction_heading(page)
    screenshot(page, "sketch-number.png")
