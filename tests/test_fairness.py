"""Fair to strangers: one request per visitor, queued work of a visitor who left is dropped, a cost cap.

Library level (mnist.jobs, mnist.cost) with a pool training random images; the Train page's side is in
tests/test_app.py (five Starts, the cap's refusal).
"""

from __future__ import annotations

import time

import pytest
from helpers import random_mnist

from mnist import cost
from mnist.config import TrainConfig, preset_config
from mnist.errors import MnistError
from mnist.jobs import (
    ABANDON_ENV,
    DONE,
    QUEUED,
    REQUESTS_ENV,
    RUNNING,
    STOPPED,
    BusyError,
    Fairness,
    JobManager,
)
from mnist.runs import list_runs
from mnist.train import train

LONG = TrainConfig(epochs=200, batch_size=64, train_limit=512, log_every=1, device="cpu")  # stopped by the tests
SHORT = TrainConfig(epochs=1, batch_size=64, train_limit=256, log_every=1, device="cpu")
TIMEOUT_S = 120.0
ABANDON_S = 60.0


@pytest.fixture
def pool(tmp_path):
    managers = []

    def make(fairness: Fairness) -> JobManager:
        data = random_mnist(512, 50)
        manager = JobManager(load_data=lambda: data, runs_dir=tmp_path, max_workers=1, fairness=fairness)
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        manager.shutdown()


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
def test_one_request_per_visitor_and_a_seeds_group_counts_once(pool):
    manager = pool(Fairness(requests_per_owner=1))
    group = manager.submit_seeds(LONG, "alice", seeds=3)
    with pytest.raises(BusyError, match="you already have a run waiting or training") as refused:
        manager.submit(SHORT, "alice")
    assert refused.value.active == [group]  # what they have, so the page can offer its Stop
    assert len(manager.active_requests("alice")) == 1
    bob = manager.submit(SHORT, "bob")  # another visitor is not held back by alice's limit
    assert bob.state == QUEUED
    for job in group.jobs:
        manager.stop(job.id)
    wait_until(lambda: group.is_finished, "the group to end")
    assert manager.submit(SHORT, "alice").owner == "alice"  # room again once the group ended


def test_the_operator_can_raise_the_limit(pool, monkeypatch):
    monkeypatch.setenv(REQUESTS_ENV, "2")
    manager = pool(Fairness.from_env())
    manager.submit(LONG, "alice")
    manager.submit(LONG, "alice")
    with pytest.raises(BusyError):
        manager.submit(LONG, "alice")


@pytest.mark.parametrize("bad", ["0", "one", "1.5", "-3"])
def test_a_bad_setting_is_refused_in_words(monkeypatch, bad):
    monkeypatch.setenv(REQUESTS_ENV, bad)
    with pytest.raises(MnistError, match=f"{REQUESTS_ENV} must be a whole number >= 1"):
        Fairness.from_env()
    monkeypatch.delenv(REQUESTS_ENV)
    monkeypatch.setenv(ABANDON_ENV, bad if bad != "1.5" else "0.5")
    with pytest.raises(MnistError, match=ABANDON_ENV):
        Fairness.from_env()


@pytest.mark.slow
def test_a_vanished_visitors_queued_run_is_dropped_and_the_running_one_finishes(pool):
    manager = pool(Fairness(requests_per_owner=2, abandon_after_s=ABANDON_S))
    running = manager.submit(LONG, "alice")
    wait_until(lambda: running.state == RUNNING, "the first run to start")
    queued = manager.submit(SHORT, "alice")
    mine = manager.submit(SHORT, "bob")
    present = {"bob"}
    start = time.time()
    assert manager.drop_abandoned(present.__contains__, now=start) == []  # alice just left: not yet
    assert manager.drop_abandoned(present.__contains__, now=start + ABANDON_S / 2) == []
    assert manager.drop_abandoned(present.__contains__, now=start + ABANDON_S) == [queued]
    assert queued.state == STOPPED and "its visitor left" in queued.stop_reason
    assert running.state == RUNNING and not running.stop_event.is_set()  # finishes and is saved
    assert mine.state == QUEUED  # bob is here
    manager.stop(running.id)
    wait_until(lambda: mine.is_finished, "bob's run")


