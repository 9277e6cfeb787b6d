import json
import shutil

import pytest
import torch
from safetensors.torch import save as save_safetensors

from mnist.checkpoint import META_FILE, WEIGHTS_FILE, load_checkpoint, load_uploaded, save_run
from mnist.config import TrainConfig
from mnist.data import normalize
from mnist.errors import CheckpointError
from mnist.models import build_model
from mnist.records import RunMetrics
from mnist.runs import delete_run, list_runs, load_history
from mnist.train import run_training


@pytest.fixture(scope="module")
def trained(mnist_data):
    return run_training(TrainConfig(arch="cnn-bn-fast", train_limit=2048, batch_size=64), mnist_data)


def logits(model, mnist_data):
    with torch.inference_mode():
        return model.eval()(normalize(mnist_data.test_images[:500]))


def test_round_trip_gives_identical_predictions(trained, mnist_data, runs_dir):
    run_dir = save_run(trained.model, trained.config, trained.metrics(), trained.history, runs_dir)
    assert sorted(p.name for p in run_dir.iterdir()) == ["history.json", "insight.safetensors", META_FILE, WEIGHTS_FILE]
    loaded = load_checkpoint(run_dir)
    assert torch.equal(logits(loaded.model, mnist_data), logits(trained.model, mnist_data))
    assert loaded.config == trained.config
    meta = json.loads((run_dir / META_FILE).read_text())
    assert meta["normalization"] == {"mean": 0.1307, "std": 0.3081}
    assert meta["metrics"]["test_accuracy"] == trained.test_accuracy
    assert {"torch", "mnist_studio", "python"} <= set(meta["versions"])
    assert load_history(run_dir) == trained.history


def test_lone_safetensors_file_is_self_describing(trained, mnist_data, tmp_path, runs_dir):
    run_dir = save_run(trained.model, trained.config, trained.metrics(), runs_dir=runs_dir)
    lone = tmp_path / "exported.safetensors"
    shutil.copy(run_dir / WEIGHTS_FILE, lone)
    assert torch.equal(logits(load_checkpoint(lone).model, mnist_data), logits(trained.model, mnist_data))
    uploaded = load_uploaded(lone.read_bytes(), name="exported.safetensors")
    assert uploaded.arch == "cnn-bn-fast"


def test_weights_that_do_not_fit_the_architecture_are_refused(trained, runs_dir):
    run_dir = save_run(trained.model, trained.config, trained.metrics(), runs_dir=runs_dir)
    meta = json.loads((run_dir / META_FILE).read_text())
    meta["arch"] = meta["config"]["arch"] = "lenet-dropout"
    # Bare weights (no embedded description): the .json names the architecture, and it does not fit.
    bare = save_safetensors({k: v.contiguous() for k, v in trained.model.state_dict().items()})
    with pytest.raises(CheckpointError, match="do not fit architecture 'lenet-dropout'"):
        load_uploaded(bare, json.dumps(meta).encode())
    # Weights with their own description: that wins, and the .json of another architecture is refused.
    with pytest.raises(CheckpointError, match="the .json says arch 'lenet-dropout' but the weights were saved as"):
        load_uploaded((run_dir / WEIGHTS_FILE).read_bytes(), json.dumps(meta).encode())


def test_list_and_delete_runs(trained, runs_dir):
    first = save_run(trained.model, trained.config, trained.metrics(), runs_dir=runs_dir, name="first")
    save_run(
        build_model("mlp"), TrainConfig(arch="mlp"), RunMetrics(test_accuracy=0.1), runs_dir=runs_dir, name="second"
    )
    assert {r.name for r in list_runs(runs_dir)} == {"first", "second"}
    with pytest.raises(CheckpointError, match="already exists"):
        save_run(trained.model, trained.config, RunMetrics(), runs_dir=runs_dir, name="first")
    delete_run(runs_dir, "first")
    assert not first.exists()
    assert [r.name for r in list_runs(runs_dir)] == ["second"]
    assert not any(p.name.startswith(".") for p in runs_dir.iterdir())  # no temp leftovers
