"""The memory budget (issue 22): one uint8 data set, normalised a batch at a time; evaluation in chunks."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

import mnist.train
from bench import memory
from mnist.checkpoint import BUNDLED_DIR, WEIGHTS_FILE, load_checkpoint
from mnist.config import PRESETS, TrainConfig
from mnist.constants import MNIST_MEAN, MNIST_STD
from mnist.data import normalize
from mnist.insight import PANEL_INDICES
from mnist.stats import mean_images
from mnist.train import DoneEvent, evaluate, train

# Training the fast preset on all 60,000 images may grow the process by this much at most (model, batches,
# optimizer, allocator). A normalised float copy of the training set alone took 188 MB, 564 MB while made.
MAX_TRAINING_GROWTH_MB = 250.0
STEPS_MEASURED = 5


def plain_normalize(images: torch.Tensor) -> torch.Tensor:
    """normalize() as it was written before it worked in place: the values it must keep giving."""
    x = images.float()
    if images.dtype == torch.uint8:
        x = x / 255.0
    if x.dim() == 3:
        x = x.unsqueeze(1)
    return (x - MNIST_MEAN) / MNIST_STD


def test_normalize_in_place_gives_the_plain_values_and_leaves_a_float_input_alone(mnist_data):
    images = mnist_data.test_images[:500]
    assert torch.equal(normalize(images), plain_normalize(images))
    floats = images.float().unsqueeze(1) / 255.0
    kept = floats.clone()
    assert torch.equal(normalize(floats), plain_normalize(floats))
    assert torch.equal(floats, kept)  # the caller's tensor is not normalised in place


def test_a_normalised_batch_equals_the_batch_of_a_normalised_copy(mnist_data):
    """What training now does per batch gives exactly what slicing the old pre-normalised copy gave."""
    images = mnist_data.train_images[:5000]
    idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:256]
    assert torch.equal(normalize(images[idx]), normalize(images)[idx])


@pytest.mark.slow
def test_training_normalises_one_batch_at_a_time_and_keeps_the_uint8_data(mnist_data, monkeypatch):
    sizes = []

    def recording_normalize(images):
        sizes.append(len(images))
        return normalize(images)

    monkeypatch.setattr(mnist.train, "normalize", recording_normalize)
    config = TrainConfig(train_limit=2048, batch_size=128, epochs=1, log_every=4)
    before = mnist_data.train_images.data_ptr()
    events = list(train(config, mnist_data))
    assert isinstance(events[-1], DoneEvent)
    largest_chunk = max(config.batch_size, mnist.train.EVAL_BATCH, len(PANEL_INDICES))
    assert sizes and max(sizes) <= largest_chunk < config.train_limit
    assert mnist_data.train_images.dtype == torch.uint8 and mnist_data.train_images.data_ptr() == before


@pytest.mark.slow
def test_evaluating_in_chunks_equals_one_batch(mnist_data, monkeypatch):
    if not (BUNDLED_DIR / WEIGHTS_FILE).is_file():
        pytest.skip("no bundled model")
    model = load_checkpoint(BUNDLED_DIR).model
    images, labels = mnist_data.test_images[:4000], mnist_data.test_labels[:4000]
    chunked = evaluate(model, images, labels)
    monkeypatch.setattr(mnist.train, "EVAL_BATCH", len(images))
    whole = evaluate(model, images, labels)
    assert mnist.train.EVAL_BATCH != 250 and len(images) > 250  # the two really differ in chunking
    assert chunked.accuracy == whole.accuracy
    assert torch.equal(chunked.predictions, whole.predictions)
    assert torch.equal(chunked.confusion, whole.confusion)
    assert chunked.loss == pytest.approx(whole.loss, rel=1e-5)
    assert torch.allclose(chunked.confidences, whole.confidences, atol=1e-5)


def test_mean_images_are_exact_on_the_training_set(mnist_data):
    images, labels = mnist_data.train_images, mnist_data.train_labels
    means = mean_images(images, labels)
    digit = 3
    exact = images[labels == digit].double().mean(0) / 255.0
    assert means.dtype == np.float32
    np.testing.assert_allclose(means[digit], exact.numpy(), rtol=0, atol=1e-7)


TRAINING_GROWTH_SCRIPT = """
import json, sys, threading
from bench import memory
from mnist.config import PRESETS
from mnist.data import load_mnist
from mnist.train import StepEvent, train
data = load_mnist(sys.argv[1], download=False)
before = memory.memory_now()["peak_mb"]
stop = threading.Event()
for event in train(PRESETS["fast"], data, stop):
    if isinstance(event, StepEvent) and event.step >= int(sys.argv[2]):
        stop.set()
print(json.dumps({"before": before, "after": memory.memory_now()["peak_mb"]}))
"""


@pytest.mark.slow
def test_training_the_fast_preset_grows_a_fresh_process_little(mnist_dir):
    """A memory regression test: peak RSS (VmHWM) from the data set loaded to a few steps + evaluation."""
    assert PRESETS["fast"].train_limit in (0, None)  # all 60,000 images: the case that was OOM-killed
    done = subprocess.run(
        [sys.executable, "-c", TRAINING_GROWTH_SCRIPT, str(mnist_dir), str(STEPS_MEASURED)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    peaks = json.loads(done.stdout.strip().splitlines()[-1])
    assert peaks["after"] - peaks["before"] < MAX_TRAINING_GROWTH_MB, peaks


# --- bench/memory.py ---------------------------------------------------------------------------


def test_read_cgroup_reads_a_v1_memory_group(tmp_path):
    (tmp_path / "memory.limit_in_bytes").write_text(f"{memory.CGROUP_LIMIT_BYTES}\n")
    (tmp_path / "memory.max_usage_in_bytes").write_text(f"{700 * memory.MIB}\n")
    (tmp_path / "memory.failcnt").write_text("12\n")
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert memory.read_cgroup(tmp_path) == {"limit_mb": 1024.0, "max_usage_mb": 700.0, "failcnt": 12, "oom_kills": 1}


def test_memory_sampler_keeps_the_peaks_of_this_process():
    with memory.MemorySampler("self") as sampler:
        threading.Event().wait(3 * memory.RSS_SAMPLE_SECONDS)
    assert sampler.peak["VmRSS"] >= sampler.peak["RssAnon"] > 0


def test_the_cgroup_scenario_is_train_and_sketch_under_one_gib():
    scenario = memory.SCENARIOS["cgroup_1gib"]
    assert scenario.cgroup and scenario.sessions == 1 and scenario.trainers == 1
    assert scenario.train_images == 0  # the fast preset itself: all images
    assert memory.CGROUP_LIMIT_BYTES == 1024**3
    args = memory.load_args(scenario, "http://127.0.0.1:1", 1)
    assert args[args.index("--train-images") + 1] == "0" and args[args.index("--trainers") + 1] == "1"
