"""A visitor's choices survive a reload and a second tab (studio.remembered): the active model and the preset."""

from __future__ import annotations

import re

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # conftest.py skips every test with the reason (in CI: fails them)
    expect = None

from .helpers import go_to, open_app
from .test_visitors import train_and_use_a_run

pytestmark = pytest.mark.e2e


def best_preset(page):
    return page.get_by_role("radiogroup", name="Preset").get_by_role("radio", name="best", exact=True)


def expect_choices(page, run_name: str) -> None:
    """The sidebar's model is the visitor's run and the Train form is on the best preset."""
    expect(page.get_by_role("combobox", name=re.compile("Active model"))).to_have_value(run_name)
    go_to(page, "Train", "Train a model")
    expect(best_preset(page)).to_be_checked()


def test_the_chosen_model_and_preset_survive_a_reload_and_a_second_tab(page, app_server):
    run_name = train_and_use_a_run(page, app_server.url)
    best_preset(page).click()
    expect(best_preset(page)).to_be_checked()
    expect(page.get_by_label("Epochs", exact=True)).not_to_have_value("1")  # the best preset's fields are in
    page.wait_for_timeout(1000)  # the change's rerun has started: it saved the preset

    page.reload()
    expect(page.get_by_role("heading", name="Train a model", exact=True)).to_be_visible()
    expect_choices(page, run_name)

    tab = page.context.new_page()  # a second tab at the bare address: a new session of the same visitor
    open_app(tab, app_server.url)
    expect_choices(tab, run_name)
    tab.close()
