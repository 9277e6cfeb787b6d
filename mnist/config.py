"""TrainConfig: the single source of hyperparameter defaults, validated before any work."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields

from .errors import ConfigError

OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta", "rmsprop")
SCHEDULERS = ("none", "step", "cosine", "onecycle")
DEVICES = ("auto", "cpu", "cuda", "mps")
MAX_EPOCHS = 200
MAX_BATCH_SIZE = 60_000  # the whole training set


@dataclass(frozen=True)
class TrainConfig:
    # Defaults are the "fast" preset: 99% on a 2-core CPU in about 17 s of training (bench/train_speed.py).
    arch: str = "cnn-bn-fast"
    epochs: int = 2
    batch_size: int = 256
    optimizer: str = "adam"
    lr: float = 0.02
    momentum: float = 0.9  # SGD and RMSprop only
    nesterov: bool = True  # SGD only
    weight_decay: float = 0.0
    scheduler: str = "onecycle"
    step_size: int = 1  # epochs between decays, "step" scheduler only
    gamma: float = 0.7  # decay factor, "step" scheduler only
    label_smoothing: float = 0.0
    augment: bool = False
    seed: int = 0
    device: str = "auto"
    train_limit: int = 0  # use only the first N training images (0 = all); for quick trials
    log_every: int = 10  # steps between step events; each one costs a host sync on GPU

    def __post_init__(self) -> None:
        validate_config(self)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Build from a dict (a checkpoint's JSON, a form); unknown keys are an error."""
        if not isinstance(values, dict):
            raise ConfigError(f"config must be a JSON object, got {type(values).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(unknown)}")
        return cls(**values)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def _check_int(name: str, value, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")


def _check_float(name: str, value, low: float, high: float, *, low_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    too_low = value <= low if low_open else value < low
    if too_low or value > high:
        bracket = "(" if low_open else "["
        raise ConfigError(f"{name} must be in {bracket}{low}, {high}], got {value}")


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def validate_config(config: TrainConfig) -> None:
    """Raise ConfigError naming the first invalid field; called by TrainConfig itself."""
    from .models import ARCHS  # late import: models imports nothing from here

    _check_choice("arch", config.arch, tuple(ARCHS))
    _check_int("epochs", config.epochs, 1, MAX_EPOCHS)
    _check_int("batch_size", config.batch_size, 1, MAX_BATCH_SIZE)
    _check_choice("optimizer", config.optimizer, OPTIMIZERS)
    _check_float("lr", config.lr, 0.0, 10.0, low_open=True)
    _check_float("momentum", config.momentum, 0.0, 0.999)
    if not isinstance(config.nesterov, bool):
        raise ConfigError(f"nesterov must be true or false, got {config.nesterov!r}")
    if config.optimizer == "sgd" and config.nesterov and config.momentum == 0:
        raise ConfigError("SGD with Nesterov momentum needs momentum > 0: raise momentum or turn nesterov off")
    _check_float("weight_decay", config.weight_decay, 0.0, 1.0)
    _check_choice("scheduler", config.scheduler, SCHEDULERS)
    _check_int("step_size", config.step_size, 1, MAX_EPOCHS)
    _check_float("gamma", config.gamma, 0.0, 1.0, low_open=True)
    _check_float("label_smoothing", config.label_smoothing, 0.0, 0.5)
    if not isinstance(config.augment, bool):
        raise ConfigError(f"augment must be true or false, got {config.augment!r}")
    _check_int("seed", config.seed, 0, 2**31 - 1)
    _check_choice("device", config.device, DEVICES)
    _check_int("train_limit", config.train_limit, 0, MAX_BATCH_SIZE)
    _check_int("log_every", config.log_every, 1, 10_000)


# Recipes offered by the Train page and `--preset`; measured in bench/ (see README).
PRESETS: dict[str, TrainConfig] = {
    "fast": TrainConfig(),
    "best": TrainConfig(arch="cnn-bn", epochs=15, batch_size=128, lr=5e-3, augment=True, label_smoothing=0.05),
    # The tutorials' recipe (the benchmark's reference): LeNet with dropout, Adam at 1e-3, batch 100.
    "tutorial": TrainConfig(arch="lenet-dropout", epochs=10, batch_size=100, lr=1e-3, scheduler="none"),
}
PRESET_DESCRIPTIONS = {
    "fast": "Small batch-norm CNN, 2 epochs, one-cycle Adam: 99% in about 17 s on a 2-core CPU.",
    "best": "Five-layer batch-norm CNN, 15 epochs with augmentation: 99.6%+, minutes on a CPU.",
    "tutorial": "The classic PyTorch tutorial: LeNet with dropout, Adam 1e-3, 10 epochs.",
}


def preset_config(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
