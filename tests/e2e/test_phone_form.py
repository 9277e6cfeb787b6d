"""The Train form in Chromium: on a phone its columns stack and the fields keep the order in which a desktop
reads them; a message appearing above a field does not wipe what is being typed in it."""

from __future__ import annotations

import dataclasses

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # conftest.py skips every test with the reason (in CI: fails them)
    expect = None

from bench import harness
from mnist.config import FIELD_SPECS, TrainConfig

from .helpers import PHONE, TIMEOUT_MS, VIEWPORT
from .test_browser import open_more_settings

pytestmark = pytest.mark.e2e

DEFAULTS = dataclasses.asdict(TrainConfig())
# The form's fields that show with the default values (no momentum with Adam, ...), and the run's name.
LABELS = [spec.label for spec in FIELD_SPECS.values() if spec.in_form and spec.applies(DEFAULTS)] + ["Run name"]
LABEL_SELECTOR = '[data-testid="stWidgetLabel"], [data-testid="stCheckbox"] label'


def label_boxes(browser, url: str, **context_args) -> dict[str, dict]:
    """Each field's label box on the Train page, in a browser session with these settings (viewport, ...)."""
    context = browser.new_context(**context_args)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(f"{url}/train")
        expect(page.get_by_role("heading", name="Train a model", exact=True)).to_be_visible()
        open_more_settings(page)  # every field in view: the order is the page's, expander or not
        boxes = {}
        for label in LABELS:
            box = page.locator(LABEL_SELECTOR).get_by_text(label, exact=True).first.bounding_box()
            assert box is not None, f"no field labelled {label!r} on the Train page"
            boxes[label] = box
        return boxes
    finally:
        context.close()


def start_button_top(browser, url: str) -> float:
    """The top of Start on the Train page at the desktop's size, More settings open."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.goto(f"{url}/train")
        open_more_settings(page)
        return page.get_by_role("button", name="Start training").bounding_box()["y"]
    finally:
        context.close()


def reading_order(boxes: dict[str, dict]) -> list[str]:
    """Labels as a person reads them: row by row (tops within 4 px are one row), left to right in a row."""
    rows: list[list[str]] = []
    for label in sorted(boxes, key=lambda k: boxes[k]["y"]):
        if rows and abs(boxes[label]["y"] - boxes[rows[-1][0]]["y"]) < 4:
            rows[-1].append(label)
        else:
            rows.append([label])
    return [label for row in rows for label in sorted(row, key=lambda k: boxes[k]["x"])]


def test_phone_form_keeps_the_desktops_reading_order(browser, app_server):
    desktop = label_boxes(browser, app_server.url, viewport=VIEWPORT)
    phone = label_boxes(browser, app_server.url, **PHONE)

    desktop_order = reading_order(desktop)
    images = FIELD_SPECS["train_limit"].label  # Epochs and the training images: above Start, side by side
    assert desktop_order.index("Epochs") + 1 == desktop_order.index(images)
    assert desktop["Epochs"]["y"] == pytest.approx(desktop[images]["y"], abs=4)  # side by side on a desktop
    start = start_button_top(browser, app_server.url)
    assert desktop["Epochs"]["y"] < start < desktop["Batch size"]["y"]  # a short Tab path: Start before the rest
    tops = [phone[label]["y"] for label in desktop_order]
    assert all(a + 10 < b for a, b in zip(tops, tops[1:], strict=False)), dict(zip(desktop_order, tops, strict=True))
    half = PHONE["viewport"]["width"] / 2
    assert all(box["x"] < half for box in phone.values()), phone  # one column on a phone: no right-hand field


def test_a_field_keeps_what_is_being_typed_while_a_message_appears_above_it(page, app_server):
    page.goto(f"{app_server.url}/train")
    expect(page.get_by_role("heading", name="Train a model", exact=True)).to_be_visible()
    harness.wait_until_idle(page, TIMEOUT_MS)
    open_more_settings(page)
    epochs, seed = page.get_by_label("Epochs", exact=True), page.get_by_label("Seed", exact=True)
    epochs.fill("0")
    epochs.press("Enter")  # the rerun draws a message under the first row...
    seed.fill("7")  # ...while Seed, rows below, is being typed in (no Enter yet)
    expect(page.get_by_text("Epochs must be a whole number")).to_be_visible()
    harness.wait_until_idle(page, TIMEOUT_MS)
    expect(seed).to_have_value("7")
    seed.press("Enter")
    harness.wait_until_idle(page, TIMEOUT_MS)
    expect(seed).to_have_value("7")
