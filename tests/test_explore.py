"""mnist.stats and studio.views: data-set statistics, paging, image helpers, mistake filtering and progress text."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mnist.config import TrainConfig
from mnist.preprocess import preprocess_canvas
from mnist.records import Provenance, RunMetrics, RunRecord
from mnist.stats import class_counts, indices_of, mean_images
from mnist.train import EpochEvent, History, StepEvent
from studio.views import (
    MISTAKE_ORDERS,
    digit_canvas,
    filter_mistakes,
    format_duration,
    paginate,
    prediction_text,
    run_row,
    saliency_overlay,
    training_progress,
    upscale,
)


def test_class_counts_and_mean_images():
    labels = torch.tensor([0, 1, 1, 3])
    images = torch.zeros(4, 28, 28, dtype=torch.uint8)
    images[1, 0, 0] = 255
    images[2, 0, 0] = 51  # mean of the two "1" images at (0, 0): (1.0 + 0.2) / 2
    assert class_counts(labels) == [1, 2, 0, 1, 0, 0, 0, 0, 0, 0]
    means = mean_images(images, labels)
    assert means.shape == (10, 28, 28)
    assert means[1, 0, 0] == pytest.approx(0.6)
    assert means[2].sum() == 0  # no image of 2: zeros, not NaN
    assert np.isfinite(means).all()


def test_indices_of_and_paginate():
    labels = torch.tensor([5, 3, 5, 5])
    assert indices_of(labels, 5).tolist() == [0, 2, 3]
    assert indices_of(labels).tolist() == [0, 1, 2, 3]
    page = paginate(130, 3, 60)
    assert (page.number, page.count, page.start, page.stop) == (3, 3, 120, 130)
    assert paginate(130, 99, 60).number == 3  # clamped
    assert paginate(0, 1, 60).count == 1
    assert page.caption("images") == "Images 121–130 of 130 (page 3 of 3)"
    assert paginate(0, 1, 60).caption("mistakes") == "No mistakes."


def test_upscale_and_digit_canvas_round_trip(mnist_data):
    image = mnist_data.test_images[0]
    big = upscale(image, 3)
    assert big.shape == (84, 84) and big.dtype == np.uint8
    assert (big[::3, ::3] == image.numpy()).all()
    canvas = digit_canvas(image)
    assert canvas.shape == (280, 280, 4) and (canvas[..., 3] == 255).all()
    pixels = preprocess_canvas(canvas).pixels  # what the model sees of the drawn digit
    assert pixels is not None
    # Same digit, re-centred: it overlaps the original well.
    original = image.numpy() / 255.0
    overlap = (pixels * original).sum() / np.sqrt((pixels**2).sum() * (original**2).sum())
    assert overlap > 0.7


def test_saliency_overlay_is_an_rgb_image():
    pixels = np.zeros((28, 28), np.float32)
    saliency = np.zeros((28, 28), np.float32)
    saliency[10, 10] = 1.0
    out = saliency_overlay(pixels, saliency, factor=4)
    assert out.shape == (112, 112, 3) and out.dtype == np.uint8
    assert out[40:44, 40:44, 0].min() > 200  # the peak glows red-yellow
    assert out[0, 0].max() == 0


MISTAKES = [
    {"index": 1, "label": 4, "predicted": 9, "confidence": 0.9},
    {"index": 2, "label": 4, "predicted": 9, "confidence": 0.5},
    {"index": 3, "label": 7, "predicted": 1, "confidence": 0.7},
]


def test_filter_mistakes():
    assert [m["index"] for m in filter_mistakes(MISTAKES)] == [1, 3, 2]
    assert [m["index"] for m in filter_mistakes(MISTAKES, order=MISTAKE_ORDERS[1])] == [2, 3, 1]
    assert [m["index"] for m in filter_mistakes(MISTAKES, true=4)] == [1, 2]
    assert [m["index"] for m in filter_mistakes(MISTAKES, predicted=1)] == [3]
    assert filter_mistakes(MISTAKES, true=4, predicted=1) == []
    with pytest.raises(ValueError):
        filter_mistakes(MISTAKES, order="random")


def test_prediction_text():
    probs = [0.0] * 10
    probs[7], probs[1] = 0.983, 0.017
    assert prediction_text(7, 0.983, probs, 0.6) == "Prediction: 7 (98.3%)"
    probs = [0.0] * 10
    probs[4], probs[9], probs[1] = 0.41, 0.39, 0.2
    assert prediction_text(4, 0.41, probs, 0.6) == "Prediction: 4 (41.0%) — not sure, maybe 9"


def test_progress_and_durations():
    assert format_duration(5.4) == "5 s"
    assert format_duration(185) == "3 min 05 s"
    assert format_duration(3720) == "1 h 02 min"
    assert format_duration(None) == "–"
    step = StepEvent(epoch=1, step=10, total_steps=40, loss=1.0, lr=0.01, images_per_sec=1234.5, elapsed=1.0, eta=65.0)
    epoch = EpochEvent(
        epoch=1, epochs=2, train_loss=1, train_accuracy=0.5, test_loss=1, test_accuracy=0.6, elapsed=1.0, eta=1.0
    )
    progress = training_progress([step], 2)
    assert progress.fraction == 0.25
    assert progress.text == "Epoch 1/2 · step 10/40 · 1,234 images/s · ETA 1 min 05 s"
    assert training_progress([], 3).fraction == 0
    history = History.of_events([step, epoch])
    assert history.steps == [step] and history.epochs == [epoch]
    assert History.from_dict(history.to_dict()) == history  # the saved layout reads back the same


def test_run_row():
    config = TrainConfig(arch="mlp", optimizer="sgd", lr=0.1, batch_size=64, train_limit=5000, epochs=3)
    metrics = RunMetrics(test_accuracy=0.97654, train_seconds=75, epochs_done=3)
    record = RunRecord("r1", config, metrics, 1234, Provenance(created="2026-01-02T03:04:05+00:00"))
    row = run_row("r1", record, "you")
    assert row["test accuracy %"] == 97.65
    assert row["train time"] == "1 min 15 s"
    assert row["train images"] == "5,000"
    assert row["created"] == "2026-01-02 03:04:05"
    no_metrics = RunRecord("r2", config, RunMetrics(), 1234, Provenance())
    assert run_row("r2", no_metrics, "the operator")["test accuracy %"] is None  # a run with no metrics still has a row
