"""Faults: killed processes, damaged run folders, failed writes and failing training jobs.

A crash at any moment must leave the runs folder readable (no half-written run visible), damaged
folders are skipped with a warning instead of breaking the run list, and one failing training job
ends alone, with a message, while the others carry on.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import pytest
import torch
from helpers import random_mnist, write_small_mnist

import mnist.jobs
from mnist.checkpoint import (
    HISTORY_FILE,
    META_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    atomic_write_bytes,
    load_checkpoint,
    save_run,
)
from mnist.config import TrainConfig
from mnist.data import MnistData
from mnist.errors import DataError
from mnist.jobs import DONE, FAILED, QUEUED, RUNNING, STOPPED, JobManager
from mnist.models import build_model
from mnist.records import RunMetrics
from mnist.runs import delete_run, list_runs, load_history
from mnist.train import History, StepEvent
from mnist.train import train as real_train

SAVED_CONFIG = TrainConfig(arch="cnn-bn-fast")  # the config of the small cnn-bn-fast models these tests save

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 120  # seconds; generous, the machine is shared


# ---------------------------------------------------------------- helpers


def wait_until(predicate, timeout: float = TIMEOUT, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(interval)


def visible_entries(runs: Path) -> list[str]:
    return sorted(p.name for p in runs.iterdir() if not p.name.startswith(".")) if runs.exists() else []


def list_runs_quietly(runs: Path):
    """list_runs that fails the test if it warns about any damaged folder."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return list_runs(runs)


def small_model():
    torch.manual_seed(0)
    return build_model("cnn-bn-fast").eval()


