"""Who may see and change which saved run: visitor ids and the operator's policy (no Streamlit here).

A visitor is identified by a random secret token their browser keeps (a cookie, or the page address's
`?visitor=` when cookies are blocked, e.g. in a third-party iframe). Runs and jobs record only a one-way
digest of it, the owner id, so a downloaded run file gives nobody the power to act as its maker.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from enum import Enum

from mnist.errors import MnistError
from mnist.runs import SavedRun

POLICY_ENV = "MNIST_RUNS_POLICY"
TOKEN_BYTES = 16  # 128 random bits: not guessable
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{22,64}$")  # what token_urlsafe(16) and longer tokens look like
OWNER_DIGEST_CHARS = 32


class Policy(Enum):
    """The operator's choice (MNIST_RUNS_POLICY), documented in the README's hosting section."""

    SHARED = "shared"  # every visitor sees every run; only its maker renames or deletes it
    PRIVATE = "private"  # a visitor sees their own runs and the operator's; only the maker changes them
    NO_DELETE = "no-delete"  # every visitor sees every run; nobody renames or deletes from the app

    @property
    def description(self) -> str:
        return POLICY_DESCRIPTIONS[self]


POLICY_DESCRIPTIONS = {
    Policy.SHARED: "Saved runs are visible to every visitor; only the visitor who made a run can rename or delete it.",
    Policy.PRIVATE: "Each visitor sees only their own saved runs (and the operator's); only the maker can change one.",
    Policy.NO_DELETE: "Saved runs are visible to every visitor; renaming and deleting are switched off on this server.",
}


def read_policy(environ: dict | None = None) -> Policy:
    """The policy from $MNIST_RUNS_POLICY (default: shared); MnistError naming the choices when it is wrong."""
    value = (environ if environ is not None else os.environ).get(POLICY_ENV, "").strip().lower()
    if not value:
        return Policy.SHARED
    try:
        return Policy(value)
    except ValueError:
        choices = ", ".join(p.value for p in Policy)
        raise MnistError(f"{POLICY_ENV}={value!r} is not a policy; use one of {choices}") from None


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def valid_token(value) -> str | None:
    """value when it looks like a token this app made, else None (a hand-typed '?visitor=admin' is refused)."""
    return value if isinstance(value, str) and TOKEN_RE.fullmatch(value) else None


def owner_of(token: str) -> str:
    """The owner id stored with runs and jobs: a one-way digest of the visitor's secret token."""
    return hashlib.sha256(f"mnist-studio-visitor:{token}".encode()).hexdigest()[:OWNER_DIGEST_CHARS]


@dataclass(frozen=True)
class Access:
    """What one visitor may do with one saved run, and why not."""

    visible: bool
    can_change: bool  # rename or delete
    made_by: str  # "you", "another visitor", "the operator"
    reason: str = ""  # why it cannot be changed, in words for the visitor


def access(run: SavedRun, owner: str, policy: Policy) -> Access:
    maker = run.record.provenance.owner
    if not maker:
        return Access(True, False, "the operator", "it came with the server: it was made on the command line")
    if maker == owner:
        if policy is Policy.NO_DELETE:
            return Access(True, False, "you", "renaming and deleting are switched off on this server")
        return Access(True, True, "you")
    visible = policy is not Policy.PRIVATE
    return Access(visible, False, "another visitor", "only the visitor who made a run can rename or delete it")


def visible_runs(runs: list[SavedRun], owner: str, policy: Policy) -> list[SavedRun]:
    return [run for run in runs if access(run, owner, policy).visible]
