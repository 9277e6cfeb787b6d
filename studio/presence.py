"""Which visitors have the app open in this process: so the training pool can drop work nobody waits for.

Each script run notes its visitor's owner id with its Streamlit session id; a visitor is present while any
of their sessions is still one the Streamlit runtime holds (an open tab; a closed one is let go after a
short grace period for reconnection). The training pool's sweeper asks `is_present` (mnist.jobs).
"""

from __future__ import annotations

import threading


def session_is_active(session_id: str) -> bool:
    """Whether Streamlit still holds this session; True where there is no runtime (AppTest, scripts)."""
    from streamlit import runtime

    if not runtime.exists():
        return True
    return runtime.get_instance().is_active_session(session_id)


class Presence:
    def __init__(self) -> None:
        self._sessions: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def note(self, owner: str, session_id: str) -> None:
        with self._lock:
            self._sessions.setdefault(owner, set()).add(session_id)

    def is_present(self, owner: str) -> bool:
        """Whether `owner` has a session open; forgets the ones that have closed."""
        with self._lock:
            sessions = self._sessions.get(owner, set())
            alive = {s for s in sessions if session_is_active(s)}
            if alive:
                self._sessions[owner] = alive
            else:
                self._sessions.pop(owner, None)
            return bool(alive)
