"""In Chromium: a shared Train link opens that setup and leaves the address; the link the page offers holds the
setup and no identity; the Start here guide's links lead to their pages and a hidden guide stays hidden."""

from __future__ import annotations

import re

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # conftest.py skips every test with the reason (in CI: fails them)
    expect = None

from .helpers import open_app

pytestmark = pytest.mark.e2e

SETUP = "preset=tutorial&epochs=3"


def test_a_shared_link_opens_its_setup_and_offers_the_same_link_back(page, app_server):
    open_app(page, app_server.url)  # the server's first request goes to / (see session.page_setup)
    page.goto(f"{app_server.url}/train?{SETUP}&lr=abc")
    expect(page.get_by_role("heading", name="Train a model", exact=True)).to_be_visible()
    tutorial = page.get_by_role("radiogroup", name="Preset").get_by_role("radio", name="tutorial", exact=True)
    expect(tutorial).to_be_checked()
    expect(page.get_by_role("textbox", name="Epochs", exact=True)).to_have_value("3")
    expect(page.get_by_text("The link's Learning rate “abc” was not used")).to_be_visible()
    expect(page).not_to_have_url(re.compile("preset="))  # a reload shows what the visitor changes next

    page.get_by_text("Copy link to this setup").click()
    link = page.locator('[data-testid="stCode"]').filter(has_text="preset=").first
    expect(link).to_have_text(f"{app_server.url}/train?{SETUP}")
    assert "visitor" not in link.inner_text()


def test_the_guide_links_to_its_pages_and_stays_hidden_once_hidden(page, app_server):
    open_app(page, app_server.url)
    guide = page.locator(".st-key-start-guide")
    expect(guide.get_by_text("Start here")).to_be_visible()
    guide.get_by_role("link", name=re.compile("^2\\. Train")).click()
    expect(page.get_by_role("heading", name="Train a model", exact=True)).to_be_visible()
    page.get_by_role("button", name="Hide this guide").click()
    expect(guide).to_have_count(0)
    page.reload()
    expect(page.get_by_role("heading", name="Train a model", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Show the start guide")).to_be_visible()
    expect(guide).to_have_count(0)
