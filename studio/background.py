"""The shared background worker: per-model computations the Sketch page shows but never waits for.

A model's digit map (the 10,000 test images in 2-D) and its neighbour index (the 60,000 training images'
features, ~110 s per model) are computed once per model by one st.cache_resource worker shared by every
session: WORKERS threads at the training pool's lower priority (mnist.jobs.lower_thread_priority), each on
half the CPUs the host gives (mnist.machine.background_threads: 1 of 2), so Sketch's predictions keep the rest.
A page asks for a `Task` and shows its progress until it is done; asking again for the same model returns
the same task.

Where the results are kept on disk (the library's load_or_compute_* functions read them back):
- a saved run: in its own folder, beside its model;
- the bundled model: its digit map ships in mnist/assets/default-model; anything else goes to
  CACHE_FOLDER/bundled under the runs folder (the package folder is read-only once installed);
- an upload: memory only.
"""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st
from torch import nn

from mnist.checkpoint import BUNDLED_DIR, Checkpoint
from mnist.data import MnistData
from mnist.digit_map import DIGIT_MAP_FILE, DigitMap, digit_map_key, load_digit_map, load_or_compute_digit_map
from mnist.inside import Progress
from mnist.jobs import lower_thread_priority
from mnist.machine import background_threads
from mnist.neighbours import NeighbourIndex, load_or_build_neighbour_index
from mnist.records import ModelRef
from mnist.verdict import FALLBACK, Calibration, calibration_for, save_calibration
from studio import disk_budget, registry

WORKERS = 1  # one background computation at a time: the other CPUs stay for Sketch
MAX_TASKS = 8  # finished results kept in memory (a neighbour index is 31-138 MB); the oldest go first
CACHE_FOLDER = ".inside-cache"  # under the runs folder; hidden, so list_runs ignores it
log = logging.getLogger(__name__)
_workers: weakref.WeakSet[BackgroundWorker] = weakref.WeakSet()  # every worker of this process: stop_all()


class Stopped(Exception):
    """Raised in a computation by its progress report once its worker is stopped: the computation ends."""


@dataclass
class Task:
    """One background computation: its progress (0..1), then its result or why it failed."""

    key: str
    progress: float = 0.0
    result: object = None
    error: str | None = None
    finished: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def ready(self) -> bool:
        return self.finished.is_set() and self.error is None

    stopping: threading.Event = field(default_factory=threading.Event, repr=False)  # the worker's

    def report(self, fraction: float) -> None:
        """Progress from the computation; once the worker is stopped, ends it (a neighbour index takes ~110 s)."""
        if self.stopping.is_set():
            raise Stopped("the background worker was stopped")
        self.progress = max(self.progress, min(1.0, fraction))

    def wait(self, timeout: float | None = None) -> bool:
        """For tests and tools: block until finished (True) or the timeout (seconds) passes (False)."""
        return self.finished.wait(timeout)


class BackgroundWorker:
    """A small thread pool running keyed computations once each, at low priority."""

    def __init__(self, workers: int = WORKERS):
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="inside", initializer=lower_thread_priority)
        self._tasks: OrderedDict[str, Task] = OrderedDict()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        _workers.add(self)

    def task(self, key: str, compute: Callable[[Progress], object]) -> Task:
        """The task for `key`, started with compute(progress) the first time it is asked for."""
        with self._lock:
            existing = self._tasks.get(key)
            if existing is not None:
                self._tasks.move_to_end(key)
                return existing
            task = self._tasks[key] = Task(key, stopping=self._stopping)
            self._forget_oldest()
        self._pool.submit(self._run, task, compute)
        return task

    def stop(self) -> None:
        """End the running computation at its next progress report and drop the queued ones, so that the
        process can exit without waiting for them (Python joins a pool's threads at exit)."""
        self._stopping.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _forget_oldest(self) -> None:
        finished = [k for k, t in self._tasks.items() if t.finished.is_set()]
        for key in finished[: max(0, len(self._tasks) - MAX_TASKS)]:
            del self._tasks[key]

    @staticmethod
    def _run(task: Task, compute: Callable[[Progress], object]) -> None:
        try:
            task.result = compute(task.report)
            task.progress = 1.0
        except Stopped:
            task.error = "stopped: the server is shutting down"
        except Exception as exc:  # a failure ends this task only, with a message for the page
            log.exception("background task %s failed", task.key)
            task.error = str(exc) or type(exc).__name__
        finally:
            task.finished.set()


