"""A fresh server whose very first request is a subpage still shows the app: its navigation and the page.

Streamlit treats pages/ beside the entry script as its old multipage mode for the first script run of a
process (PagesManager.uses_pages_directory starts True and only st.navigation turns it off), so without
studio.session.page_setup's detour a first visitor at /train would get pages/train.py alone: no
st.navigation, and the sidebar's links named after the files ('streamlit app', 'explore', 'sketch',
'train': what this test saw with page_setup returning at once). Each case starts its own server
(fresh_server, not the session's app_server, which other tests have visited already).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

try:
    from playwright.sync_api import Page, expect
except ImportError:  # conftest.py skips every test with the reason (in CI: fails them)
    Page = expect = None

pytestmark = pytest.mark.e2e

NAV_LINKS = ["Sketch", "Train", "Explore"]  # streamlit_app.py's st.navigation, in its order


@pytest.mark.parametrize(
    ("path", "link", "title"), [("/train", "Train", "Train a model"), ("/explore", "Explore", "Explore")]
)
def test_first_request_to_a_subpage_gets_the_app(fresh_page: Page, fresh_server, path, link, title):
    fresh_page.goto(fresh_server.url + path)
    expect(fresh_page.get_by_role("heading", name=title, exact=True)).to_be_visible()
    nav = fresh_page.locator('[data-testid="stSidebarNav"]')
    labels = nav.get_by_role("link").locator('[data-testid="stMarkdownContainer"]')  # without the icons' text
    expect(labels).to_have_text(NAV_LINKS)  # exactly these links, in this order
    expect(nav.get_by_role("link", name=link, exact=True)).to_have_attribute("aria-current", "page")
    assert urlsplit(fresh_page.url).path == path  # the detour through streamlit_app.py keeps the address
