"""A disk budget for visitors' runs: measure a runs folder and remove what it can spare (no Streamlit here).

MNIST_RUNS_MAX_MB bounds the bytes of visitors' runs (unset or 0: no budget). After a save, `enforce_budget`
frees space, in this order, until visitors' runs fit again:
1. caches (files computed from a model: training features, digit map, calibration) of runs nobody is using,
   oldest run first: they are rebuilt on demand;
2. whole visitor runs nobody is using, oldest first; each maker finds a note (`removed_runs`) saying which
   run went, when and why.
Never removed: operator runs (made on the command line: no owner), which are not counted either; runs
`in_use` says a session has active; the runs in `keep` (the one just saved). So the folder can pass the budget
by one run at most when that run alone is larger, or by what sessions are using.

Which runs are in use is known per app process; the processes of one server (studio.serve) share the runs
folder, so each publishes its set in IN_USE_FOLDER (`publish_in_use`) and `runs_in_use` reads them all.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .errors import CheckpointError, MnistError
from .io import atomic_write_json
from .runs import SavedRun, delete_run, list_runs
from .store import COMPUTED_FILES

BUDGET_ENV = "MNIST_RUNS_MAX_MB"
BYTES_PER_MB = 1_000_000  # decimal megabytes, as file sizes are usually quoted
CACHE_FILES = COMPUTED_FILES  # mnist.store: recomputed from the model when missing
REMOVED_FOLDER = ".removed"  # one JSON note per owner whose runs were removed; hidden, so list_runs ignores it
IN_USE_FOLDER = ".in-use"  # one JSON file per app process: the runs its sessions have active
NOTE_DAYS = 30  # a removal note older than this is dropped: its maker has not come back
MAX_NOTES_PER_OWNER = 20  # removal notes kept per owner, newest
OWNER_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # owner ids are hex digests; anything else gets no file
log = logging.getLogger(__name__)
_enforcing = threading.Lock()  # two saves finishing together must not both delete the same run


def read_budget(environ: dict | None = None) -> int | None:
    """The budget in bytes from $MNIST_RUNS_MAX_MB; None when unset or 0 (no budget); MnistError when invalid."""
    value = (environ if environ is not None else os.environ).get(BUDGET_ENV, "").strip()
    if not value:
        return None
    try:
        megabytes = float(value)
    except ValueError:
        raise MnistError(f"{BUDGET_ENV}={value!r} is not a number of megabytes") from None
    if megabytes < 0 or megabytes != megabytes:
        raise MnistError(f"{BUDGET_ENV}={value!r} must be 0 (no budget) or more megabytes")
    return int(megabytes * BYTES_PER_MB) or None


@dataclass(frozen=True)
class RunUsage:
    """One run folder's bytes: its own files (weights, description, history, insight) and its caches."""

    name: str
    path: Path
    owner: str  # "" for the operator
    created: str  # ISO 8601: sorts by time
    own_bytes: int
    cache_bytes: int

    @property
    def total(self) -> int:
        return self.own_bytes + self.cache_bytes

    @property
    def is_operators(self) -> bool:
        return not self.owner


@dataclass(frozen=True)
class Eviction:
    """One step of freeing space: a run's caches, or the whole run."""

    kind: str  # "caches" or "run"
    run: RunUsage

    @property
    def freed(self) -> int:
        return self.run.cache_bytes if self.kind == "caches" else self.run.total