def stop_all() -> None:
    """Stop every background worker of this process (tests, at the end of the session)."""
    for each in list(_workers):
        each.stop()


@st.cache_resource(show_spinner=False)
def worker() -> BackgroundWorker:
    """The process's background worker, shared by every session."""
    return BackgroundWorker()


def writable_folder(ref: ModelRef) -> Path | None:
    """Where a model's computed files are kept: its run folder, the runs folder's cache for the bundled
    model, None (memory) for an upload."""
    if ref.kind == "run":
        return registry.runs_dir() / ref.name
    if ref.kind == "bundled":
        folder = registry.runs_dir() / CACHE_FOLDER / "bundled"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return None
        return folder
    return None


def compute_digit_map(
    model: nn.Module, data: MnistData, folder: Path | None, shipped: Path | None, progress: Progress
) -> DigitMap:
    """The map shipped in `shipped` (a folder) when it fits the model, else load_or_compute_digit_map in `folder`."""
    found = None if shipped is None else load_digit_map(shipped / DIGIT_MAP_FILE, digit_map_key(model, data))
    if found is not None:
        return found
    return load_or_compute_digit_map(model, data, folder, threads=background_threads(), progress=progress)


def compute_neighbours(model: nn.Module, data: MnistData, folder: Path | None, progress: Progress) -> NeighbourIndex:
    return load_or_build_neighbour_index(model, data, folder, threads=background_threads(), progress=progress)


def within_budget(ref: ModelRef, compute: Callable[[Progress], object]) -> Callable[[Progress], object]:
    """compute, then (for a saved run, whose folder may have grown by a cache) the disk budget kept: the
    model is someone's active one, so its files stay; other runs' caches or runs may go (mnist.disk)."""
    if ref.kind != "run":
        return compute  # the bundled model's caches and uploads are outside the budget
    runs = registry.runs_dir()

    def computed_then_budget(progress: Progress) -> object:
        result = compute(progress)
        disk_budget.keep_budget(runs)
        return result

    return computed_then_budget


def digit_map_task(ref: ModelRef, data: MnistData) -> Task:
    """The (shared) task computing the digit map of the model `ref` names (an ensemble: its first member's)."""
    model = registry.inside_model(ref)
    shipped = BUNDLED_DIR if ref.kind == "bundled" else None
    compute = functools.partial(compute_digit_map, model, data, writable_folder(ref), shipped)
    return worker().task(f"digit-map|{registry.model_identity(ref)}", within_budget(ref, compute))


def neighbours_task(ref: ModelRef, data: MnistData) -> Task:
    """The (shared) task building the neighbour index of the model `ref` names (an ensemble: its first member's)."""
    model = registry.inside_model(ref)
    compute = functools.partial(compute_neighbours, model, data, writable_folder(ref))
    return worker().task(f"neighbours|{registry.model_identity(ref)}", within_budget(ref, compute))


def compute_calibration(checkpoint: Checkpoint, save_to: Path | None) -> Calibration:
    """The verdict calibration (stored, else computed from MNIST, ~20 s, else FALLBACK), kept with a saved run."""
    calibration = calibration_for(checkpoint)
    if save_to is not None and calibration is not FALLBACK and not calibration.source.startswith("stored"):
        save_calibration(save_to, calibration)
    return calibration


def calibration_task(ref: ModelRef) -> Task:
    """The (shared) task calibrating the not-a-digit check for the model `ref` names."""
    checkpoint = registry.get_checkpoint(ref)
    save_to = writable_folder(ref) if ref.kind == "run" else None
    compute = functools.partial(compute_calibration, checkpoint, save_to)
    return worker().task(f"verdict|{registry.model_identity(ref)}", within_budget(ref, lambda _progress: compute()))
