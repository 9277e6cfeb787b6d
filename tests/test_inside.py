"""See inside the model: activations, filters, digit map, neighbours, the attack and per-epoch insight."""

from __future__ import annotations

import fnmatch
import json
import threading
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mnist.attack import fool
from mnist.checkpoint import BUNDLED_DIR, build_record, encode_weights, load_checkpoint, load_uploaded, save_run
from mnist.config import TrainConfig
from mnist.data import normalize
from mnist.digit_map import (
    DIGIT_MAP_FILE,
    compute_digit_map,
    digit_map_key,
    load_digit_map,
    load_or_compute_digit_map,
    save_digit_map,
)
from mnist.ensemble import first_member
from mnist.inside import ComputationStopped, extract_features, extract_filters, inspect_drawing
from mnist.insight import INSIGHT_FILE, PANEL_INDICES, compute_epoch_insight, load_insight
from mnist.layout import exact_knn
from mnist.models import ARCHS, build_model, summarize_model
from mnist.neighbours import build_neighbour_index, load_neighbour_index, save_neighbour_index
from mnist.predict import predict_tensor
from mnist.records import RunMetrics
from mnist.runs import rename_run
from mnist.train import EpochEvent, History, train

REPO = Path(__file__).resolve().parent.parent
SMALL_MAP = 600  # test images in the maps these tests compute (the bundled one has all 10,000)
SMALL_INDEX = 2000  # training images in the neighbour index these tests build


@pytest.fixture(scope="module")
def bundled():
    """The bundled model's network: an ensemble's first member, the one Inside the model shows."""
    return first_member(load_checkpoint().model)


def uploaded(arch: str) -> nn.Module:
    """A fresh model of `arch` as the app gets an upload: checkpoint bytes, validated and rebuilt."""
    model = build_model(arch)
    record = build_record(model, TrainConfig(arch=arch), RunMetrics(), "upload")
    return load_uploaded(encode_weights(model, record)).model


@pytest.mark.parametrize("arch", list(ARCHS))
def test_activation_and_filter_shapes_for_every_architecture(arch):
    model = uploaded(arch)
    rows = summarize_model(model)
    inspection = inspect_drawing(model, torch.rand(28, 28))
    conv_shapes = [r.output_shape for r in rows if r.kind == "Conv2d"]
    linear_units = [r.output_shape for r in rows if r.kind == "Linear"][:-1]  # the last one gives the logits
    assert [a.shape for a in inspection.activations if a.kind == "conv"] == conv_shapes
    assert [a.shape for a in inspection.activations if a.kind == "linear"] == linear_units
    assert all(a.values.shape == a.shape and a.values.dtype == np.float32 for a in inspection.activations)
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    assert inspection.features.shape == (last.in_features,)
    assert inspection.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear))
    filters = extract_filters(model)
    if isinstance(first, nn.Conv2d):
        assert filters.kind == "conv" and filters.weights.shape == tuple(first.weight.shape)
    else:
        assert filters.kind == "linear" and filters.weights.shape == (first.out_features, 28, 28)
        assert np.array_equal(filters.weights[0].flatten(), first.weight[0].detach().numpy())


