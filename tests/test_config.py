import math

import pytest

from mnist.config import PRESETS, TrainConfig, preset_config
from mnist.errors import ConfigError


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": -1}, "batch_size"),
        ({"lr": math.nan}, "lr"),
        ({"lr": -0.1}, "lr"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"scheduler": "warmup"}, "scheduler"),
        ({"arch": "vgg"}, "arch"),
        ({"device": "tpu"}, "device"),
        ({"optimizer": "sgd", "momentum": 0.0, "nesterov": True}, "Nesterov"),
    ],
)
def test_invalid_values_raise_before_any_work(changes, words):
    with pytest.raises(ConfigError, match=words):
        TrainConfig(**changes)


def test_round_trip_through_dict_and_unknown_keys():
    config = TrainConfig(arch="mlp", epochs=4, augment=True)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown config field"):
        TrainConfig.from_dict({**config.to_dict(), "dropout": 0.5})


def test_presets_are_valid_and_named():
    assert set(PRESETS) == {"fast", "best", "tutorial"}
    assert preset_config("tutorial").arch == "lenet-dropout"
    assert preset_config("tutorial").batch_size == 100
    with pytest.raises(ConfigError, match="preset"):
        preset_config("turbo")
