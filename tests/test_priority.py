"""Training never starves sketching: training threads run at a lower OS priority, sized from the core count.

Read from the kernel while a real job trains: /proc/self/task/<tid>/stat holds each thread's nice value.
The latency this buys is measured by bench/predict_latency.py (prediction p50/p99 with one job training).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import random_mnist

from mnist.config import TrainConfig
from mnist.data import MnistData
from mnist.jobs import RUNNING, TRAINING_NICE, JobManager

LONG = TrainConfig(epochs=200, batch_size=64, train_limit=512, log_every=1, device="cpu")  # stopped by the test
TIMEOUT = 120  # seconds for the job to start training on a busy machine
NICE_FIELD = 19  # proc(5): field 19 of /proc/<pid>/task/<tid>/stat is the nice value

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")


def thread_nice(tid: int) -> int:
    text = Path(f"/proc/self/task/{tid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # after "tid (comm) ": fields 3, 4, ...
    return int(fields[NICE_FIELD - 3])


def process_threads() -> list[int]:
    return [int(tid) for tid in os.listdir("/proc/self/task")]


@pytest.fixture
def synthetic_data() -> MnistData:
    return random_mnist(512, 50)


def wait_until_training(manager: JobManager, job) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not (job.state == RUNNING and manager.events(job)):
        assert not job.is_finished, job.error
        assert time.monotonic() < deadline, "the job did not start training"
        time.sleep(0.05)


@linux_only
def test_training_thread_and_its_openmp_workers_run_at_lower_priority(synthetic_data, tmp_path):
    before = set(process_threads())
    own_nice = thread_nice(threading.get_native_id())
    manager = JobManager(load_data=lambda: synthetic_data, runs_dir=tmp_path, max_workers=1)
    try:
        job = manager.submit(LONG, owner="test")
        wait_until_training(manager, job)
        trainer = next(t for t in threading.enumerate() if t.name.startswith("train"))
        assert thread_nice(trainer.native_id) == TRAINING_NICE
        # Threads that appeared with the job: the trainer and the OpenMP workers it started for its torch
        # threads (they inherit its nice value only because it was lowered before any torch work).
        new = set(process_threads()) - before
        workers = new - {trainer.native_id}
        assert len(workers) >= manager.threads_per_run - 1
        assert all(thread_nice(tid) == TRAINING_NICE for tid in workers), {tid: thread_nice(tid) for tid in workers}
        assert thread_nice(threading.get_native_id()) == own_nice  # only the training threads changed
    finally:
        manager.shutdown()
    assert job.is_finished
