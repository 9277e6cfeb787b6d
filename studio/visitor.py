"""The visitor: this browser's secret token, the cookie that keeps it, its owner id and who is present.

Per session (st.session_state): the visitor's token (kept by their browser across reloads and tabs: see
studio.ownership), whose digest owns their training jobs and saved runs. Process-wide: which visitors have a
session open (Presence).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from studio.ownership import new_token, owner_of, valid_token
from studio.presence import Presence

TOKEN_KEY = "visitor_token"  # this browser's secret token (see studio.ownership)
# Whether the browser keeps the token's cookie: True (it arrived with it, or the page read it back), False
# (the page could not: the address must carry the token), absent while not known yet.
COOKIE_OK_KEY = "visitor_cookie_ok"
COOKIE_COMPONENT_KEY = "visitor_cookie"
COOKIE_SESSION_KEY = "visitor_cookie_session"  # not a secret: tells one session's report from the next one's
VISITOR_PARAM = "visitor"
VISITOR_COOKIE = "mnist_studio_visitor"
COOKIE_MAX_AGE = 365 * 24 * 3600  # seconds
COOKIE_JS_FILE = Path(__file__).parent / "assets" / "visitor_cookie.js"  # writes the cookie, reads it back

_visitor_cookie = st.components.v2.component("visitor_cookie", js=COOKIE_JS_FILE.read_text(encoding="utf-8"))


@st.cache_resource(show_spinner=False)
def presence() -> Presence:
    """Which visitors have a session open in this process (every run notes its own: init_session)."""
    return Presence()


def visitor_token() -> str:
    """This browser's secret token, the same after a reload and in a second tab (see studio.ownership).

    Read once per session: the cookie wins (a link someone shared, carrying their ?visitor=, does not make
    a returning visitor into them), then the address's ?visitor=, else a new random token.
    """
    if TOKEN_KEY not in st.session_state:
        cookie = valid_token(st.context.cookies.get(VISITOR_COOKIE))
        token = cookie or valid_token(st.query_params.get(VISITOR_PARAM)) or new_token()
        st.session_state[TOKEN_KEY] = token
        if cookie == token:
            st.session_state[COOKIE_OK_KEY] = True
    return st.session_state[TOKEN_KEY]


def remember_visitor() -> None:
    """Keep the token in the browser: a cookie, and the address (?visitor=) only where cookies are refused.

    The cookie is written by JavaScript (assets/visitor_cookie.js: Streamlit can read cookies, not set
    them), which reads it back and reports. Only where the browser refuses it (a third-party iframe, as on
    Hugging Face Spaces, may) does the address carry the token, so that a reload keeps it. The address is a
    secret's poor carrier (history, shared links, Referer, logs): where the cookie works it never gets the
    token, and a token it arrived with (a reload before, a shared link) is removed at once.
    """
    token = visitor_token()
    if st.session_state.get(COOKIE_OK_KEY) is not True:
        session = st.session_state.setdefault(COOKIE_SESSION_KEY, new_token())
        with st.sidebar:
            _visitor_cookie(
                key=COOKIE_COMPONENT_KEY,
                data={
                    "token": token,
                    "session": session,
                    "cookie": VISITOR_COOKIE,
                    "maxAge": COOKIE_MAX_AGE,
                    "param": VISITOR_PARAM,
                },
                on_cookie_ok_change=_note_cookie_report,
            )
    cookie_ok = st.session_state.get(COOKIE_OK_KEY)
    if cookie_ok:
        if VISITOR_PARAM in st.query_params:
            del st.query_params[VISITOR_PARAM]
    elif (cookie_ok is False or VISITOR_PARAM in st.query_params) and st.query_params.get(VISITOR_PARAM) != token:
        # Refused: page switches drop query parameters, put it back. Not known yet: leave the address alone,
        # unless it holds another (an invalid) token.
        st.query_params[VISITOR_PARAM] = token


def _note_cookie_report() -> None:
    """The cookie script's report: whether the browser keeps the cookie."""
    report = (st.session_state.get(COOKIE_COMPONENT_KEY) or {}).get("cookie_ok")
    if report is not None:
        st.session_state[COOKIE_OK_KEY] = bool(report)


def owner_id() -> str:
    """This visitor's owner id: it sees the training jobs it started, and owns the runs they saved."""
    return owner_of(visitor_token())
