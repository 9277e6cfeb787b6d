"""A bounded pool of training jobs shared by every user of one process (the app).

Jobs beyond the pool's size wait in a FIFO queue; each job records its progress events so any
page can render them, and any failure ends only that job, with a message.

Seeds: `submit_seeds` trains one config under N seeds as N ordinary jobs (each saves its own run) and,
when all have finished, saves their ensemble as a run of its own (a `SeedGroup` follows them).
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import torch

from . import machine
from .checkpoint import load_checkpoint, save_ensemble, save_run
from .config import TrainConfig
from .data import MnistData
from .ensemble import MAX_MEMBERS, MIN_MEMBERS
from .errors import MnistError
from .records import RunMetrics
from .train import DoneEvent, EpochEvent, StepEvent, train

MAX_RUNS_ENV = "MNIST_MAX_TRAINING_RUNS"
REQUESTS_ENV = "MNIST_REQUESTS_PER_VISITOR"  # requests one visitor may have waiting or training at once
ABANDON_ENV = "MNIST_ABANDONED_AFTER_SECONDS"  # a visitor gone this long loses their queued requests
STOP_ABANDONED_ENV = "MNIST_STOP_ABANDONED_RUNS"  # "1": their running ones are stopped too (and saved)
DEFAULT_REQUESTS_PER_OWNER = 1
DEFAULT_ABANDON_AFTER_S = 120.0
SWEEP_INTERVAL_S = 10.0  # how often the sweeper looks for visitors who left
OVERRUN_FACTOR = 2.0  # a run that trains this many times its estimated time is stopped (its model kept)
# ... plus this much: the estimate is measured once, maybe on an idle server, and a short run slowed by a
# burst of visitors must not be cut short; the cap is there for the long runs.
DEFAULT_OVERRUN_GRACE_S = 60.0
MAX_FINISHED_KEPT = 200  # finished jobs remembered in memory; their runs stay on disk anyway
CORES_PER_RUN = 2  # default pool size: one training run per this many cores
# Nice value of a training thread (and of the OpenMP workers it creates). Against a nice-0 thread, such
# as a Sketch prediction, Linux's scheduler gives it 110/(1024+110) ~ 10% of a contended core.
TRAINING_NICE = 10
log = logging.getLogger(__name__)


class JobState(StrEnum):
    """Where a job or a seed group is; a str, so pages and logs show it as the word."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    STOPPED = "stopped"
    FAILED = "failed"


QUEUED, RUNNING, DONE, STOPPED, FAILED = JobState  # the names pages and tests import
FINISHED = (DONE, STOPPED, FAILED)


class BusyError(MnistError):
    """A visitor asked for more requests than they may have at once; `active` is what they have."""

    def __init__(self, message: str, active: list[Job | SeedGroup]):
        super().__init__(message)
        self.active = active


@dataclass(frozen=True)
class Fairness:
    """How the pool shares itself between visitors (the operator's settings, from the environment)."""

    requests_per_owner: int | None = None  # None: no limit (the library's default; the app reads the env)
    abandon_after_s: float = DEFAULT_ABANDON_AFTER_S
    stop_abandoned_runs: bool = False  # False: a running request of a visitor who left finishes and is saved
    overrun_grace_s: float = DEFAULT_OVERRUN_GRACE_S  # added to OVERRUN_FACTOR x a run's estimate

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Fairness:
        return cls(
            requests_per_owner=machine.read_positive_int(env, REQUESTS_ENV) or DEFAULT_REQUESTS_PER_OWNER,
            abandon_after_s=read_number(env, ABANDON_ENV, DEFAULT_ABANDON_AFTER_S, minimum=1),
            stop_abandoned_runs=env.get(STOP_ABANDONED_ENV, "").strip() in ("1", "true", "yes"),
        )


