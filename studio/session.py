"""What every run does before its page: the visitor's session set up, and the page reached through the app."""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from studio.registry import init_uploads
from studio.visitor import owner_id, presence, remember_visitor

ENTRY_KEY = "_entered_through_app"  # set by streamlit_app.py on every run; see page_setup


def init_session() -> None:
    """Called by streamlit_app.py at the start of every run, before the page."""
    remember_visitor()
    context = get_script_run_ctx()
    if context is not None:
        presence().note(owner_id(), context.session_id)
    init_uploads()
    st.session_state[ENTRY_KEY] = True


def page_setup() -> None:
    """First line of every page: make sure the run went through streamlit_app.py's st.navigation.

    Streamlit still knows the old multipage mode where every file in pages/ is a page of its own. A fresh
    server uses it for the very first run of the process, so a first visitor who opens /train directly
    would get pages/train.py alone, without the app's navigation, sidebar or layout. Switching the flag
    off and rerunning sends that run through streamlit_app.py like every other.
    """
    if st.session_state.pop(ENTRY_KEY, False):
        return
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False
    st.rerun()