def subprocess_env(mnist_dir: Path | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    if mnist_dir is not None:
        env["MNIST_DATA_DIR"] = str(mnist_dir)
    return env


class StderrReader(threading.Thread):
    """Collects a subprocess's stderr (tqdm writes \\r-separated progress) without blocking the test."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream, self.chunks, self.lock = stream, [], threading.Lock()

    def run(self):
        for chunk in iter(lambda: self.stream.read1(4096), b""):
            with self.lock:
                self.chunks.append(chunk)

    @property
    def text(self) -> str:
        with self.lock:
            return b"".join(self.chunks).decode(errors="replace")


@pytest.fixture
def synthetic_data() -> MnistData:
    """2,000 random training images and 100 test images: enough to train on, cheap to evaluate."""
    return random_mnist(2000, 100)


@pytest.fixture
def managers():
    """JobManagers made by a test, shut down afterwards even when the test fails."""
    made = []

    def make(*args, **kwargs) -> JobManager:
        manager = JobManager(*args, **kwargs)
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.shutdown()


QUICK = TrainConfig(epochs=1, batch_size=128, train_limit=512, log_every=1, device="cpu")


# ---------------------------------------------------------------- (1) killed processes


@pytest.mark.slow
def test_training_killed_mid_run_leaves_a_readable_runs_folder(tmp_path, mnist_dir):
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "mnist", "train", "--train-limit", "2000", "--epochs", "50"]
    cmd += ["--out", str(runs), "--preset", "fast", "--device", "cpu"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=subprocess_env(mnist_dir), stderr=subprocess.PIPE)
    reader = StderrReader(proc.stderr)
    reader.start()
    try:
        # Kill once tqdm shows progress (its first update comes after 10 steps): mid-epoch, mid-run.
        wait_until(lambda: "loss=" in reader.text or proc.poll() is not None)
        assert proc.poll() is None, f"training ended early:\n{reader.text}"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "step" in reader.text and "saved" not in reader.text  # killed while training
    # The killed run is absent (it only saves at the end): no half folder, no warning.
    assert list_runs_quietly(runs) == []
    assert visible_entries(runs) == []

    # A second run in the same folder completes and is listed and loadable (small data set: fast evaluation).
    small = tmp_path / "small-mnist"
    write_small_mnist(small, n_train=600, n_test=100)
    cmd = [sys.executable, "-m", "mnist", "train", "--train-limit", "500", "--epochs", "1", "--device", "cpu"]
    cmd += ["--out", str(runs), "--name", "second", "--json"]
    done = subprocess.run(cmd, cwd=REPO, env=subprocess_env(small), capture_output=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr.decode()
    summary = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert Path(summary["checkpoint"]) == runs / "second"
    listed = list_runs_quietly(runs)
    assert [run.name for run in listed] == ["second"]
    assert listed[0].record.metrics.stopped is False
    checkpoint = load_checkpoint(runs / "second")
    assert checkpoint.config.train_limit == 500
    assert checkpoint.record.metrics.test_accuracy == pytest.approx(summary["test_accuracy"])


CRASHING_SAVE = textwrap.dedent(
    """
    import os, signal, sys
    from mnist.checkpoint import save_run
    from mnist.config import TrainConfig
    from mnist.models import build_model
    from mnist.records import RunMetrics

    runs, kill_at = sys.argv[1], int(sys.argv[2])
    real_replace, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # the power goes out here
        return real_replace(src, dst)

    os.replace = replace
    config = TrainConfig(arch="cnn-bn-fast")
    save_run(build_model("cnn-bn-fast"), config, RunMetrics(test_accuracy=0.1), runs_dir=runs, name="crashed")
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", [1, 4], ids=["weights-file", "folder-rename"])  # all four: failed-rename test
def test_process_killed_during_save_leaves_no_visible_run(tmp_path, kill_at):
    """save_run renames weights, meta, history into a hidden folder, then the folder into place: kill at each."""
    runs = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-c", CRASHING_SAVE, str(runs), str(kill_at)],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    hidden = [p for p in runs.iterdir() if p.name.startswith(".")]
    assert hidden, "the crash should leave the hidden temporary folder behind"
    assert visible_entries(runs) == []
    assert list_runs_quietly(runs) == []
    # The leftover does not block saving a run of the same name afterwards.
    path = save_run(small_model(), SAVED_CONFIG, RunMetrics(), runs_dir=runs, name="crashed")
    assert [run.name for run in list_runs_quietly(runs)] == ["crashed"]
    assert load_checkpoint(path).arch == "cnn-bn-fast"


# ---------------------------------------------------------------- (2) damaged run folders


@pytest.fixture
def damaged_runs(runs_dir) -> dict[str, Path]:
    """One good run and every kind of damage a crash, a full disk or a careless hand can leave."""
    model = small_model()
    paths = {
        name: save_run(model, SAVED_CONFIG, RunMetrics(test_accuracy=0.1), runs_dir=runs_dir, name=name)
        for name in (
            "good",
            "truncated",
            "broken-meta",
            "no-weights",
            "empty-weights",
            "no-meta",
            "meta-is-a-dir",
            "created-number",
        )
    }
    weights = paths["truncated"] / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    (paths["broken-meta"] / META_FILE).write_text('{"format": "mnist-studio-checkpoint", "arch": ')
    (paths["no-weights"] / WEIGHTS_FILE).unlink()
    (paths["empty-weights"] / WEIGHTS_FILE).write_bytes(b"")
    (paths["no-meta"] / META_FILE).unlink()
    (paths["meta-is-a-dir"] / META_FILE).unlink()
    (paths["meta-is-a-dir"] / META_FILE).mkdir()
    meta = json.loads((paths["created-number"] / META_FILE).read_text())
    (paths["created-number"] / META_FILE).write_text(json.dumps({**meta, "created": 5}))  # sorted beside strings
    (runs_dir / "empty-folder").mkdir()
    # Leftovers of interrupted saves and deletes: hidden, so ignored without a word.
    (runs_dir / ".good.k2j4l1").mkdir()
    (runs_dir / ".good.k2j4l1" / ".model.safetensors.abc123.tmp").write_bytes(b"\0" * 100)
    (runs_dir / ".deleted-old-1a2b").mkdir()
    (runs_dir / ".model.safetensors.xyz.tmp").write_bytes(b"half")
    (paths["good"] / ".model.safetensors.xxx.tmp").write_bytes(b"half")  # inside a good run: harmless
    (paths["good"] / f".{META_FILE}.yyy.tmp").write_bytes(b"{")
    (runs_dir / "notes.txt").write_text("a stray file, not a run")
    return paths


DAMAGED = {
    "truncated": "not a valid safetensors file",
    "broken-meta": "not valid JSON",
    "no-weights": "model.safetensors is missing",
    "empty-weights": "not a valid safetensors file",
    "no-meta": "cannot be read",
    "meta-is-a-dir": "cannot be read",
    "empty-folder": "cannot be read",
    "created-number": "'created' must be a str",
}


def test_list_runs_skips_damaged_folders_with_a_warning(runs_dir, damaged_runs):
    with pytest.warns(UserWarning, match="skipping damaged run folder") as record:
        runs = list_runs(runs_dir)
    assert [run.name for run in runs] == ["good"]
    assert runs[0].record.metrics.test_accuracy == 0.1
    messages = [str(w.message) for w in record if "skipping damaged" in str(w.message)]
    assert len(messages) == len(DAMAGED)
    for name, words in DAMAGED.items():
        (message,) = [m for m in messages if f"{os.sep}{name}{os.sep}" in m or f"{os.sep}{name}:" in m]
        assert words in message, (name, message)
    # The default folder ($MNIST_RUNS_DIR, set by the runs_dir fixture) gives the same answer.
    with pytest.warns(UserWarning):
        assert [run.name for run in list_runs()] == ["good"]


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("truncated", "not a valid safetensors file"),
        ("empty-weights", "not a valid safetensors file"),
        ("broken-meta", "not valid JSON"),
        ("no-weights", "no checkpoint at"),
    ],
)
def test_loading_a_damaged_run_is_a_checkpoint_error(runs_dir, damaged_runs, name, words):
    with pytest.raises(CheckpointError, match=words) as info:
        load_checkpoint(runs_dir / name)
    assert name in str(info.value)


