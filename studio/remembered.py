"""Each visitor's choices, remembered on the server: a reload or a second tab starts where they left off.

What is remembered: the active model (the sidebar), Sketch's device, the Train form (preset, fields, run
name, seeds), Explore's filters and the start guide's progress (studio.guide: which steps are done, whether
it was dismissed). It is keyed by the visitor's owner id (a digest of their token: the
token itself is never stored), and held by this process only (st.cache_resource): studio.serve routes a
browser to one process, so its reloads and tabs meet the same store. A restart forgets it, as it forgets
sessions; nothing is written to disk.

How: at the start of every script run (streamlit_app.py calls sync_session), a session's first run copies
the visitor's remembered choices into st.session_state, before any widget exists; every run then saves
the choices that changed since the session last saw them. Only changes are written, so a second tab
left open does not overwrite, on its next rerun, what the visitor just chose in the first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import streamlit as st

from mnist.records import ModelRef
from studio.explore_state import FILTER_KEYS
from studio.registry import ACTIVE_MODEL_KEY
from studio.sketch_state import DEVICE_KEY as SKETCH_DEVICE_KEY
from studio.train_state import RUN_NAME_KEY, SEEDS_KEY, TRAIN_PREFIX

MAX_VISITORS = 4096  # remembered per process; the least recently seen visitor is forgotten first
MAX_TEXT_CHARS = 200  # a typed value longer than this (a run name is at most 100) is not remembered
MODEL_KEY = ACTIVE_MODEL_KEY  # the sidebar's selectbox
DEVICE_KEY = SKETCH_DEVICE_KEY  # Sketch's "Device for predictions"
EXPLORE_KEYS = FILTER_KEYS  # Explore's filters (its page numbers are not: they depend on the filters)
GUIDE_PREFIX = "guide_"  # studio.guide's progress: guide_<step> and guide_dismissed, each a bool
SEEN_KEY = "remembered_seen"  # this session's last known values of the remembered keys
EMPTY: Mapping[str, object] = MappingProxyType({})


@dataclass(frozen=True)
class Choices:
    """One visitor's remembered choices; None or empty: never chosen (the page's default applies)."""

    model: ModelRef | None = None  # the bundled model or a saved run (an upload lives in its session only)
    device: str | None = None
    train_form: Mapping[str, object] = field(default_factory=lambda: EMPTY)  # session-state key -> widget value
    explore_filters: Mapping[str, object] = field(default_factory=lambda: EMPTY)
    # The start guide's flags (guide key -> bool). Read from the store on every run, never copied into a
    # session: a tick made in one tab shows in the visitor's other tabs at their next rerun.
    guide: Mapping[str, bool] = field(default_factory=lambda: EMPTY)

    def as_state(self) -> dict[str, object]:
        """The session-state values these choices stand for."""
        state = {MODEL_KEY: self.model, DEVICE_KEY: self.device, **self.train_form, **self.explore_filters}
        return {key: value for key, value in state.items() if value is not None or key in EXPLORE_KEYS}

    def updated(self, changes: Mapping[str, object]) -> Choices:
        """These choices with the changed session-state values in."""
        form = {k: v for k, v in changes.items() if is_train_key(k)}
        filters = {k: v for k, v in changes.items() if k in EXPLORE_KEYS}
        guide = {k: bool(v) for k, v in changes.items() if k.startswith(GUIDE_PREFIX)}
        return replace(
            self,
            guide=MappingProxyType({**self.guide, **guide}) if guide else self.guide,
            model=changes.get(MODEL_KEY, self.model),
            device=changes.get(DEVICE_KEY, self.device),
            train_form=MappingProxyType({**self.train_form, **form}) if form else self.train_form,
            explore_filters=MappingProxyType({**self.explore_filters, **filters}) if filters else self.explore_filters,
        )


class ChoiceStore:
    """Thread-safe, bounded (least recently used out): owner id -> Choices. Shared by every session."""

    def __init__(self, capacity: int = MAX_VISITORS):
        self._capacity = capacity
        self._choices: OrderedDict[str, Choices] = OrderedDict()
        self._lock = threading.Lock()

    def recall(self, owner: str) -> Choices:
        with self._lock:
            if owner not in self._choices:
                return Choices()
            self._choices.move_to_end(owner)
            return self._choices[owner]

    def remember(self, owner: str, changes: Mapping[str, object]) -> Choices:
        """Merge changed session-state values into the owner's choices (under the lock: two tabs at once)."""
        with self._lock:
            choices = self._choices.pop(owner, Choices()).updated(changes)
            self._choices[owner] = choices
            while len(self._choices) > self._capacity:
                self._choices.popitem(last=False)
            return choices

    def __len__(self) -> int:
        with self._lock:
            return len(self._choices)


@st.cache_resource(show_spinner=False)
def store() -> ChoiceStore:
    """The process's store (one per server process; see the module's docstring)."""
    return ChoiceStore()


def is_train_key(key: str) -> bool:
    return key.startswith(TRAIN_PREFIX) or key in (RUN_NAME_KEY, SEEDS_KEY)


def is_remembered(key: str) -> bool:
    return key in (MODEL_KEY, DEVICE_KEY) or key in EXPLORE_KEYS or is_train_key(key)


def worth_keeping(key: str, value: object) -> bool:
    """Plain values only, of a bounded size; an uploaded model is gone with its session, so not kept."""
    if key == MODEL_KEY:  # a value that names no model (a stale or forged label's text) is not kept either
        return isinstance(value, ModelRef) and value.kind != "upload"
    if isinstance(value, str):
        return len(value) <= MAX_TEXT_CHARS
    return value is None or isinstance(value, bool | int | float)


def current_values() -> dict[str, object]:
    """This session's values of the remembered keys (only those it holds)."""
    state = st.session_state
    return {key: state[key] for key in list(state.keys()) if is_remembered(key) and worth_keeping(key, state[key])}


def restore_choices(owner: str) -> None:
    """A session's first run: the visitor's remembered choices into its state, before any widget exists."""
    for key, value in store().recall(owner).as_state().items():
        st.session_state[key] = value


def save_changed_choices(owner: str) -> None:
    """Remember the values this session changed since its last run (a widget's change reruns the script)."""
    seen = st.session_state[SEEN_KEY]
    now = current_values()
    changed = {key: value for key, value in now.items() if key not in seen or seen[key] != value}
    if changed:
        store().remember(owner, changed)
    st.session_state[SEEN_KEY] = now


def sync_session(owner: str) -> None:
    """At the start of every run: restore once per session, then save what changed."""
    if SEEN_KEY not in st.session_state:
        restore_choices(owner)
        st.session_state[SEEN_KEY] = current_values()
    else:
        save_changed_choices(owner)
