"""studio.charts and studio.explore_charts: the figures hold the data they are given."""

from __future__ import annotations

import numpy as np
import pytest

from mnist.train import EpochEvent, History, StepEvent
from studio import charts, explore_charts

STEPS = [
    StepEvent(epoch=1, step=s, total_steps=30, loss=2.0 / s, lr=0.01 * s / 30, images_per_sec=1.0, elapsed=s, eta=0)
    for s in (10, 20, 30)
]
EPOCHS = [
    EpochEvent(
        epoch=1, epochs=2, train_loss=0.5, test_loss=0.3, train_accuracy=0.9, test_accuracy=0.95, elapsed=1, eta=1
    ),
    EpochEvent(
        epoch=2, epochs=2, train_loss=0.2, test_loss=0.1, train_accuracy=0.97, test_accuracy=0.98, elapsed=2, eta=0
    ),
]


def test_ema_is_debiased():
    assert charts.ema([4.0, 4.0, 4.0]) == pytest.approx([4.0, 4.0, 4.0])  # no drag towards zero
    assert charts.ema([1.0, 3.0], 0.0) == [1.0, 3.0]
    smoothed = charts.ema([1.0, 0.0, 0.0, 0.0], 0.5)
    assert smoothed[0] == 1.0 and all(a > b for a, b in zip(smoothed, smoothed[1:], strict=False))
    with pytest.raises(ValueError):
        charts.ema([1.0], 1.0)


def test_training_figures():
    fig = charts.step_loss_figure(STEPS, 0.5)
    assert list(fig.data[0].x) == [10, 20, 30]
    assert list(fig.data[1].y) == pytest.approx(charts.ema([s.loss for s in STEPS], 0.5))
    assert fig.layout.yaxis.type == "log"
    fig = charts.epoch_figure(EPOCHS)
    accuracy = {t.name: list(t.y) for t in fig.data if "accuracy" in t.name}
    assert accuracy["test accuracy"] == pytest.approx([95.0, 98.0])
    assert list(charts.lr_figure(STEPS).data[0].y) == pytest.approx([s.lr for s in STEPS])
    for empty in (charts.step_loss_figure([]), charts.epoch_figure([]), charts.lr_figure([])):
        assert not empty.data and empty.layout.annotations  # a message instead of an empty plot


def test_compare_figure_overlays_each_run():
    fig = charts.compare_figure({"a": History(STEPS, EPOCHS), "b": History(STEPS, [])})
    names = [t.name for t in fig.data]
    assert names == ["a", "a", "b"]
    assert fig.data[0].line.color == fig.data[1].line.color != fig.data[2].line.color


def test_confusion_figure_cells_are_clickable_points():
    confusion = np.arange(100).reshape(10, 10)
    fig = charts.confusion_figure(confusion, selected=(4, 9))
    correct, errors, cells = fig.data
    assert np.isnan(np.array(errors.z, dtype=float)).diagonal().all()  # the diagonal has its own trace
    assert np.array(correct.z, dtype=float)[3, 3] == 33
    # Every cell has a point: x = predicted, y = true, carrying its count.
    i = list(cells.y).index(4) + 9
    assert (cells.x[i], cells.y[i], cells.customdata[i]) == (9, 4, 49)
    assert len(cells.x) == 100
    shape = fig.layout.shapes[0]
    assert (shape.x0, shape.x1, shape.y0, shape.y1) == (8.5, 9.5, 3.5, 4.5)


def test_probabilities_figure():
    probs = [0.0] * 10
    probs[3] = 1.0
    fig = charts.probabilities_figure(probs, 0.6)
    assert fig.data[0].marker.color[3] == charts.ACCENT and fig.data[0].y[3] == 100
    line = fig.layout.shapes[0]  # the threshold, across the whole plot
    assert (line.xref, line.x0, line.x1, line.y0, line.y1) == ("x domain", 0, 1, 60, 60)
    assert not charts.probabilities_figure(probs).layout.shapes


def test_confusion_chart_cells_carry_their_digits_and_the_filter():
    confusion = np.arange(100).reshape(10, 10)
    rows = explore_charts.confusion_rows(confusion, (4, 9))
    cell = next(r for r in rows if (r["true digit"], r["predicted digit"]) == (4, 9))
    assert cell["images"] == 49 and cell["mistakes"] == 49 and cell["chosen"]
    assert sum(r["chosen"] for r in rows) == 1
    diagonal = next(r for r in rows if (r["true digit"], r["predicted digit"]) == (3, 3))
    assert diagonal["right"] and diagonal["mistakes"] == 0 and diagonal["images"] == 33
    assert sum(r["chosen"] for r in explore_charts.confusion_rows(confusion, (4, None))) == 10  # the row of 4
    assert not any(r["chosen"] for r in explore_charts.confusion_rows(confusion))
    assert next(r for r in rows if r["images"] == 0)["label"] == ""  # empty cells stay quiet

    spec = explore_charts.confusion_chart(confusion, (4, 9)).to_dict()
    (selection,) = spec["params"]
    assert selection["name"] == explore_charts.CELL_SELECTION
    assert selection["select"]["fields"] == ["true digit", "predicted digit"]
    assert spec["usermeta"]["embedOptions"]["renderer"] == "svg"  # cells are elements a test can find


def test_selected_cell_reads_a_selection_event():
    event = {"selection": {explore_charts.CELL_SELECTION: [{"true digit": 6, "predicted digit": 0}]}}
    assert explore_charts.selected_cell(event) == (6, 0)
    assert explore_charts.selected_cell({"selection": {explore_charts.CELL_SELECTION: []}}) is None  # cleared
    assert explore_charts.selected_cell(None) is None
    assert explore_charts.selected_cell({"selection": {explore_charts.CELL_SELECTION: [{"x": 1}]}}) is None


def test_distribution_and_accuracy_charts():
    spec = explore_charts.class_distribution_chart([10] * 10, [1] * 9 + [11]).to_dict()
    values = spec["data"]["values"]
    train = [v["share"] for v in values if v["split"].startswith("train")]
    test = {v["digit"]: v for v in values if v["split"].startswith("test")}
    assert sum(train) == pytest.approx(100) and test[9]["share"] == pytest.approx(55) and test[9]["images"] == 11
    spec = explore_charts.per_class_accuracy_chart([0.99] * 9 + [0.9]).to_dict()
    rows = spec["data"]["values"] if "data" in spec else spec["layer"][0]["data"]["values"]
    assert rows[9]["accuracy"] == pytest.approx(90) and rows[9]["weakest"]
    assert not any(r["weakest"] for r in rows[:9])