def test_damaged_runs_can_still_be_deleted_and_good_ones_still_load(runs_dir, damaged_runs):
    assert load_checkpoint(damaged_runs["good"]).arch == "cnn-bn-fast"
    # No readable meta.json: the weights carry the same description, so the model itself still loads.
    assert load_checkpoint(damaged_runs["no-meta"]).record.name == "no-meta"
    assert load_checkpoint(damaged_runs["meta-is-a-dir"]).record.name == "meta-is-a-dir"
    for name in DAMAGED:
        delete_run(runs_dir, name)
    assert [run.name for run in list_runs_quietly(runs_dir)] == ["good"]
    assert visible_entries(runs_dir) == ["good", "notes.txt"]


def test_damaged_history_reads_as_what_it_still_holds(runs_dir):
    step = StepEvent(epoch=1, step=1, total_steps=2, loss=2.3, lr=0.01, images_per_sec=100.0, elapsed=0.1, eta=0.1)
    path = save_run(small_model(), SAVED_CONFIG, RunMetrics(), History(steps=[step]), runs_dir, "h")
    assert load_history(path) == History(steps=[step])
    whole = step.to_dict()
    partial = {"steps": [whole, {"step": 2}, {**whole, "loss": "high"}, 7], "epochs": {"not": "a list"}}
    (path / HISTORY_FILE).write_text(json.dumps(partial))
    assert load_history(path) == History(steps=[step])  # the complete event survives, the rest is dropped
    for content in (b'{"steps": [', b"[1, 2]", b"\xff\xfe", b"", b"[" * 100_000):
        (path / HISTORY_FILE).write_bytes(content)
        assert load_history(path) == History()
    (path / HISTORY_FILE).unlink()
    assert load_history(path) == History()


def test_list_runs_of_a_missing_or_non_folder_path_is_empty(tmp_path):
    assert list_runs(tmp_path / "nope") == []
    (tmp_path / "file").write_text("x")
    assert list_runs(tmp_path / "file") == []


# ---------------------------------------------------------------- (3) failed writes


