"""studio.background: keyed computations run once each; a stopped worker ends its running one at its next
progress report and drops the queued ones, so a process (a test run, a server) exits without waiting."""

from __future__ import annotations

import threading
import time

from studio.background import BackgroundWorker

WAIT_S = 10.0  # generous for a loaded 2-core machine; each computation here takes milliseconds once free


def endless(started: threading.Event):
    """A computation that reports progress forever, as a long one (the neighbour index) reports its batches."""

    def compute(progress):
        started.set()
        while True:
            progress(0.5)
            time.sleep(0.01)

    return compute


def test_a_key_runs_once_and_its_result_is_shared():
    worker = BackgroundWorker()
    calls = []
    first = worker.task("model-a", lambda progress: calls.append(1) or 42)
    assert first.wait(WAIT_S) and first.result == 42 and first.ready
    assert worker.task("model-a", lambda progress: calls.append(1) or 0) is first
    assert calls == [1]
    worker.stop()


def test_stop_ends_the_running_computation_and_drops_the_queued_ones():
    worker = BackgroundWorker()
    started = threading.Event()
    running = worker.task("long", endless(started))
    queued = worker.task("next", lambda progress: "never")
    assert started.wait(WAIT_S)
    worker.stop()
    assert running.wait(WAIT_S), "the running computation ends at its next progress report"
    assert not running.ready and "stopped" in running.error
    time.sleep(0.2)
    assert not queued.finished.is_set() and queued.result is None  # cancelled before it started
