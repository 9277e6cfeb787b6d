"""Fixtures for the real-browser tests: the app on a free port, Debian's Chromium through Playwright, a page.

Without Chromium (or the playwright package) the browser tests are skipped on a developer machine, with the
reason, and fail in CI (the CI environment variable set), where a missing browser is a broken setup.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import harness

VIEWPORT = {"width": 1400, "height": 1000}
TIMEOUT_MS = 60_000  # default for every Playwright action and expect(): the machine is slow and shared
SERVER_START_TIMEOUT = 120  # seconds for `streamlit run` to answer /_stcore/health


def browser_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -r requirements-dev.txt)"
    if not harness.CHROMIUM.is_file() or not os.access(harness.CHROMIUM, os.X_OK):
        return f"Chromium not found at {harness.CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)"
    return None


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