@pytest.mark.parametrize("fail_at", [1, 2, 3, 4], ids=["weights", "meta", "history", "folder"])
def test_failed_rename_mid_save_leaves_nothing(runs_dir, monkeypatch, fail_at):
    real_replace, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == fail_at:
            raise OSError(errno.EIO, "simulated I/O error")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="simulated"):
        save_run(small_model(), SAVED_CONFIG, RunMetrics(), runs_dir=runs_dir, name="doomed")
    assert len(calls) == fail_at
    assert list(runs_dir.iterdir()) == []  # not even a hidden leftover
    monkeypatch.undo()
    save_run(small_model(), SAVED_CONFIG, RunMetrics(), runs_dir=runs_dir, name="doomed")  # the name is still free
    assert visible_entries(runs_dir) == ["doomed"]


@pytest.mark.parametrize(
    "error", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()], ids=["disk-full", "ctrl-c"]
)
def test_disk_full_or_interrupt_during_write_leaves_nothing(runs_dir, monkeypatch, error):
    def fsync(fd):
        raise error

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(type(error)):
        save_run(small_model(), SAVED_CONFIG, RunMetrics(), runs_dir=runs_dir, name="full")
    assert list(runs_dir.iterdir()) == []
    assert list_runs_quietly(runs_dir) == []


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "meta.json"
    atomic_write_bytes(target, b"old")

    def replace(src, dst):
        raise OSError(errno.EIO, "simulated")

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["meta.json"]  # the temporary file is gone


def test_saving_over_an_existing_run_is_refused_and_keeps_it(runs_dir):
    first = save_run(small_model(), SAVED_CONFIG, RunMetrics(test_accuracy=0.1), runs_dir=runs_dir, name="same")
    with pytest.raises(CheckpointError, match="already exists"):
        save_run(
            small_model(),
            SAVED_CONFIG,
            RunMetrics(test_accuracy=0.9),
            runs_dir=runs_dir,
            name="same",
        )
    assert load_checkpoint(first).record.metrics.test_accuracy == 0.1
    assert visible_entries(runs_dir) == ["same"]
    assert [p.name for p in runs_dir.iterdir()] == ["same"]  # no temporary folder left behind either


# ---------------------------------------------------------------- (4) training jobs


def fake_train_by_seed(events_before_failure: list):
    """mnist.jobs.train replaced: the config's seed picks how the job fails (0 = really train)."""

    def fake(config, data, stop):
        if config.seed == 1:
            raise RuntimeError("boom in the training loop")
        if config.seed == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        if config.seed == 3:
            return fail_after_a_step()
        if config.seed == 4:
            return iter(())  # ends without a DoneEvent
        if config.seed == 5:
            raise MemoryError()
        return real_train(config, data, stop)

    def fail_after_a_step():
        event = StepEvent(1, 1, 10, 2.3, 0.01, 100.0, 0.1, 1.0)
        events_before_failure.append(event)
        yield event
        raise ValueError("NaN loss")

    return fake


def test_failing_jobs_end_alone_with_a_message(synthetic_data, runs_dir, monkeypatch, managers):
    monkeypatch.setattr(mnist.jobs, "train", fake_train_by_seed([]))
    manager = managers(lambda: synthetic_data, runs_dir, max_workers=2)
    jobs = {seed: manager.submit(QUICK.replace(seed=seed), owner=f"user-{seed}") for seed in range(6)}
    wait_until(lambda: all(job.is_finished for job in jobs.values()))

    expected = {
        1: ["RuntimeError", "boom in the training loop"],
        2: ["out of memory", "smaller batch size"],
        3: ["ValueError", "NaN loss"],
        4: ["ended without a result"],
        5: ["out of memory"],
    }
    for seed, words in expected.items():
        job = jobs[seed]
        assert job.state == FAILED, (seed, job.state, job.error)
        for word in words:
            assert word in job.error, (seed, job.error)
        assert job.run_dir is None and job.finished is not None
    assert len(manager.events(jobs[3])) == 1  # progress before the failure is kept
    good = jobs[0]
    assert good.state == DONE and good.error is None
    assert good.metrics.stopped is False
    assert [run.name for run in list_runs_quietly(runs_dir)] == [good.run_dir.name]
    assert manager.active_count() == (0, 0)
    assert [j.id for j in manager.jobs_for("user-0")] == [good.id]


