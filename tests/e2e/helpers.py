"""Plain helpers and constants the browser tests import (`from .helpers import ...`); fixtures are in conftest.py.

The app served on a free port (serve_app), the window sizes, and every way a test draws or taps: the mouse and
touch strokes come from bench/harness.py (shared with the benches), re-exported here so tests have one place.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # conftest.py skips every browser test with the reason (in CI: fails them)
    expect = None

from bench import harness
from bench.harness import DIGIT_STROKES, draw_digit, draw_stroke, tap_canvas, touch_stroke

__all__ = ["DIGIT_STROKES", "draw_digit", "draw_stroke", "tap_canvas", "touch_stroke"]

VIEWPORT = {"width": 1400, "height": 1000}
PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True, "device_scale_factor": 3}
TIMEOUT_MS = 60_000  # default for every Playwright action and expect(): the machine is slow and shared
SERVER_START_TIMEOUT = 120  # seconds for `streamlit run` to answer /_stcore/health
SCREENSHOTS = harness.REPO / "docs" / "screenshots"  # the pictures docs/app.md shows, written by the tests


def browser_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -r requirements-dev.txt)"
    if not harness.CHROMIUM.is_file() or not os.access(harness.CHROMIUM, os.X_OK):
        return f"Chromium not found at {harness.CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)"
    return None


@contextlib.contextmanager
def serve_app(mnist_dir: Path, folder: Path) -> Iterator[harness.Server]:
    """`streamlit run streamlit_app.py` with real MNIST and an empty runs folder in `folder`.

    A server that does not start fails the test with the end of its log; the log's path is server.log_path.
    """
    env = {"MNIST_DATA_DIR": str(mnist_dir), "MNIST_RUNS_DIR": str(folder / "runs")}
    log_path = folder / "streamlit.log"
    started = False
    try:
        with harness.run_app(env, timeout=SERVER_START_TIMEOUT, log_path=log_path) as server:
            server.log_path = log_path
            started = True
            yield server
    except (RuntimeError, TimeoutError) as exc:
        if started:  # raised by the test itself, not by the start
            raise
        log = log_path.read_text(errors="replace")[-4000:] if log_path.exists() else ""
        pytest.fail(f"the app did not start: {exc}\n--- streamlit log ---\n{log}")


def touch_digit(page, digit: int) -> None:
    """Draw a digit with a finger, stroke by stroke, each stroke's rerun over before the next."""
    harness.install_watchers(page)
    for points in DIGIT_STROKES[digit]:
        harness.wait_for_canvas(page, TIMEOUT_MS)
        before = harness.canvas_ink(page)
        touch_stroke(page, points)
        harness.wait_for_ink(page, before, digit)
        harness.wait_for_run_after_stroke(page, TIMEOUT_MS)


def tap(page, locator) -> None:
    """One finger's tap on the middle of the element: touchStart, touchEnd, nothing in between (DevTools
    Input.dispatchTouchEvent, so the page gets real touch events, not a click)."""
    box = locator.bounding_box()
    point = {"x": box["x"] + box["width"] / 2, "y": box["y"] + box["height"] / 2}
    session = page.context.new_cdp_session(page)
    try:
        session.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [point]})
        session.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    finally:
        session.detach()


def screenshot(page, name: str) -> Path:
    """The page as docs/screenshots/`name`, animations stopped."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), animations="disabled")
    return path


def open_app(page, url: str) -> None:
    """Load the landing page (Sketch) and wait for its canvas."""
    page.goto(url)
    expect(page.locator(harness.CANVAS_SELECTOR)).to_be_visible()
    expect(page.get_by_role("heading", name="Sketch a digit")).to_be_visible()


def go_to(page, link: str, heading: str) -> None:
    """Follow a sidebar link and wait for the page's title."""
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=link).click()
    expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()


def markdown(page, pattern: str):
    """The Markdown block whose text matches `pattern` (a regex): whole paragraphs, bold parts included.

    The first one: while the live panel reruns, Streamlit may briefly keep the previous copy of an element.
    """
    return page.locator('[data-testid="stMarkdownContainer"]').filter(has_text=re.compile(pattern)).first
