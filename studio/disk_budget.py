"""The app's side of the disk budget (mnist.disk): which run each session has active, the budget kept after
every save and every cache written, and the notes that tell a visitor their run was removed.

`watch_saves()` (once per process) makes every save_run/save_ensemble of this process, the training pool's
included, end with `keep_budget`. `show_in_sidebar` notes the session's active model (so it is never
removed while the session is open), shows this visitor's removal notes, and says the policy.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from mnist import checkpoint
from mnist.disk import (
    BUDGET_ENV,
    BYTES_PER_MB,
    dismiss_removed,
    enforce_budget,
    publish_in_use,
    read_budget,
    removed_runs,
    runs_in_use,
)
from mnist.errors import MnistError
from mnist.records import ModelRef
from studio.presence import session_is_active

log = logging.getLogger(__name__)
_lock = threading.Lock()
_registries: dict[Path, ActiveRuns] = {}  # runs folder -> its registry; the training threads reach it too
_watching = False


class ActiveRuns:
    """The saved run each session of this process has active, published for the server's other processes."""

    def __init__(self, runs_dir: Path) -> None:
        self._runs_dir = runs_dir
        self._by_session: dict[str, str] = {}
        self._published: frozenset[str] | None = None
        self._lock = threading.Lock()

    def note(self, session_id: str, ref: ModelRef | None) -> None:
        """The session's active model now (a bundled model or an upload holds no run)."""
        with self._lock:
            if ref is not None and ref.kind == "run":
                self._by_session[session_id] = ref.name
            else:
                self._by_session.pop(session_id, None)
        self.publish()

    def names(self) -> frozenset[str]:
        """The runs open sessions have active; forgets closed sessions."""
        with self._lock:
            for session in [s for s in self._by_session if not session_is_active(s)]:
                del self._by_session[session]
            return frozenset(self._by_session.values())

    def publish(self) -> frozenset[str]:
        """Write this process's set when it changed (a closed tab is seen here, at the next run or save)."""
        names = self.names()
        if names != self._published:
            try:
                publish_in_use(self._runs_dir, names)
                self._published = names
            except OSError as exc:
                log.warning("cannot publish the runs in use in %s: %s", self._runs_dir, exc)
        return names

    def in_use(self) -> Callable[[str], bool]:
        """mnist.disk's in_use: active in a session of any of the server's processes, as of now."""
        names = self.publish() | runs_in_use(self._runs_dir)
        return names.__contains__


def active_runs(runs_dir: Path) -> ActiveRuns:
    runs_dir = Path(runs_dir).resolve()
    with _lock:
        return _registries.setdefault(runs_dir, ActiveRuns(runs_dir))


def budget() -> int | None:
    """The budget in bytes; None (none) when unset or misspelt: a typo must not delete visitors' runs."""
    try:
        return read_budget()
    except MnistError as exc:
        log.warning("%s; no disk budget until it is fixed", exc)
        return None


def keep_budget(runs_dir: Path, keep: tuple[str, ...] = ()) -> None:
    """Bring visitors' runs under the budget (mnist.disk.enforce_budget), sparing the runs in use and `keep`."""
    limit = budget()
    if limit is not None:
        enforce_budget(runs_dir, limit, active_runs(runs_dir).in_use(), keep)


def after_save(run_dir: Path) -> None:
    keep_budget(run_dir.parent, keep=(run_dir.name,))  # the new run stays, even alone over the budget


def watch_saves() -> None:
    """Once per process: every run this process saves is followed by keep_budget."""
    global _watching
    with _lock:
        if not _watching:
            checkpoint.add_save_listener(after_save)
            _watching = True


def policy_text(limit: int) -> str:
    return (
        f"Disk budget: visitors' runs may use {limit / BYTES_PER_MB:g} MB here ({BUDGET_ENV}). Past it, the "
        "files computed from runs nobody is using go first, then the oldest runs nobody is using; their makers "
        "are told. A run that is anyone's active model, and the operator's runs, are never removed."
    )


def show_in_sidebar(runs_dir: Path, owner: str, model: ModelRef | None) -> None:
    """Inside `with st.sidebar`: note this session's model, tell this visitor about removed runs, say the policy."""
    watch_saves()
    context = get_script_run_ctx()
    if context is not None:
        active_runs(runs_dir).note(context.session_id, model)
    removals = removed_runs(runs_dir, owner)
    if removals:
        st.warning("\n\n".join(r.message() for r in removals), icon=":material/delete_sweep:")
        st.button("OK", key="runs_removed_ok", on_click=dismiss_removed, args=(runs_dir, owner))
    limit = budget()
    if limit is not None:
        st.caption(f":material/hard_drive: {policy_text(limit)}")
