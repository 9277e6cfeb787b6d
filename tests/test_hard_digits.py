"""mnist.hard_digits on small synthetic predictions, and Explore's "Hard for every model" tab with two saved runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import PAGES, open_app

from mnist.checkpoint import load_checkpoint, save_run
from mnist.config import TrainConfig
from mnist.errors import MnistError
from mnist.hard_digits import HardDigit, rank_hard_digits
from mnist.models import build_model
from mnist.records import RunMetrics
from mnist.train import evaluate

LABELS = torch.tensor([0, 1, 2, 3, 4])
PREDICTIONS = [
    torch.tensor([0, 7, 2, 5, 9]),  # misses 1, 3, 4
    torch.tensor([0, 7, 2, 8, 4]),  # misses 1, 3
    torch.tensor([0, 1, 2, 8, 4]),  # misses 3
]
EXPLORE = PAGES["explore"]
HARD_TAB = ":material/groups: Hard for every model"  # pages/explore.py TABS[2]
TIMEOUT = 240  # seconds per script run: each run is evaluated on the 10,000 test images


def test_images_are_ranked_by_how_many_models_miss_them():
    ranked = rank_hard_digits(PREDICTIONS, LABELS)
    assert [h.index for h in ranked] == [3, 1, 4]  # missed by 3, 2, 1; image 0 and 2 by none
    assert ranked[0] == HardDigit(index=3, label=3, missed_by=3, models=3, common_answer=8)  # 8 twice, 5 once
    assert ranked[1].common_answer == 7 and ranked[1].text == "missed by 2 of 3 runs"
    assert [h.index for h in rank_hard_digits(PREDICTIONS, LABELS, min_missed=2)] == [3, 1]


def test_ties_keep_the_test_order_and_edge_cases():
    labels = torch.tensor([5, 5, 5, 5])
    predictions = [torch.tensor([5, 6, 5, 6]), torch.tensor([5, 6, 5, 6])]
    assert [h.index for h in rank_hard_digits(predictions, labels)] == [1, 3]
    assert rank_hard_digits([], labels) == []
    assert rank_hard_digits([labels.clone()], labels) == []  # a perfect model misses nothing
    assert rank_hard_digits([torch.tensor([4, 5, 5, 5])], labels)[0].text == "missed by 1 of 1 run"
    with pytest.raises(MnistError, match="model 2's predictions cover 3 images, not 4"):
        rank_hard_digits([labels, torch.tensor([5, 5, 5])], labels)


def save_untrained(runs_dir: Path, name: str, seed: int) -> Path:
    """A saved run of an untrained model: quick, and wrong on most test images."""
    torch.manual_seed(seed)
    model = build_model("mlp").eval()
    return save_run(model, TrainConfig(arch="mlp"), RunMetrics(test_accuracy=0.1), None, runs_dir, name)


@pytest.mark.slow
def test_the_tab_lists_an_image_both_saved_runs_miss(runs_dir, mnist_dir, mnist_data, monkeypatch):
    monkeypatch.setenv("MNIST_DATA_DIR", str(mnist_dir))
    folders = [save_untrained(runs_dir, f"hard-{seed}", seed) for seed in (1, 2)]
    results = [evaluate(load_checkpoint(f).model, mnist_data.test_images, mnist_data.test_labels) for f in folders]
    both = (results[0].predictions != results[0].labels) & (results[1].predictions != results[1].labels)
    first = int(both.nonzero()[0])  # most missed (by both) first, ties in test order

    at = open_app(timeout=TIMEOUT)
    at.switch_page(EXPLORE)
    at.session_state["explore_tab"] = HARD_TAB  # the tab a visitor opened
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    texts = [m.value for m in at.markdown]
    assert f"**{int(both.sum()):,} test images missed by both runs** (hard-2, hard-1)" in texts
    tiles = at.image[-1]
    label = int(mnist_data.test_labels[first])
    assert tiles.captions[0].startswith(f"#{first}: {label}→") and tiles.captions[0].endswith(" · 2 of 2")
    assert len(tiles.captions) == min(40, int(both.sum()))
