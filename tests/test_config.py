import math
import re
from dataclasses import fields

import pytest

from mnist.config import FIELD_SPECS, PRESETS, FieldSpec, TrainConfig, preset_config, range_text
from mnist.constants import MNIST_TRAIN_IMAGES
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


# --- the field specs: one description drives validation, the CLI and the form ------------------

NUMERIC = [name for name, spec in FIELD_SPECS.items() if spec.kind in ("int", "float")]
TYPES = {"int": int, "float": float, "bool": bool, "choice": str}


def outside(spec: FieldSpec) -> list:
    """The values just beyond each end of the spec's range."""
    if spec.kind == "int":
        return [spec.low - 1, spec.high + 1]
    below = spec.low if spec.low_open else math.nextafter(spec.low, -math.inf)
    return [below, math.nextafter(spec.high, math.inf)]


def inside_ends(spec: FieldSpec) -> list:
    """The range's two ends, or the nearest allowed value to an open one."""
    low = math.nextafter(spec.low, math.inf) if spec.low_open else spec.low
    return [low, spec.high]


@pytest.mark.parametrize("f", fields(TrainConfig), ids=lambda f: f.name)
def test_every_field_has_a_complete_spec(f):
    spec = f.metadata["spec"]
    assert isinstance(spec, FieldSpec) and FIELD_SPECS[f.name].name == f.name
    spec = FIELD_SPECS[f.name]
    assert spec.label and spec.help
    assert type(f.default) is TYPES[spec.kind]
    if spec.kind in ("int", "float"):
        assert spec.low < spec.high
    if spec.only_with is not None:
        other, values = spec.only_with
        assert set(values) <= set(FIELD_SPECS[other].choices)


@pytest.mark.parametrize("name", NUMERIC)
def test_validation_follows_each_numeric_spec(name):
    spec = FIELD_SPECS[name]
    for value in outside(spec):
        with pytest.raises(ConfigError, match=rf"^{name} must be {re.escape(range_text(spec))}, got"):
            TrainConfig(**{name: value})
    for value in inside_ends(spec):
        assert getattr(TrainConfig.from_dict({name: value}), name) == value


@pytest.mark.parametrize("name", [n for n, s in FIELD_SPECS.items() if s.kind == "choice"])
def test_validation_accepts_exactly_each_fields_choices(name):
    choices = FIELD_SPECS[name].choices
    for value in choices:
        assert getattr(TrainConfig(**{name: value}), name) == value
    with pytest.raises(ConfigError, match=rf"^{name} must be one of {', '.join(choices)}; got 'x'"):
        TrainConfig(**{name: "x"})


def test_range_messages_name_the_unit():
    with pytest.raises(ConfigError, match=r"^train_limit must be between 0 and 60,000 images, got 60,001$"):
        TrainConfig(train_limit=MNIST_TRAIN_IMAGES + 1)


def test_a_config_saved_before_the_adam_betas_and_ema_reads_as_it_trained():
    old = {k: v for k, v in TrainConfig().to_dict().items() if k not in ("beta1", "beta2", "ema")}
    config = TrainConfig.from_dict(old)
    assert (config.beta1, config.beta2, config.ema) == (0.9, 0.999, 0.0)  # torch's Adam defaults, no averaging
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()  # a complete dict keeps its values