def test_a_visitor_who_comes_back_keeps_their_queue(pool):
    manager = pool(Fairness(requests_per_owner=2, abandon_after_s=ABANDON_S))
    first = manager.submit(LONG, "alice")
    queued = manager.submit(SHORT, "alice")
    start = time.time()
    manager.drop_abandoned(lambda owner: False, now=start)
    manager.drop_abandoned(lambda owner: True, now=start + ABANDON_S / 2)  # back: the clock starts again
    assert manager.drop_abandoned(lambda owner: False, now=start + ABANDON_S) == []
    assert queued.state == QUEUED
    manager.stop(first.id)
    manager.stop(queued.id)


@pytest.mark.slow
def test_the_operator_can_stop_abandoned_runs_too(pool):
    manager = pool(Fairness(abandon_after_s=ABANDON_S, stop_abandoned_runs=True))
    job = manager.submit(LONG, "alice")
    wait_until(lambda: job.state == RUNNING and manager.events(job), "the run to train")
    start = time.time()
    manager.drop_abandoned(lambda owner: False, now=start)
    assert manager.drop_abandoned(lambda owner: False, now=start + ABANDON_S) == [job]
    wait_until(lambda: job.is_finished, "the run to stop")
    assert job.state == STOPPED and job.run_dir is not None  # stopped, and its model saved


def test_a_run_past_twice_its_estimate_is_stopped_and_keeps_its_model(pool, tmp_path):
    manager = pool(Fairness(overrun_grace_s=0.0))
    job = manager.submit(LONG, "alice", estimate_s=0.5)  # LONG trains for minutes: it will overrun
    wait_until(lambda: job.is_finished, "the overrun stop")
    assert job.state == STOPPED
    assert "ran past 2 times its estimated" in job.stop_reason
    assert job.metrics.steps_done < LONG.epochs * (LONG.train_limit // LONG.batch_size)
    (run,) = list_runs(tmp_path)
    assert run.record.metrics.stopped is True


@pytest.mark.slow
def test_a_short_run_gets_a_grace_beyond_twice_its_estimate(pool):
    """A fast run estimated on an idle server is not cut short when visitors slow it down."""
    manager = pool(Fairness())
    job = manager.submit(SHORT, "alice", estimate_s=0.01)  # 4 steps, however slow: far under 2 x 0.01 s + 60 s
    wait_until(lambda: job.is_finished, "the run")
    assert job.state == DONE and job.stop_reason is None


# --- the estimate ---------------------------------------------------------------------------------


def test_steps_are_counted_as_training_counts_them():
    config = SHORT.replace(train_limit=300, batch_size=64, epochs=2)  # a ragged last batch is dropped
    events = [e for e in train(config, random_mnist(300, 20)) if hasattr(e, "total_steps")]
    assert cost.steps_of(config, train_images=300) == events[-1].total_steps == 8
    assert cost.steps_of(config.replace(train_limit=0), train_images=300) == 8  # 0 = all images


@pytest.mark.slow
def test_the_estimate_is_measured_once_and_scales_with_steps_and_seeds():
    config = preset_config("fast").replace(arch="mlp", device="cpu")
    one = cost.estimate(config)
    assert one.step_seconds > 0 and one.steps == cost.steps_of(config)
    assert cost.step_cost(cost.probe_key(config)) is cost.step_cost(cost.probe_key(config.replace(epochs=9)))
    three = cost.estimate(config, seeds=3)
    assert three.seconds == pytest.approx(3 * one.seconds)
    longer = cost.estimate(config.replace(epochs=config.epochs * 2))
    assert longer.seconds == pytest.approx(2 * one.seconds)


def test_cap_setting_and_its_refusal_say_what_to_do(monkeypatch):
    monkeypatch.delenv(cost.MAX_MINUTES_ENV, raising=False)
    assert cost.read_max_minutes() is None
    monkeypatch.setenv(cost.MAX_MINUTES_ENV, "5")
    assert cost.read_max_minutes() == 5.0
    for bad in ("0", "-1", "soon"):
        monkeypatch.setenv(cost.MAX_MINUTES_ENV, bad)
        with pytest.raises(MnistError, match=cost.MAX_MINUTES_ENV):
            cost.read_max_minutes()
    found = cost.CostEstimate(seconds=1560.0, steps=5616, step_seconds=0.28, seeds=1)
    message = cost.over_cap_message(found, 5)
    assert "about 26 min" in message and "5,616 steps × 0.28 s" in message and "cap of 5 min" in message
    assert "lower the epochs" in message