def file_bytes(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # removed meanwhile
        return 0


def measure_run(run: SavedRun) -> RunUsage:
    own = cache = 0
    for path in run.path.rglob("*"):
        size = file_bytes(path) if path.is_file() else 0
        if path.parent == run.path and path.name in CACHE_FILES:
            cache += size
        else:
            own += size
    return RunUsage(run.name, run.path, run.record.provenance.owner, run.record.created, own, cache)


def measure_runs(runs_dir: Path | str) -> list[RunUsage]:
    """Every saved run's bytes, oldest first."""
    usages = [measure_run(run) for run in list_runs(runs_dir)]
    return sorted(usages, key=lambda usage: usage.created)


def visitor_bytes(usages: Iterable[RunUsage]) -> int:
    """What counts against the budget: visitors' runs with their caches (operator runs are outside it)."""
    return sum(usage.total for usage in usages if not usage.is_operators)


def plan_evictions(
    usages: list[RunUsage], budget: int, in_use: Callable[[str], bool], keep: Iterable[str] = ()
) -> list[Eviction]:
    """What to remove, in order, so that visitors' runs fit `budget` bytes: caches of unused runs, then unused
    runs, oldest first. Fewer (or none) when what may be removed is not enough."""
    keep = set(keep)
    spare = [u for u in sorted(usages, key=lambda u: u.created) if not u.is_operators and not in_use(u.name)]
    steps = [Eviction("caches", u) for u in spare if u.cache_bytes] + [
        Eviction("run", u) for u in spare if u.name not in keep
    ]
    over, plan = visitor_bytes(usages) - budget, []
    for step in steps:
        if over <= 0:
            break
        if step.kind == "run" and any(p.kind == "caches" and p.run.name == step.run.name for p in plan):
            over -= step.run.own_bytes  # its caches were counted already
        else:
            over -= step.freed
        plan.append(step)
    return plan


def remove_caches(usage: RunUsage) -> None:
    for name in CACHE_FILES:
        (usage.path / name).unlink(missing_ok=True)


def enforce_budget(
    runs_dir: Path | str,
    budget: int | None,
    in_use: Callable[[str], bool],
    keep: Iterable[str] = (),
    now: datetime | None = None,
) -> list[Eviction]:
    """Remove what plan_evictions picks and note each removed run for its maker; the steps taken."""
    if budget is None:
        return []
    with _enforcing:
        plan = plan_evictions(measure_runs(runs_dir), budget, in_use, keep)
        for step in plan:
            try:
                if step.kind == "caches":
                    remove_caches(step.run)
                else:
                    delete_run(runs_dir, step.run.name)
                    note_removal(runs_dir, step.run, budget, now)
            except (OSError, CheckpointError) as exc:  # deleted meanwhile (its maker): nothing left to free
                log.warning("disk budget: could not remove %s of %s: %s", step.kind, step.run.name, exc)
            else:
                log.info("disk budget: removed %s of %s (%d bytes)", step.kind, step.run.name, step.freed)
    return plan


# --- notes for the makers of removed runs -------------------------------------------------------


@dataclass(frozen=True)
class Removal:
    """A run of this owner that the budget removed."""

    name: str
    removed: str  # ISO 8601, UTC
    budget_mb: float

    def message(self) -> str:
        day = self.removed[:10]
        return (
            f"Your run {self.name} was removed on {day} to keep this server's disk under its budget of "
            f"{self.budget_mb:g} MB (the oldest runs nobody is using go first)."
        )


def note_path(runs_dir: Path | str, owner: str) -> Path | None:
    return Path(runs_dir) / REMOVED_FOLDER / f"{owner}.json" if OWNER_RE.fullmatch(owner or "") else None


def note_removal(runs_dir: Path | str, usage: RunUsage, budget: int, now: datetime | None = None) -> None:
    """Add a removal note to the owner's file (pruned to recent notes, so the folder stays small)."""
    path = note_path(runs_dir, usage.owner)
    if path is None:
        return
    now = now or datetime.now(UTC)
    removal = Removal(usage.name, now.isoformat(timespec="seconds"), budget / BYTES_PER_MB)
    cutoff = (now - timedelta(days=NOTE_DAYS)).isoformat(timespec="seconds")
    notes = [r for r in removed_runs(runs_dir, usage.owner) if r.removed >= cutoff] + [removal]
    atomic_write_json(path, [vars(r) for r in notes[-MAX_NOTES_PER_OWNER:]])


def removed_runs(runs_dir: Path | str, owner: str) -> list[Removal]:
    """The owner's runs that the budget removed and they have not dismissed; [] when none or unreadable."""
    path = note_path(runs_dir, owner)
    if path is None or not path.is_file():
        return []
    try:
        return [Removal(str(n["name"]), str(n["removed"]), float(n["budget_mb"])) for n in json.loads(path.read_text())]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def dismiss_removed(runs_dir: Path | str, owner: str) -> None:
    path = note_path(runs_dir, owner)
    if path is not None:
        path.unlink(missing_ok=True)


# --- which runs the app's processes are using ---------------------------------------------------


def process_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def publish_in_use(runs_dir: Path | str, names: Iterable[str], process: str | None = None) -> None:
    """Record the runs this process's sessions have active, for the other processes sharing the folder."""
    atomic_write_json(Path(runs_dir) / IN_USE_FOLDER / f"{process or process_id()}.json", sorted(set(names)))


def runs_in_use(runs_dir: Path | str) -> set[str]:
    """The runs any live process of this server published as in use (files of dead processes are removed)."""
    folder, names = Path(runs_dir) / IN_USE_FOLDER, set()
    for path in folder.glob("*.json") if folder.is_dir() else ():
        if not process_alive(path.stem):
            path.unlink(missing_ok=True)
            continue
        try:
            names.update(str(name) for name in json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue  # being replaced: the next enforcement reads it
    return names


def process_alive(process: str) -> bool:
    """False only for a process of this host that has exited; another host's is assumed alive."""
    host, _, pid = process.rpartition("-")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # alive, owned by another user
        return True
    return True
