"""Many visitors on one server, in a real browser: your run survives a reload, and only you can delete it.

A browser context is one visitor (its own cookies); a second page in the same context is a second tab.
"""

from __future__ import annotations

import re

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # conftest.py skips every test with the reason (in CI: fails them)
    expect = None

from .helpers import TIMEOUT_MS, VIEWPORT, go_to, markdown, open_app
from .test_browser import DEFAULT_ARCH, TRAIN_RUN_TIMEOUT_MS, progress_text, set_number, start_run, step_of

pytestmark = pytest.mark.e2e

STOP_LABEL = "Stop (keeps the model trained so far)"


def new_visitor(browser):
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    return context


def choose_run(page, name: str) -> None:
    """Pick a saved run in "Manage a run"."""
    box = page.get_by_role("combobox", name="Manage a run")
    box.scroll_into_view_if_needed()
    if box.input_value() != name:
        box.click()
        box.fill(name)  # the select box filters its options by what is typed
        page.keyboard.press("Enter")
    expect(box).to_have_value(name)


def test_reload_and_a_second_tab_reattach_to_the_running_job(page, app_server):
    open_app(page, app_server.url)
    go_to(page, "Train", "Train a model")
    start_run(page, images=12000, epochs=4, batch=32)  # 1,500 steps: still training after the reload
    title = markdown(page, rf"{DEFAULT_ARCH} · 4 epochs · batch 32 · first 12,000 images · ")
    expect(title).to_contain_text("· training", timeout=TRAIN_RUN_TIMEOUT_MS)
    before = step_of(progress_text(page))

    page.reload()  # what a visitor does by accident, mid-run
    expect(page.get_by_role("heading", name="Train a model", exact=True)).to_be_visible()
    expect(title).to_contain_text("· training", timeout=TRAIN_RUN_TIMEOUT_MS)
    assert step_of(progress_text(page)) >= before  # the same run, live, not a new one
    expect(page.get_by_text("Start a run to watch it learn here")).to_have_count(0)

    tab = page.context.new_page()  # a second tab of the same browser, opened at the bare address
    tab.goto(app_server.url)
    go_to(tab, "Train", "Train a model")
    tab_title = markdown(tab, rf"{DEFAULT_ARCH} · 4 epochs · batch 32 · first 12,000 images · ")
    expect(tab_title).to_contain_text("· training", timeout=TRAIN_RUN_TIMEOUT_MS)

    tab.get_by_role("button", name=STOP_LABEL).click()  # Stop works from the reattached view
    stopped = tab.get_by_text(re.compile(r"Stopped after [\d,]+ steps: the model trained so far was saved")).first
    expect(stopped).to_be_visible(timeout=TRAIN_RUN_TIMEOUT_MS)
    expect(title).to_contain_text("· stopped", timeout=TRAIN_RUN_TIMEOUT_MS)  # the first tab follows
    tab.close()


def test_a_reload_during_seeds_shows_the_seed_that_trains(page, app_server):
    """Two seeds: the first trains, the second waits. A reload shows the one training, with Stop, not the queued one."""
    open_app(page, app_server.url)
    go_to(page, "Train", "Train a model")
    set_number(page, "Seeds", 2)
    start_run(page, images=12000, epochs=4, batch=32)  # 1,500 steps each: the first still trains after the reload
    first = markdown(page, rf"{DEFAULT_ARCH} · 4 epochs · batch 32 · first 12,000 images · seed 0 · ")
    expect(first).to_contain_text("· training", timeout=TRAIN_RUN_TIMEOUT_MS)

    page.reload()
    expect(page.get_by_text("2 seeds: 0 of 2 runs finished")).to_be_visible(timeout=TRAIN_RUN_TIMEOUT_MS)
    expect(first).to_contain_text("· training", timeout=TRAIN_RUN_TIMEOUT_MS)  # not seed 1, queued behind it
    page.get_by_role("button", name=STOP_LABEL).click()
    expect(first).to_contain_text("· stopped", timeout=TRAIN_RUN_TIMEOUT_MS)
    # The second seed: stop it too (the next tests share the server); a stopped seed means no ensemble.
    runs = page.get_by_role("combobox", name="Your runs")
    runs.click()
    page.get_by_role("option", name=re.compile(r"seed 1 · ")).click()
    second = markdown(page, rf"{DEFAULT_ARCH} · 4 epochs · batch 32 · first 12,000 images · seed 1 · ")
    expect(second).to_contain_text("· training", timeout=TRAIN_RUN_TIMEOUT_MS)
    page.get_by_role("button", name=STOP_LABEL).click()
    expect(second).to_contain_text("· stopped", timeout=TRAIN_RUN_TIMEOUT_MS)


