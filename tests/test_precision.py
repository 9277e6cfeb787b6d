"""Training's number format: which dtype each precision resolves to, and a mixed run on the CPU."""

import pytest
import torch

from mnist import device as device_module
from mnist.checkpoint import load_checkpoint, save_run
from mnist.config import TrainConfig
from mnist.device import resolve_precision
from mnist.errors import CheckpointError, ConfigError
from mnist.records import RunMetrics
from mnist.train import run_training

CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda"), torch.device("mps")


@pytest.mark.parametrize("amx", [True, False])
def test_auto_is_bfloat16_on_a_cpu_only_with_matrix_units(monkeypatch, amx):
    monkeypatch.setattr(device_module, "has_matrix_units", lambda: amx)
    assert resolve_precision("auto", CPU) == (torch.bfloat16 if amx else torch.float32)
    assert resolve_precision("mixed", CPU) == torch.bfloat16  # asked for: whatever the CPU
    assert resolve_precision("float32", CPU) == torch.float32


def test_gpus_train_in_float16_when_mixed_and_mps_in_float32():
    assert resolve_precision("auto", CUDA) == resolve_precision("mixed", CUDA) == torch.float16
    assert resolve_precision("float32", CUDA) == torch.float32
    assert {resolve_precision(name, MPS) for name in ("auto", "mixed", "float32")} == {torch.float32}


def test_an_unknown_precision_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="auto, mixed, float32"):
        TrainConfig(precision="int8")
    with pytest.raises(ConfigError, match="precision"):
        resolve_precision("half", CPU)


def test_a_run_saved_before_the_field_existed_trained_in_float32():
    old = TrainConfig().to_dict()
    del old["precision"]
    assert TrainConfig.from_dict(old).precision == "float32"


def tiny_run(mnist_data, precision):
    config = TrainConfig(train_limit=2048, batch_size=64, epochs=1, precision=precision, seed=5)
    return run_training(config, mnist_data)


@pytest.mark.slow
def test_a_mixed_run_computes_in_bfloat16_keeps_float32_weights_and_learns(mnist_data, tmp_path):
    mixed, plain = tiny_run(mnist_data, "mixed"), tiny_run(mnist_data, "float32")
    assert (mixed.precision, plain.precision) == ("bfloat16", "float32")
    assert mixed.test_accuracy > 0.85 and plain.test_accuracy > 0.85  # 2,048 images: well above chance
    assert all(p.dtype == torch.float32 for p in mixed.model.parameters())
    differs = [not torch.equal(a, b) for a, b in zip(mixed.model.parameters(), plain.model.parameters(), strict=True)]
    assert any(differs)  # the autocast really changed the arithmetic
    path = save_run(mixed.model, mixed.config, mixed.metrics(), runs_dir=tmp_path, name="mixed")
    assert load_checkpoint(path).record.metrics.precision == "bfloat16"


def test_a_recorded_precision_must_be_a_training_dtype():
    assert RunMetrics.from_dict({"precision": "float16"}, "meta.json").precision == "float16"
    assert RunMetrics.from_dict({}, "meta.json").precision is None  # runs saved before it was recorded
    for bad in ("int8", 16, ["float32"]):
        with pytest.raises(CheckpointError, match="metrics.precision"):
            RunMetrics.from_dict({"precision": bad}, "meta.json")