def read_number(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    """A number from the environment (unset: `default`), refused in words below `minimum`."""
    value = env.get(name, "").strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        number = minimum - 1
    if not number >= minimum:
        raise MnistError(f"{name} must be a number >= {minimum:g}, got {value!r}")
    return number


def cpu_count() -> int:
    """The CPUs this process is given (its cgroup quota, affinity or $MNIST_CPUS), not the host's."""
    return machine.this_machine().cpus


def default_max_runs() -> int:
    """From $MNIST_MAX_TRAINING_RUNS, else one run per CORES_PER_RUN cores (at least one)."""
    n = machine.read_positive_int(os.environ, MAX_RUNS_ENV)
    return n if n is not None else max(1, cpu_count() // CORES_PER_RUN)


def threads_per_run(max_runs: int) -> int:
    """Torch threads for each training run: the cores shared out, so a full pool never oversubscribes them."""
    return max(1, cpu_count() // max_runs)


def lower_thread_priority(nice: int = TRAINING_NICE) -> None:
    """Raise the calling thread's nice value to `nice` (never lower it); only this thread, on Linux.

    Linux keeps a nice value per thread, and threads inherit it when created: call this before the thread
    starts torch's OpenMP workers. Elsewhere (no per-thread priority) training runs at normal priority.
    """
    if not sys.platform.startswith("linux"):  # elsewhere PRIO_PROCESS takes process ids, not thread ids
        return
    tid = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        if current < nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError as exc:  # e.g. a sandbox that forbids it
        log.debug("training thread priority left as it is: %s", exc)


@dataclass
class Job:
    id: str
    config: TrainConfig
    owner: str  # who started it (the app's visitor id); saved as the run's owner
    name: str | None = None  # the run folder's name, chosen by its maker; None: an automatic one
    state: JobState = QUEUED
    events: list[StepEvent | EpochEvent] = field(default_factory=list)  # in order
    error: str | None = None
    run_dir: Path | None = None
    metrics: RunMetrics | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None
    stop_event: threading.Event = field(default_factory=threading.Event, repr=False)
    future: Future | None = field(default=None, repr=False)
    group: SeedGroup | None = field(default=None, repr=False)  # the seeds it is one of, if any
    estimate_s: float | None = None  # its estimated training time; past OVERRUN_FACTOR times that it is stopped
    stop_reason: str | None = None  # why the server stopped or withdrew it, in words for its maker

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED


@dataclass
class SeedGroup:
    """N jobs of one config under seeds seed, seed+1, ...; their ensemble is saved once all are done."""

    id: str
    owner: str
    name: str | None  # the ensemble's run name (its members': NAME-seedS); None: automatic names
    jobs: list[Job] = field(default_factory=list)
    state: JobState = RUNNING  # RUNNING until the ensemble is saved (DONE) or cannot be (FAILED)
    error: str | None = None
    run_dir: Path | None = None  # the ensemble's run folder

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED

    @property
    def finished_jobs(self) -> int:
        return sum(job.is_finished for job in self.jobs)


class JobManager:
    def __init__(
        self,
        load_data: Callable[[], MnistData],
        runs_dir: Path | str | None = None,
        max_workers: int | None = None,
        fairness: Fairness | None = None,
    ):
        self.max_workers = max_workers or default_max_runs()
        self.threads_per_run = threads_per_run(self.max_workers)
        self.fairness = fairness or Fairness()
        self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="train")
        self._load_data = load_data
        self._runs_dir = runs_dir
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._groups: dict[str, SeedGroup] = {}
        self._ids = itertools.count(1)
        self._absent_since: dict[str, float] = {}  # owners with unfinished requests and no session
        self._closing = threading.Event()

    def submit(
        self,
        config: TrainConfig,
        owner: str,
        name: str | None = None,
        group: SeedGroup | None = None,
        estimate_s: float | None = None,
    ) -> Job:
        """Queue one run; BusyError if `owner` already has as many requests as Fairness allows."""
        with self._lock:
            if group is None:
                self._check_room(owner)
            job = Job(
                id=f"job-{next(self._ids)}", config=config, owner=owner, name=name, group=group, estimate_s=estimate_s
            )
            self._jobs[job.id] = job
            if group is not None:
                group.jobs.append(job)
            self._prune()
        job.future = self._pool.submit(self._run, job)
        return job

    def submit_seeds(
        self, config: TrainConfig, owner: str, seeds: int, name: str | None = None, estimate_s: float | None = None
    ) -> SeedGroup:
        """Train `config` under seeds config.seed, +1, ... (runs NAME-seedS) and then save their ensemble (NAME).

        The group is one request; estimate_s is each seed's run's estimated training time.
        """
        configs = [config.replace(seed=config.seed + k) for k in range(seeds)]  # ConfigError before any job
        if not MIN_MEMBERS <= seeds <= MAX_MEMBERS:
            raise MnistError(f"an ensemble needs {MIN_MEMBERS} to {MAX_MEMBERS} seeds, got {seeds}")
        with self._lock:
            self._check_room(owner)
            group = SeedGroup(id=f"seeds-{next(self._ids)}", owner=owner, name=name)
            self._groups[group.id] = group
        for seeded in configs:
            self.submit(seeded, owner, name and f"{name}-seed{seeded.seed}", group, estimate_s)
        return group

    def active_requests(self, owner: str) -> list[Job | SeedGroup]:
        """What `owner` has waiting or training: lone runs and Seeds groups (a group is one request)."""
        with self._lock:
            return self._active_requests(owner)

    def _active_requests(self, owner: str) -> list[Job | SeedGroup]:
        lone = [j for j in self._jobs.values() if j.owner == owner and j.group is None and not j.is_finished]
        groups = [g for g in self._groups.values() if g.owner == owner and not g.is_finished]
        return [*lone, *groups]

    def _check_room(self, owner: str) -> None:
        """Under the lock: refuse a request over the owner's limit, saying what they have already."""
        limit = self.fairness.requests_per_owner
        active = self._active_requests(owner)
        if limit is None or len(active) < limit:
            return
        what = "a run" if limit == 1 else f"{len(active)} runs"
        raise BusyError(
            f"you already have {what} waiting or training on this server ({', '.join(a.id for a in active)}); "
            f"one visitor may have {'one' if limit == 1 else limit} at a time here: stop it, or wait for it to finish",
            active,
        )

    def drop_abandoned(self, is_present: Callable[[str], bool], now: float | None = None) -> list[Job]:
        """Withdraw the queued runs of owners with no session for Fairness.abandon_after_s; the jobs ended.

        Their running runs finish and are saved, unless Fairness.stop_abandoned_runs (then they stop, saved).
        """
        now = time.time() if now is None else now
        with self._lock:
            waiting = {j.owner for j in self._jobs.values() if not j.is_finished}
        for owner in list(self._absent_since):
            if owner not in waiting or is_present(owner):
                del self._absent_since[owner]
        gone = []
        for owner in waiting:
            if is_present(owner):
                continue
            since = self._absent_since.setdefault(owner, now)
            if now - since >= self.fairness.abandon_after_s:
                gone.append(owner)
        ended = []
        for job in [j for j in list(self._jobs.values()) if j.owner in gone and not j.is_finished]:
            if job.state == QUEUED or self.fairness.stop_abandoned_runs:
                job.stop_reason = "its visitor left the app, so the server " + (
                    "withdrew it before it started" if job.state == QUEUED else "stopped it (its model is saved)"
                )
                self.stop(job.id)
                ended.append(job)
        return ended

    def start_sweeping(self, is_present: Callable[[str], bool], interval_s: float = SWEEP_INTERVAL_S) -> None:
        """A daemon thread calls drop_abandoned every interval_s until shutdown."""

        def sweep() -> None:
            while not self._closing.wait(interval_s):
                try:
                    self.drop_abandoned(is_present)
                except Exception:  # noqa: BLE001 - the sweeper must outlive one bad call
                    log.exception("sweeping abandoned runs failed")

        threading.Thread(target=sweep, name="abandoned-sweeper", daemon=True).start()

    def groups_for(self, owner: str) -> list[SeedGroup]:
        with self._lock:
            return [g for g in self._groups.values() if g.owner == owner]

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def jobs_for(self, owner: str) -> list[Job]:
        with self._lock:
            return [j for j in self._jobs.values() if j.owner == owner]

    def position(self, job: Job) -> int:
        """0 while running or finished; 1 for the next job to start, and so on."""
        if job.state != QUEUED:
            return 0
        with self._lock:
            queued = [j for j in self._jobs.values() if j.state == QUEUED]
        return queued.index(job) + 1 if job in queued else 0

    def active_count(self) -> tuple[int, int]:
        """(running, queued) over all users."""
        with self._lock:
            states = [j.state for j in self._jobs.values()]
        return states.count(RUNNING), states.count(QUEUED)

    def stop(self, job_id: str) -> None:
        """Stop a running job after its current step, or withdraw a queued one."""
        job = self._jobs.get(job_id)
        if job is None or job.is_finished:
            return
        job.stop_event.set()
        if job.future is not None and job.future.cancel():
            self._finish(job, STOPPED)
            self._settle(job.group)

    def events(self, job: Job) -> list[StepEvent | EpochEvent]:
        with self._lock:
            return list(job.events)

    def shutdown(self) -> None:
        self._closing.set()
        for job in list(self._jobs.values()):
            job.stop_event.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _finish(self, job: Job, state: JobState, error: str | None = None) -> None:
        with self._lock:
            job.state, job.error, job.finished = state, error, time.time()

    def _prune(self) -> None:
        finished = sorted((j for j in self._jobs.values() if j.is_finished), key=lambda j: j.created)
        for job in finished[: max(0, len(finished) - MAX_FINISHED_KEPT)]:
            del self._jobs[job.id]

    def _settle(self, group: SeedGroup | None) -> None:
        """Once every job of `group` has finished: save their ensemble, or say why there is none."""
        with self._lock:
            if group is None or group.state != RUNNING or not all(j.is_finished for j in group.jobs):
                return
            group.state = QUEUED  # claimed: the last two jobs finishing together settle it once
        unfinished = [j for j in group.jobs if j.state != DONE or j.run_dir is None]
        if unfinished:
            seeds = ", ".join(str(j.config.seed) for j in unfinished)
            error = f"seed {seeds} did not finish, so no ensemble was saved; make one of the saved runs instead"
            self._finish_group(group, FAILED, error)
            return
        try:
            members = [load_checkpoint(j.run_dir) for j in group.jobs]
            run_dir = save_ensemble(members, self._load_data(), self._runs_dir, group.name, group.owner)
        except MnistError as exc:
            self._finish_group(group, FAILED, f"the ensemble could not be saved: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - as for a job: one failure must not take the app down
            log.exception("ensemble of %s failed", group.id)
            self._finish_group(group, FAILED, f"the ensemble could not be saved: {type(exc).__name__}: {exc}")
            return
        with self._lock:
            group.run_dir = run_dir
        self._finish_group(group, DONE)

    def _finish_group(self, group: SeedGroup, state: JobState, error: str | None = None) -> None:
        with self._lock:
            group.state, group.error = state, error

    def _run(self, job: Job) -> None:
        """Runs on a pool thread; never raises: every failure becomes the job's message."""
        try:
            self._train(job)
        finally:
            self._settle(job.group)  # on this thread: the ensemble's evaluation is training work

    def _train(self, job: Job) -> None:
        if job.stop_event.is_set():
            self._finish(job, STOPPED)
            return
        with self._lock:
            job.state = RUNNING
        # Sketch predictions keep their latency while this trains: they run at normal priority. Lowered
        # before any torch work, so that the OpenMP workers this thread creates inherit it.
        lower_thread_priority()
        # Thread counts are per thread in torch's OpenMP pool: each training thread gets its share of cores.
        torch.set_num_threads(self.threads_per_run)
        overrun = self._start_overrun_timer(job)
        try:
            data = self._load_data()
            for event in train(job.config, data, job.stop_event):
                if isinstance(event, DoneEvent):
                    metrics, runs = event.metrics(), self._runs_dir
                    job.run_dir = save_run(
                        event.model, job.config, metrics, event.history, runs, name=job.name, owner=job.owner
                    )
                    job.metrics = event.metrics()
                    self._finish(job, STOPPED if event.stopped else DONE)
                    return
                with self._lock:
                    job.events.append(event)
            self._finish(job, FAILED, "training ended without a result")  # never left "running" forever
        except MnistError as exc:
            self._finish(job, FAILED, str(exc))
        except (torch.OutOfMemoryError, MemoryError):
            self._finish(job, FAILED, "out of memory: try a smaller batch size or a smaller architecture")
        except Exception as exc:  # noqa: BLE001 - one run's bug must not take the app down
            log.exception("training job %s failed", job.id)
            self._finish(job, FAILED, f"training failed: {type(exc).__name__}: {exc}")
        finally:
            if overrun is not None:
                overrun.cancel()

    def _start_overrun_timer(self, job: Job) -> threading.Timer | None:
        """Stop `job` (its model is saved as trained so far) once it runs OVERRUN_FACTOR times its estimate,
        plus Fairness.overrun_grace_s."""
        if job.estimate_s is None:
            return None
        limit = OVERRUN_FACTOR * job.estimate_s + self.fairness.overrun_grace_s

        def stop() -> None:
            job.stop_reason = (
                f"it ran past {OVERRUN_FACTOR:g} times its estimated {format_minutes(job.estimate_s)}, "
                "so the server stopped it; its model is saved as it was"
            )
            job.stop_event.set()

        timer = threading.Timer(limit, stop)
        timer.daemon = True
        timer.start()
        return timer


def format_minutes(seconds: float) -> str:
    """'45 s', '3 min', '1 h 10 min': a duration as a visitor reads it."""
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"
