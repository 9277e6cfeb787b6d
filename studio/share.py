"""Shareable links: a page's shareable state <-> its address's query parameters (st.query_params).

A page describes what it shares as `Param`s (a parameter's name, the session-state key it fills, how its text
is read and written). `link(params, ...)` gives the address that shows that state; `apply_link(scope, params)`,
called by the page before its widgets exist, reads a link it was opened with once per session: valid values go
into st.session_state (so the address wins over the visitor's remembered choices on that first run), each bad
one is a plain sentence for the page to show, its widget keeping its default; the link's parameters are then
taken out of the address, so that a reload shows what the visitor changed since.

Never the visitor's identity: studio.visitor may put ?visitor=<token> in the address of a visitor whose browser
refuses cookies. A link is built only from the page's Params, and no Param may be named like it, so a shared
link never carries a token and opening one never makes the opener into someone else.

    params = [share.Param("digit", "sample_digit", share.read_choice(range(10)))]
    _values, problems = share.apply_link("explore", params)   # before the widgets
    st.code(share.link(params, share.current(params)), language=None)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

import streamlit as st

from studio.visitor import VISITOR_PARAM

APPLIED_PREFIX = "share_applied_"  # + scope: the session already read its link
MAX_VALUE_CHARS = 200  # a parameter's text longer than this is refused unread
TRUE_WORDS, FALSE_WORDS = ("true", "1", "on", "yes"), ("false", "0", "off", "no")


@dataclass(frozen=True)
class Param:
    """One piece of shareable state: the address's `name`, the session-state `key` it fills.

    read: the parameter's text -> the session-state value; raises ValueError with a plain sentence saying what
    is allowed when the text is not. write: the session-state value -> the parameter's text.
    """

    name: str
    key: str
    read: Callable[[str], object]
    write: Callable[[object], str] = str
    label: str = ""  # what a message calls it (the widget's label); the name when empty

    def __post_init__(self) -> None:
        if self.name == VISITOR_PARAM:
            raise ValueError(f"?{VISITOR_PARAM}= carries a visitor's identity: it is never shared")


def read_choice(options: Iterable[object], what: str = "one of") -> Callable[[str], object]:
    """A reader for a value among `options`, matched by its text ("3" -> 3)."""
    by_text = {str(option): option for option in options}

    def read(text: str) -> object:
        if text not in by_text:
            raise ValueError(f"must be {what} {', '.join(by_text)}")
        return by_text[text]

    return read


def read_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise ValueError("must be true or false")


def write_bool(value: object) -> str:
    return "true" if value else "false"


def read_query(params: Sequence[Param], query: Mapping[str, str]) -> tuple[dict[str, object], list[str]]:
    """The session-state values a link's query gives (by key) and a sentence per parameter it refuses.

    Parameters the page does not share (?visitor= among them) are ignored.
    """
    values, problems = {}, []
    for param in params:
        if param.name not in query:
            continue
        text = str(query[param.name])
        try:
            if len(text) > MAX_VALUE_CHARS:
                raise ValueError(f"is longer than {MAX_VALUE_CHARS} characters")
            values[param.key] = param.read(text)
        except ValueError as exc:
            shown = text if len(text) <= 40 else text[:40] + "…"
            what = param.label or param.name
            problems.append(f"The link's {what} “{shown}” was not used: it {str(exc).removeprefix('it ')}.")
    return values, problems


def query_of(params: Sequence[Param], values: Mapping[str, object]) -> dict[str, str]:
    """The query parameters for session-state values (by key); keys without a value are left out."""
    return {p.name: p.write(values[p.key]) for p in params if values.get(p.key) is not None}


def current(params: Sequence[Param]) -> dict[str, object]:
    """This session's values of the params' keys."""
    return {p.key: st.session_state.get(p.key) for p in params}


def page_url() -> str:
    """The address of the page being shown, without its query (where the app cannot tell it: empty)."""
    return (st.context.url or "").split("?", 1)[0]


def link(params: Sequence[Param], values: Mapping[str, object], base: str | None = None) -> str:
    """The address that opens this page with these values: only the params' own parameters, never ?visitor=."""
    query = query_of(params, values)
    query.pop(VISITOR_PARAM, None)  # Param refuses the name; this line keeps it so whatever changes above
    base = page_url() if base is None else base
    return f"{base}?{urlencode(query)}" if query else base


def apply_link(scope: str, params: Sequence[Param]) -> tuple[dict[str, object], list[str]]:
    """Once per session and scope (a page): the address's values into st.session_state, before any widget.

    Returns the values it set (by key) and the sentences about refused ones (both empty when the address had
    none, and on every later run). The shared parameters are then removed from the address; ?visitor= stays.
    """
    flag = APPLIED_PREFIX + scope
    if st.session_state.get(flag):
        return {}, []
    st.session_state[flag] = True
    query = {name: st.query_params[name] for name in st.query_params}
    values, problems = read_query(params, query)
    for key, value in values.items():
        st.session_state[key] = value
    for param in params:
        if param.name in st.query_params:
            del st.query_params[param.name]
    return values, problems


def show_problems(key: str, intro: str) -> None:
    """The sentences a link's refused values got (kept at st.session_state[key] by the page), under `intro`,
    until the visitor dismisses them: a page's first runs follow each other quickly (the visitor cookie, the
    address being tidied), so a message shown once could vanish before anyone reads it."""
    problems = st.session_state.get(key)
    if not problems:
        return
    lines = "\n".join(f"- {p}" for p in problems)
    st.warning(f"{intro}\n{lines}")
    st.button("Dismiss", key=f"{key}_dismiss", on_click=st.session_state.pop, args=(key, None))