def test_activations_are_the_layers_outputs_after_batch_norm_and_relu(bundled):
    image = torch.rand(28, 28)
    x = normalize(image[None])
    inspection = inspect_drawing(bundled, image)
    first = inspection.activations[0]
    assert first.stages == ("Conv2d", "BatchNorm2d", "ReLU")
    with torch.inference_mode():
        expected = bundled[:3](x)[0].numpy()  # conv, batch norm, ReLU of the Sequential
        features = bundled[:-1](x)[0].numpy()  # everything but the last linear layer
    np.testing.assert_allclose(first.values, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(inspection.features, features, rtol=1e-5, atol=1e-6)


def test_capture_keeps_each_threads_own_forward_passes(bundled):
    images = [torch.rand(28, 28) for _ in range(4)]
    alone = [inspect_drawing(bundled, im) for im in images]
    results: dict[int, object] = {}

    def work(i: int) -> None:
        for _ in range(20):  # many overlapping passes through the same hooks-bearing model
            results[i] = inspect_drawing(bundled, images[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, expected in enumerate(alone):
        np.testing.assert_allclose(results[i].features, expected.features, rtol=1e-5, atol=1e-6)
        assert [a.shape for a in results[i].activations] == [a.shape for a in expected.activations]
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in bundled.modules())  # all removed


@pytest.mark.slow
def test_neighbours_are_the_nearest_by_brute_force(bundled, mnist_data, tmp_path):
    index = build_neighbour_index(bundled, mnist_data, limit=SMALL_INDEX)
    queries = extract_features(bundled, mnist_data.test_images[:25])
    stored = index.features.numpy().astype(np.float64)
    for q in queries:
        found = index.nearest(q, k=8)
        brute = np.sqrt(((stored - q.astype(np.float64)) ** 2).sum(1))
        order = np.argsort(brute, kind="stable")[:8]
        assert [n.index for n in found] == order.tolist()
        np.testing.assert_allclose([n.distance for n in found], brute[order], rtol=1e-5)
        assert [n.label for n in found] == mnist_data.train_labels[order].tolist()
    # Against the model's own float32 features: the same distances up to the stored float16 precision.
    found = index.nearest(queries[0])
    fresh = extract_features(bundled, mnist_data.train_images[[n.index for n in found]])
    direct = np.linalg.norm(fresh - queries[0], axis=1)
    np.testing.assert_allclose([n.distance for n in found], direct, rtol=2e-3, atol=2e-3)
    path = tmp_path / "train_features.safetensors"
    save_neighbour_index(index, path)
    again = load_neighbour_index(path, index.key)
    assert again is not None and torch.equal(again.features, index.features)
    assert again.nearest(queries[3]) == index.nearest(queries[3])
    for held in (index, again):  # column-major, built or read back: the one-query product's fast layout
        assert held.features.stride() == (1, len(held))


@pytest.mark.parametrize(("norm", "budget"), [("linf", 0.3), ("l2", 3.0)])
def test_attack_is_classified_as_the_target_within_its_budget(bundled, mnist_data, norm, budget):
    image = mnist_data.test_images[0].numpy()  # a 7
    assert int(mnist_data.test_labels[0]) == 7
    result = fool(bundled, image, target=3, budget=budget, norm=norm)
    assert result.success and result.prediction == 3
    again = predict_tensor(bundled, normalize(torch.from_numpy(result.adversarial)[None]))[0]
    assert int(again.argmax()) == 3  # classified as the target by an ordinary prediction, not just the attack's
    size = np.abs(result.perturbation).max() if norm == "linf" else np.linalg.norm(result.perturbation)
    assert size <= budget + 1e-5
    assert result.linf == pytest.approx(np.abs(result.perturbation).max())
    assert result.l2 == pytest.approx(float(np.linalg.norm(result.perturbation)), rel=1e-5)
    assert result.adversarial.min() >= 0 and result.adversarial.max() <= 1
    np.testing.assert_allclose(result.original + result.perturbation, result.adversarial, atol=1e-6)
    assert 0 < result.steps < 100
    assert all(p.grad is None for p in bundled.parameters())  # gradients went to the image only


def test_attack_with_a_too_small_budget_reports_failure_and_its_best_attempt(bundled, mnist_data):
    image = mnist_data.test_images[0].numpy()
    result = fool(bundled, image, target=3, budget=0.01, norm="linf", steps=30)
    assert not result.success and result.prediction == 7
    assert result.steps == 30
    assert result.linf <= 0.01 + 1e-6
    assert result.probabilities[3] > result.original_probabilities[3]  # the best attempt moved towards 3


def test_digit_map_round_trips_through_disk_and_a_changed_model_invalidates_it(bundled, mnist_data, tmp_path):
    digit_map = compute_digit_map(bundled, mnist_data, limit=SMALL_MAP, epochs=50)
    path = tmp_path / DIGIT_MAP_FILE
    save_digit_map(digit_map, path)
    loaded = load_digit_map(path, digit_map_key(bundled, mnist_data, SMALL_MAP))
    assert loaded is not None and len(loaded) == SMALL_MAP and loaded.method == "neighbour-graph"
    for name in ("coords", "labels", "predictions", "confidences", "reference"):
        assert np.array_equal(getattr(loaded, name), getattr(digit_map, name)), name
    features = extract_features(bundled, mnist_data.test_images[:5])
    np.testing.assert_allclose(loaded.place(features), digit_map.coords[:5], atol=0.05)  # a test image lands on itself
    changed = first_member(load_checkpoint().model)
    with torch.no_grad():
        changed[0].weight[0, 0, 0, 0] += 0.01
    assert load_digit_map(path, digit_map_key(changed, mnist_data, SMALL_MAP)) is None
    assert load_digit_map(path, digit_map_key(bundled, mnist_data, SMALL_MAP - 1)) is None  # other test images


def test_a_damaged_digit_map_is_recomputed(bundled, mnist_data, tmp_path):
    path = tmp_path / DIGIT_MAP_FILE
    path.write_bytes(b"\x00" * 100)
    options = {"limit": 200, "epochs": 20}
    recomputed = load_or_compute_digit_map(bundled, mnist_data, tmp_path, **options)
    assert len(recomputed) == 200
    assert load_digit_map(path, recomputed.key) is not None  # the damaged file was replaced
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated mid-tensor
    assert load_digit_map(path) is None


@pytest.mark.slow
def test_digit_map_keeps_digits_apart_better_than_pca(bundled, mnist_data):
    graph = compute_digit_map(bundled, mnist_data, limit=1000, epochs=100)
    pca = compute_digit_map(bundled, mnist_data, limit=1000, method="pca")

    def agreement(digit_map) -> float:
        """Fraction of each point's 10 nearest map neighbours with the same true digit."""
        indices, _ = exact_knn(torch.from_numpy(digit_map.coords), 10)
        return float((digit_map.labels[indices.numpy()] == digit_map.labels[:, None]).mean())

    assert agreement(graph) >= 0.95
    assert agreement(graph) > agreement(pca)
    features = extract_features(bundled, mnist_data.test_images[:3])
    np.testing.assert_allclose(pca.place(features), pca.coords[:3], rtol=1e-3, atol=1e-3)  # its own transform


def test_digit_map_computation_stops_when_asked(bundled, mnist_data):
    stop = threading.Event()
    stop.set()
    with pytest.raises(ComputationStopped):
        compute_digit_map(bundled, mnist_data, limit=SMALL_MAP, stop=stop)


def test_bundled_digit_map_loads_with_10000_points_and_ships_in_the_package(bundled, mnist_data):
    path = BUNDLED_DIR / DIGIT_MAP_FILE
    assert path.stat().st_size < 1024 * 1024
    digit_map = load_digit_map(path, digit_map_key(bundled, mnist_data))
    assert digit_map is not None, "stale bundled map: run python -m mnist digit-map"
    assert len(digit_map) == 10_000
    assert np.array_equal(digit_map.labels, mnist_data.test_labels.numpy())
    with torch.inference_mode():
        predictions = bundled(normalize(mnist_data.test_images[:500])).argmax(1).numpy()
    assert np.array_equal(digit_map.predictions[:500], predictions)
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    relative = str(path.relative_to(REPO / "mnist"))
    assert any(fnmatch.fnmatch(relative, pattern) for pattern in package_data["mnist"])


@pytest.mark.slow
def test_insight_is_saved_with_the_run_and_loads_back(mnist_data, runs_dir):
    config = TrainConfig(arch="cnn-bn-fast", train_limit=512, batch_size=128, epochs=2, log_every=4)
    events = list(train(config, mnist_data))
    epochs = [e for e in events if isinstance(e, EpochEvent)]
    insights = [e.insight for e in epochs]
    assert [i.epoch for i in insights] == [1, 2]
    assert all(i.confusion.sum() == len(mnist_data.test_labels) for i in insights)
    assert list(insights[0].panel_indices) == list(PANEL_INDICES)
    assert list(insights[0].panel_labels) == mnist_data.test_labels[list(PANEL_INDICES)].tolist()
    assert insights[0].filters.weights.shape == (16, 1, 3, 3)
    assert not np.array_equal(insights[0].filters.weights, insights[1].filters.weights)  # it learned in between
    done = events[-1]
    np.testing.assert_allclose(insights[-1].filters.weights, extract_filters(done.model).weights)
    run_dir = save_run(done.model, config, done.metrics(), done.history, runs_dir, "with-insight")
    assert "insight" not in (run_dir / "history.json").read_text()
    assert History.from_dict(json.loads((run_dir / "history.json").read_text())) == done.history
    loaded = load_insight(run_dir)
    assert [i.epoch for i in loaded] == [1, 2]
    for saved, original in zip(loaded, insights, strict=True):
        assert np.array_equal(saved.confusion, original.confusion)
        np.testing.assert_allclose(saved.filters.weights, original.filters.weights, rtol=1e-3, atol=1e-4)  # float16
        np.testing.assert_allclose(saved.panel_probabilities, original.panel_probabilities)
        assert np.array_equal(saved.panel_predictions, original.panel_predictions)
    renamed = rename_run(runs_dir, "with-insight", "renamed")
    assert [i.epoch for i in load_insight(renamed)] == [1, 2]
    (renamed / INSIGHT_FILE).write_bytes(b"not safetensors")
    assert load_insight(renamed) == []


def test_linear_model_insight_keeps_its_first_units_as_images(mnist_data):
    model = build_model("mlp")
    x = normalize(mnist_data.test_images[:3])
    confusion = torch.zeros(10, 10, dtype=torch.long)
    insight = compute_epoch_insight(model, 1, confusion, x, [0, 1, 2], mnist_data.test_labels[:3])
    assert insight.filters.kind == "linear" and insight.filters.weights.shape == (64, 28, 28)
    assert insight.filters.total_units == 256 and model.training  # its training mode is left as it was
    assert insight.panel_probabilities.shape == (3, 10)


@pytest.mark.slow
def test_cli_digit_map_writes_a_map_for_the_checkpoint(mnist_dir, mnist_data, runs_dir, capsys):
    from mnist.__main__ import main

    model = build_model("cnn-bn-fast").eval()
    run_dir = save_run(model, TrainConfig(arch="cnn-bn-fast"), RunMetrics(), None, runs_dir, "fresh")
    assert main(["digit-map", str(run_dir), "--data-dir", str(mnist_dir), "--method", "pca", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["points"] == 10_000 and summary["out"] == str(run_dir / DIGIT_MAP_FILE)
    found = load_digit_map(run_dir / DIGIT_MAP_FILE)
    assert found is not None and found.method == "pca"
    assert found.key == digit_map_key(load_checkpoint(run_dir).model, mnist_data)
