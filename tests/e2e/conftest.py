"""Fixtures for the real-browser tests: the app on a free port, Debian's Chromium through Playwright, a page.

Without Chromium (or the playwright package) the browser tests are skipped on a developer machine, with the
reason, and fail in CI (the CI environment variable set), where a missing browser is a broken setup. Every test
under tests/e2e is marked e2e here, so `-m "not e2e"` leaves them all out. Plain helpers (serve_app, window
sizes, strokes and taps) are in helpers.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import harness

from .helpers import TIMEOUT_MS, VIEWPORT, browser_missing_reason, serve_app


def pytest_collection_modifyitems(items):
    """Every test under tests/e2e is a browser test, whether or not its module says so."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Remember each phase's report on the item, so the page fixture knows whether its test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def playwright_instance():
    reason = browser_missing_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the browser tests cannot run in CI: {reason}")
        pytest.skip(f"browser tests skipped: {reason}")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_instance):
    browser = harness.launch_chromium(playwright_instance)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def app_server(mnist_dir, tmp_path_factory):
    """The app shared by the session's tests; stopped after the session."""
    with serve_app(mnist_dir, tmp_path_factory.mktemp("e2e-app")) as server:
        yield server


@pytest.fixture
def fresh_server(mnist_dir, tmp_path):
    """An app of the test's own that no browser has visited yet: the test makes its first request."""
    with serve_app(mnist_dir, tmp_path) as server:
        yield server


def open_page(browser, request, tmp_path_factory, server) -> Iterator:
    """A fresh browser session (its own Streamlit session) at 1400x1000; a screenshot is kept on failure."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        path = Path(tmp_path_factory.getbasetemp()) / f"failure-{request.node.name}.png"
        try:
            page.screenshot(path=str(path), full_page=True)
            print(f"screenshot of the failure: {path}\nstreamlit log: {server.log_path}")
        except Exception as exc:  # the page may be gone; the report matters more than the picture
            print(f"no failure screenshot: {exc}")
    context.close()


@pytest.fixture
def page(browser, app_server, request, tmp_path_factory):
    """A browser session on the shared app (app_server)."""
    yield from open_page(browser, request, tmp_path_factory, app_server)


@pytest.fixture
def fresh_page(browser, fresh_server, request, tmp_path_factory):
    """A browser session on the test's own app (fresh_server)."""
    yield from open_page(browser, request, tmp_path_factory, fresh_server)
