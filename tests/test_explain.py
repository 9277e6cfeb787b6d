"""studio.explain: the plain-words paragraphs say the numbers they are given, and change with them."""

from __future__ import annotations

import numpy as np
import pytest

from mnist.config import FIELD_SPECS
from mnist.verdict import CONFIDENT
from studio import explain
from studio.form import FORM_FIELDS


def test_the_strongest_channel_is_named_with_its_value_and_place():
    maps = np.zeros((8, 12, 12), np.float32)
    maps[5, 1, 1] = 0.83  # top left
    maps[2, 10, 10] = 0.5
    assert explain.strongest_channel(maps) == (5, pytest.approx(0.83), "top left")
    text = explain.conv_layer_text("0", 8, 3, ("Conv2d", "BatchNorm2d", "ReLU"), (5, 0.83, "top left"), first=True)
    assert "8 channels: 8 different detectors, each a 3×3 filter" in text
    assert "Channel 5 fires most (0.83), in the top left" in text
    assert "ReLU turns every negative value into 0" in text


@pytest.mark.parametrize(
    ("row", "column", "words"),
    [(0, 0, "top left"), (6, 6, "middle"), (11, 6, "bottom centre"), (6, 11, "middle right")],
)
def test_places_are_thirds_of_the_image(row, column, words):
    assert explain.place_words(row, column, 12, 12) == words


def test_deeper_layers_are_described_after_the_first():
    layers = [("0", 32, 3, ("Conv2d", "ReLU"), (1, 0.5, "middle")), ("4", 64, 3, ("Conv2d",), (2, 0.4, "top left"))]
    text = explain.feature_maps_text(layers)
    assert text.startswith("Layer 0 has 32 channels")
    assert "64 channels in layer 4" in text
    assert explain.feature_maps_text([]) == ""


def test_probabilities_text_says_which_side_of_the_line_the_top_digit_is():
    sure = explain.probabilities_text(7, 0.93)
    unsure = explain.probabilities_text(1, 0.38)
    assert f"{CONFIDENT:.0%}" in sure and "7 at 93%" in sure and "reads your drawing as a 7" in sure
    assert "1 at 38%" in unsure and "not sure" in unsure


def test_label_smoothing_is_explained_only_for_a_model_trained_with_it():
    assert explain.label_smoothing_text(0.0, 0.38) == ""
    text = explain.label_smoothing_text(0.1, 0.38)
    assert "label smoothing 0.1" in text and "10%" in text and "38%" in text and "not sure" in text
    sure = explain.label_smoothing_text(0.05, 0.95)  # above the 60% line: the page is sure, and says so
    assert "95%, not 100%" in sure and "not sure" not in sure


def test_an_ensemble_below_its_best_member_says_why():
    text = explain.ensemble_text([0.9834, 0.9923], 0.9888)
    assert "98.34% + 99.23% → 98.88%" in text
    assert "below its best model (99.23%)" in text and "outvote" in text
    better = explain.ensemble_text([0.99, 0.991], 0.993)
    assert "below" not in better


def test_the_curves_text_tells_overfitting_from_a_good_fit():
    over = explain.curves_text([2.3, 0.1, 0.01], 0.999, 0.97, 20)
    fit = explain.curves_text([2.3, 0.05], 0.985, 0.99, 1)
    assert "from 2.30 to 0.01" in over and "overfitting" in over and "20 epochs" in over
    assert "overfitting" not in fit and "1 epoch:" in fit
    assert explain.curves_text([], None, None, 0) == ""


def test_the_confusion_text_names_the_most_common_mistake():
    confusion = np.diag([100] * 10)
    confusion[4, 9] = 12
    confusion[3, 5] = 2
    text = explain.confusion_text(confusion, 3)
    assert "1,000 of 1,014" in text and "a 4 read as a 9 (12 times)" in text
    assert "most common mistake" not in explain.confusion_text(np.diag([5] * 10), 1)


def test_the_panel_text_offers_the_slider_only_when_there_is_one():
    assert "Move the epoch slider" in explain.panel_text(14, 16, 3, 5)
    assert "Move the epoch slider" not in explain.panel_text(14, 16, 1, 1)
    assert "14 read right after epoch 3" in explain.panel_text(14, 16, 3, 5)


def test_the_fool_and_map_texts_follow_the_result():
    assert "read a 3," in explain.fool_text(3, 0.12, 1.5, True)
    assert "no change made the model read a 3" in explain.fool_text(3, 0.2, 2.0, False)
    assert "sits with the 7s" in explain.digit_map_text(7, 0.9)
    assert "not sure" in explain.digit_map_text(7, 0.4)
    assert "5 of them are 7s" in explain.neighbours_text([7, 7, 7, 1, 7, 7, 2, 9], 7)


def test_every_field_in_the_train_form_has_its_own_text():
    for name in FORM_FIELDS:
        if FIELD_SPECS[name].only_with is None and name not in ("device", "precision"):
            assert explain.field_text(name), name
    assert explain.field_text("no-such-field") == ""
