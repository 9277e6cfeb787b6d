"""What a training request costs on this server, known before it starts: its estimated training time.

The estimate is the step time of the request's architecture and batch (with its augmentation, weight
average, precision and device), measured once per process by a few real steps of `mnist.train.train` on
random images, times the steps, plus the test-set evaluations, times the seeds. It is measured on this
server as it is (a run training beside it makes the step slower, and the estimate honestly so).

$MNIST_MAX_RUN_MINUTES caps one request's estimate in the app; unset: no cap. The command line is the
operator's and is never capped.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import torch

from .config import TrainConfig
from .constants import MNIST_TEST_IMAGES, MNIST_TRAIN_IMAGES
from .data import random_mnist
from .errors import MnistError
from .jobs import default_max_runs, lower_thread_priority, threads_per_run
from .train import DoneEvent, StepEvent, evaluate, train

MAX_MINUTES_ENV = "MNIST_MAX_RUN_MINUTES"
WARMUP_STEPS = 2  # the first steps allocate and pick kernels: not timed
TIMED_STEPS = 8  # their median: a step slowed by a neighbour's burst does not count
PROBE_TEST_IMAGES = 500  # the probe's test set; its evaluation time is scaled to the real 10,000
PROBE_SEED = 0


@dataclass(frozen=True)
class CostEstimate:
    seconds: float  # the whole request: every seed's steps and evaluations
    steps: int  # per seed
    step_seconds: float
    seeds: int

    @property
    def minutes(self) -> float:
        return self.seconds / 60

    @property
    def seconds_per_seed(self) -> float:
        return self.seconds / self.seeds


@dataclass(frozen=True)
class StepCost:
    step_seconds: float  # one training step at the config's batch size
    eval_seconds_per_image: float  # the test evaluation after each epoch, per test image


def read_max_minutes(env: Mapping[str, str] = os.environ) -> float | None:
    """The operator's cap on one request's estimated training time, in minutes; None: no cap."""
    value = env.get(MAX_MINUTES_ENV, "").strip()
    if not value:
        return None
    try:
        minutes = float(value)
    except ValueError:
        minutes = 0.0
    if not minutes > 0:
        raise MnistError(f"{MAX_MINUTES_ENV} must be a number of minutes above 0, got {value!r}")
    return minutes


def steps_of(config: TrainConfig, train_images: int = MNIST_TRAIN_IMAGES) -> int:
    """Training steps of one seed, as mnist.train counts them (the ragged last batch is dropped)."""
    n_train = min(config.train_limit or train_images, train_images)
    return config.epochs * (n_train // config.batch_size)


def probe_key(config: TrainConfig) -> TrainConfig:
    """What a step's time depends on: everything else (epochs, rates, seed, image count) set to one value."""
    return TrainConfig(
        arch=config.arch,
        batch_size=config.batch_size,
        augment=config.augment,
        ema=config.ema,
        precision=config.precision,
        device=config.device,
    )


def measure_step_cost(key: TrainConfig) -> StepCost:
    """A few real training steps of `key` (see probe_key) on random images, timed."""
    steps = WARMUP_STEPS + TIMED_STEPS
    config = key.replace(epochs=1, train_limit=steps * key.batch_size, log_every=1)
    data = random_mnist(steps * key.batch_size, PROBE_TEST_IMAGES, seed=PROBE_SEED)
    elapsed: dict[int, float] = {}
    for event in train(config, data):
        if isinstance(event, StepEvent):
            elapsed[event.step] = event.elapsed
        elif isinstance(event, DoneEvent):
            model = event.model
    timed = range(WARMUP_STEPS + 1, steps + 1)
    step_seconds = statistics.median(elapsed[i] - elapsed[i - 1] for i in timed)
    started = time.perf_counter()
    evaluate(model, data.test_images, data.test_labels)  # what each epoch's test evaluation costs, per image
    return StepCost(step_seconds, (time.perf_counter() - started) / PROBE_TEST_IMAGES)


def start_probe_thread() -> None:
    """The probe thread trains as a run would: at the training pool's priority and thread count."""
    lower_thread_priority()
    torch.set_num_threads(threads_per_run(default_max_runs()))


# One probe at a time (two at once would time each other), each key once per process.
_probes = ThreadPoolExecutor(1, thread_name_prefix="cost-probe", initializer=start_probe_thread)
_probed: dict[TrainConfig, Future[StepCost]] = {}
_probed_lock = threading.Lock()


def step_cost(key: TrainConfig) -> Future[StepCost]:
    """The (future) step cost of `key`: measured in the background the first time it is asked for."""
    with _probed_lock:
        if key not in _probed:
            _probed[key] = _probes.submit(measure_step_cost, key)
        return _probed[key]


def estimate(
    config: TrainConfig, seeds: int = 1, train_images: int = MNIST_TRAIN_IMAGES, wait: bool = True
) -> CostEstimate | None:
    """The request's estimated training time on this server; None (with wait=False) while it is measured."""
    future = step_cost(probe_key(config))
    if not wait and not future.done():
        return None
    try:
        cost = future.result()
    except Exception as exc:  # noqa: BLE001 - a probe's failure is the request's, told in words
        raise MnistError(f"the training time could not be estimated: {type(exc).__name__}: {exc}") from exc
    steps = steps_of(config, train_images)
    per_seed = steps * cost.step_seconds + config.epochs * MNIST_TEST_IMAGES * cost.eval_seconds_per_image
    return CostEstimate(per_seed * seeds, steps, cost.step_seconds, seeds)


def over_cap_message(found: CostEstimate, cap_minutes: float) -> str:
    """Why a request is refused, with its estimate, the cap and what to lower."""
    seeds = f" × {found.seeds} seeds" if found.seeds > 1 else ""
    return (
        f"this run would train for about {found.minutes:.0f} min on this server ({found.steps:,} steps × "
        f"{found.step_seconds:.2f} s{seeds}), over its cap of {cap_minutes:g} min per request; lower the "
        "epochs, the training images or the seeds, or choose a smaller architecture"
    )