def test_bad_config_and_missing_data_fail_the_job_not_the_app(synthetic_data, runs_dir, managers):
    manager = managers(lambda: synthetic_data, runs_dir, max_workers=1)
    too_big = manager.submit(TrainConfig(batch_size=4000, device="cpu"), owner="a")  # only 2,000 images
    wait_until(lambda: too_big.is_finished)
    assert too_big.state == FAILED
    assert "batch_size 4000 is larger than the 2000 training images" in too_big.error

    def no_data():
        raise DataError("/data/train-images-idx3-ubyte: the file is truncated; download it again")

    broken = managers(no_data, runs_dir, max_workers=1)
    job = broken.submit(QUICK, owner="b")
    wait_until(lambda: job.is_finished)
    assert job.state == FAILED and "train-images-idx3-ubyte" in job.error and "truncated" in job.error
    assert visible_entries(runs_dir) == []


@pytest.mark.slow
def test_queue_positions_and_stopping_a_queued_job(synthetic_data, runs_dir, monkeypatch, managers):
    gate, started = threading.Event(), threading.Event()

    def gated_train(config, data, stop):
        started.set()
        while not gate.is_set() and not stop.is_set():  # the first job holds the only worker
            time.sleep(0.01)
        yield from real_train(config, data, stop)

    monkeypatch.setattr(mnist.jobs, "train", gated_train)
    manager = managers(lambda: synthetic_data, runs_dir, max_workers=1)
    first = manager.submit(QUICK, owner="a")
    assert started.wait(TIMEOUT)
    second, third, fourth = (manager.submit(QUICK.replace(seed=s), owner="b") for s in (1, 2, 3))

    assert first.state == RUNNING
    assert [second.state, third.state, fourth.state] == [QUEUED] * 3
    assert [manager.position(j) for j in (first, second, third, fourth)] == [0, 1, 2, 3]
    assert manager.active_count() == (1, 3)

    manager.stop(third.id)
    assert third.state == STOPPED and third.is_finished  # withdrawn at once, without running
    assert [manager.position(j) for j in (first, second, third, fourth)] == [0, 1, 0, 2]
    assert manager.active_count() == (1, 2)
    manager.stop("no-such-job")  # unknown ids are ignored
    manager.stop(third.id)  # and so is stopping twice

    gate.set()
    wait_until(lambda: all(j.is_finished for j in (first, second, fourth)))
    assert [first.state, second.state, third.state, fourth.state] == [DONE, DONE, STOPPED, DONE]
    assert third.run_dir is None and manager.events(third) == []
    assert len(list_runs_quietly(runs_dir)) == 3
    assert {run.record.config.seed for run in list_runs_quietly(runs_dir)} == {0, 1, 3}


def test_stopping_a_running_job_saves_the_model_so_far(synthetic_data, runs_dir, managers):
    manager = managers(lambda: synthetic_data, runs_dir, max_workers=1)
    config = TrainConfig(epochs=50, batch_size=32, log_every=1, device="cpu")  # 62 steps an epoch, 50 epochs
    job = manager.submit(config, owner="a")
    wait_until(lambda: len(manager.events(job)) >= 3)
    assert job.state == RUNNING
    manager.stop(job.id)
    wait_until(lambda: job.is_finished)

    assert job.state == STOPPED and job.error is None
    assert job.metrics.stopped is True
    assert job.metrics.epochs_done < 50
    assert job.run_dir is not None and job.run_dir.parent == runs_dir.resolve()
    (run,) = list_runs_quietly(runs_dir)
    assert run.record.metrics.stopped is True
    checkpoint = load_checkpoint(job.run_dir)
    assert checkpoint.record.metrics.stopped is True
    assert checkpoint.record.metrics.steps_done == job.metrics.steps_done < 50 * 62