def train_and_use_a_run(page, url: str) -> str:
    """A new visitor trains a 20-step run (seconds), makes it the active model; the run's name."""
    open_app(page, url)
    go_to(page, "Train", "Train a model")
    start_run(page, images=1000, epochs=1, batch=50)
    summary = page.get_by_text(re.compile(r"Finished: test accuracy \d+\.\d\d% after")).first
    expect(summary).to_be_visible(timeout=TRAIN_RUN_TIMEOUT_MS)
    page.get_by_role("button", name="Use this model in Sketch and Explore").click()
    saved = page.get_by_text(re.compile(r"Saved as .* the active model")).first
    expect(saved).to_be_visible()
    return re.search(r"Saved as (\S+) ·", saved.inner_text()).group(1).strip("`")


def test_another_visitor_cannot_delete_your_run(page, app_server, browser):
    run_name = train_and_use_a_run(page, app_server.url)
    choose_run(page, run_name)
    expect(page.get_by_text(re.compile(r"· made by you$")).first).to_be_visible()
    expect(page.get_by_role("button", name="Delete…")).to_be_visible()

    other = new_visitor(browser)
    try:
        stranger = other.new_page()
        open_app(stranger, app_server.url)
        go_to(stranger, "Train", "Train a model")
        expect(stranger.get_by_role("heading", name="Saved runs")).to_be_visible()
        choose_run(stranger, run_name)
        expect(stranger.get_by_text(re.compile(r"· made by another visitor$")).first).to_be_visible()
        refusal = re.compile(r"Made by another visitor: you cannot rename or delete it")
        expect(stranger.get_by_text(refusal)).to_be_visible()
        expect(stranger.get_by_role("button", name="Delete…")).to_have_count(0)
        expect(stranger.get_by_role("button", name="Rename")).to_have_count(0)
    finally:
        other.close()
    page.reload()  # the run is still there for its maker
    expect(page.get_by_role("button", name="Delete…")).to_be_visible(timeout=TRAIN_RUN_TIMEOUT_MS)


def test_five_starts_leave_one_request_and_the_next_visitor_is_next(page, app_server, browser):
    open_app(page, app_server.url)
    go_to(page, "Train", "Train a model")
    start_run(page, images=12000, epochs=4, batch=32)  # 1,500 steps: still training through the test
    title = markdown(page, rf"{DEFAULT_ARCH} · 4 epochs · batch 32 · first 12,000 images · ")
    expect(title).to_contain_text("· training", timeout=TRAIN_RUN_TIMEOUT_MS)
    refusal = page.get_by_text(re.compile(r"Not started: you already have a run waiting or training")).first
    for _ in range(4):  # an impatient visitor presses Start again and again
        page.get_by_role("button", name="Start training").click()
        expect(refusal).to_be_visible()
    expect(page.get_by_role("button", name=re.compile(r"^Stop job-\d+ \(training\)$"))).to_be_visible()
    expect(page.get_by_role("combobox", name="Your runs")).to_have_count(0)  # still one run of theirs

    other = new_visitor(browser)
    try:
        second = other.new_page()
        open_app(second, app_server.url)
        go_to(second, "Train", "Train a model")
        start_run(second, images=1000, epochs=1, batch=50)  # 20 steps
        expect(second.get_by_text("Queued: position 1 in line")).to_be_visible()  # next, not behind 4 extras
        page.get_by_role("button", name=STOP_LABEL).click()
        expect(title).to_contain_text("· stopped", timeout=TRAIN_RUN_TIMEOUT_MS)
        finished = second.get_by_text(re.compile(r"Finished: test accuracy \d+\.\d\d% after")).first
        expect(finished).to_be_visible(timeout=TRAIN_RUN_TIMEOUT_MS)
    finally:
        other.close()
