"""TrainConfig: the single source of hyperparameter defaults, validated before any work."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from .constants import MNIST_TRAIN_IMAGES
from .device import PRECISION_LABELS
from .errors import ConfigError
from .models import ARCHS  # models imports nothing from here: no cycle

OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta", "rmsprop")
SCHEDULER_LABELS = {
    "none": "none (constant)",
    "step": "step decay",
    "cosine": "cosine annealing",
    "onecycle": "one-cycle",
}
SCHEDULERS = tuple(SCHEDULER_LABELS)
DEVICES = ("auto", "cpu", "cuda", "mps")
MAX_EPOCHS = 200
MAX_EMA_DECAY = 0.9999  # an average over ~10,000 steps: longer than most runs
MAX_BATCH_SIZE = MNIST_TRAIN_IMAGES  # one batch can be the whole training set
KINDS = {"int": "int", "float": "float", "bool": "bool", "str": "choice"}  # annotation (a string here) -> kind


@dataclass(frozen=True)
class FieldSpec:
    """One TrainConfig field, described once: validation, the CLI's flags and the Train form come from it."""

    label: str  # the form's label
    help: str  # what the field does, a phrase starting with a capital: the CLI's help and the form's tooltip
    low: float | None = None  # numbers: the allowed range, low to high, both included unless low_open
    high: float | None = None
    low_open: bool = False  # low itself is refused (a learning rate of 0 learns nothing)
    unit: str = ""  # of an int's range, for messages and help: "images", "epochs"
    choices: Mapping[str, str] | None = None  # str fields: each allowed value and its display label
    only_with: tuple[str, tuple[str, ...]] | None = None  # (field, values): the field matters only then
    toggle: bool = False  # a bool the form shows as a switch rather than a checkbox
    in_form: bool = True  # False: a CLI flag only
    name: str = ""  # filled in from the dataclass field
    kind: str = ""  # "int", "float", "bool" or "choice": filled in from the field's type

    def applies(self, values: Mapping[str, object]) -> bool:
        """Whether the field matters with these other values (momentum only for SGD and RMSprop, ...)."""
        if self.only_with is None:
            return True
        other, allowed = self.only_with
        return values.get(other) in allowed


def described(default, **spec) -> object:
    """A dataclass field with its FieldSpec in the metadata."""
    return field(default=default, metadata={"spec": FieldSpec(**spec)})


def label_plainly(values) -> dict[str, str]:
    return {v: v for v in values}


@dataclass(frozen=True)
class TrainConfig:
    # Defaults are the "fast" preset: 99% on a 2-core CPU in one epoch, about 8 s of training
    # (bench/train_speed.py --seeds 5); Adam's betas (0.7, 0.9) and label smoothing 0.1 from one-epoch trials.
    arch: str = described(
        "cnn-bn-lite", label="Architecture", help="Network architecture", choices=label_plainly(ARCHS)
    )
    epochs: int = described(1, label="Epochs", help="Passes over the training images", low=1, high=MAX_EPOCHS)
    batch_size: int = described(
        256, label="Batch size", help="Images per step", low=1, high=MAX_BATCH_SIZE, unit="images"
    )
    optimizer: str = described(
        "adam", label="Optimizer", help="Optimisation algorithm", choices=label_plainly(OPTIMIZERS)
    )
    beta1: float = described(
        0.7,
        label="Adam beta1",
        help="Adam's decay of its gradient average (momentum); lower adapts faster in a short run",
        low=0.0,
        high=0.9999,
        only_with=("optimizer", ("adam", "adamw")),
    )
    beta2: float = described(
        0.9,
        label="Adam beta2",
        help="Adam's decay of its squared-gradient average",
        low=0.0,
        high=0.99999,
        only_with=("optimizer", ("adam", "adamw")),
    )
    lr: float = described(
        0.02,
        label="Learning rate",
        help="Learning rate; the peak rate with the one-cycle scheduler",
        low=0.0,
        high=10.0,
        low_open=True,
    )
    momentum: float = described(
        0.9,
        label="Momentum",
        help="Momentum factor",
        low=0.0,
        high=0.999,
        only_with=("optimizer", ("sgd", "rmsprop")),
    )
    nesterov: bool = described(
        True, label="Nesterov momentum", help="Use the Nesterov variant of momentum", only_with=("optimizer", ("sgd",))
    )
    weight_decay: float = described(0.0, label="Weight decay", help="Penalty on large weights (L2)", low=0.0, high=1.0)
    scheduler: str = described(
        "onecycle", label="LR schedule", help="How the learning rate changes over the run", choices=SCHEDULER_LABELS
    )
    step_size: int = described(
        1,
        label="Step size (epochs)",
        help="Epochs between two decays of the learning rate",
        low=1,
        high=MAX_EPOCHS,
        unit="epochs",
        only_with=("scheduler", ("step",)),
    )
    gamma: float = described(
        0.7,
        label="Gamma (decay factor)",
        help="Factor the learning rate is multiplied by at each decay",
        low=0.0,
        high=1.0,
        low_open=True,
        only_with=("scheduler", ("step",)),
    )
    label_smoothing: float = described(
        0.1,
        label="Label smoothing",
        help="Probability mass moved from the true class to the others",
        low=0.0,
        high=0.5,
    )
    ema: float = described(
        0.0,
        label="Weight averaging (EMA decay)",
        help="Keep an exponential moving average of the weights, which the run evaluates and saves "
        "(0 = off; 0.999 averages about the last 1,000 steps)",
        low=0.0,
        high=MAX_EMA_DECAY,
    )
    augment: bool = described(
        False,
        label="Augment (random rotation, scale and shift)",
        help="Randomly rotate, scale and shift the training images",
        toggle=True,
    )
    seed: int = described(
        0, label="Seed", help="Seeds the initial weights, the shuffling and the augmentation", low=0, high=2**31 - 1
    )
    device: str = described(
        "auto",
        label="Device",
        help="Where to train; auto picks cuda, then mps, then cpu",
        choices=label_plainly(DEVICES),
    )
    precision: str = described(
        "auto",
        label="Precision",
        help="Number format of training's convolutions: mixed is float16 on a GPU and bfloat16 on a CPU "
        "(float32 weights either way); auto picks mixed where it is faster (a GPU, or a CPU with AMX "
        "matrix units, where a training step measured 0.25-0.7x the float32 time), float32 elsewhere",
        choices=PRECISION_LABELS,
    )
    train_limit: int = described(
        0,
        label="Training images (0 = all)",
        help=f"Train on the first N images only (0 = all {MNIST_TRAIN_IMAGES:,}); a few thousand make a run of seconds",
        low=0,
        high=MNIST_TRAIN_IMAGES,
        unit="images",
    )
    log_every: int = described(
        10,
        label="Log every",
        help="Steps between two progress reports; each one costs a host sync on a GPU",
        low=1,
        high=10_000,
        unit="steps",
        in_form=False,
    )

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
        return cls(**{**ADDED_FIELDS, **values})

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)


# Fields newer than some saved runs, with the value such a run trained with (Adam's own betas, no EMA,
# float32 on the CPU): a run saved before a field existed must not be described with today's default for it.
ADDED_FIELDS = {"beta1": 0.9, "beta2": 0.999, "ema": 0.0, "precision": "float32"}


def collect_specs() -> dict[str, FieldSpec]:
    """Every TrainConfig field's spec, in field order, with its name and kind filled in."""
    specs = {}
    for f in fields(TrainConfig):
        spec = f.metadata["spec"]
        kind = KINDS[f.type]
        if (kind == "choice") != (spec.choices is not None):
            raise TypeError(f"TrainConfig.{f.name}: a str field needs choices, and only a str field has them")
        specs[f.name] = dataclasses.replace(spec, name=f.name, kind=kind)
    return specs


FIELD_SPECS = collect_specs()


def range_text(spec: FieldSpec) -> str:
    """The allowed range in words: "between 1 and 200 epochs", "in (0, 10]"."""
    if spec.kind == "int":
        return f"between {spec.low:,} and {spec.high:,} {spec.unit}".rstrip()
    return f"in {'(' if spec.low_open else '['}{spec.low:g}, {spec.high:g}]"


def check_int(spec: FieldSpec, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{spec.name} must be a whole number, got {value!r}")
    if not spec.low <= value <= spec.high:
        raise ConfigError(f"{spec.name} must be {range_text(spec)}, got {value:,}")


def check_float(spec: FieldSpec, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{spec.name} must be a finite number, got {value!r}")
    too_low = value <= spec.low if spec.low_open else value < spec.low
    if too_low or value > spec.high:
        raise ConfigError(f"{spec.name} must be {range_text(spec)}, got {value}")


def check_bool(spec: FieldSpec, value) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{spec.name} must be true or false, got {value!r}")


def check_choice(spec: FieldSpec, value) -> None:
    allowed = tuple(spec.choices)  # a tuple: `in` on a dict fails on an unhashable value such as a list
    if value not in allowed:
        raise ConfigError(f"{spec.name} must be one of {', '.join(allowed)}; got {value!r}")


CHECKS = {"int": check_int, "float": check_float, "bool": check_bool, "choice": check_choice}


def validate_config(config: TrainConfig) -> None:
    """Raise ConfigError naming the first invalid field; called by TrainConfig itself."""
    for name, spec in FIELD_SPECS.items():
        CHECKS[spec.kind](spec, getattr(config, name))
    if config.optimizer == "sgd" and config.nesterov and config.momentum == 0:
        raise ConfigError("SGD with Nesterov momentum needs momentum > 0: raise momentum or turn nesterov off")


# Recipes offered by the Train page and `--preset`; measured in bench/ (see README).
PRESETS: dict[str, TrainConfig] = {
    "fast": TrainConfig(),
    "best": TrainConfig(
        arch="cnn-bn-wide",
        epochs=12,
        batch_size=128,
        lr=5e-3,
        beta1=0.9,
        beta2=0.999,
        augment=True,
        label_smoothing=0.05,
        ema=0.999,
    ),
    # The tutorials' recipe (the benchmark's reference): LeNet with dropout, Adam at 1e-3, batch 100.
    "tutorial": TrainConfig(
        arch="lenet-dropout",
        epochs=10,
        batch_size=100,
        lr=1e-3,
        beta1=0.9,
        beta2=0.999,
        scheduler="none",
        label_smoothing=0.0,
    ),
}
PRESET_DESCRIPTIONS = {
    "fast": "Small CNN shaped for CPUs, 1 epoch, one-cycle Adam: 99% in about 8 s on a 2-core CPU.",
    "best": "Wide five-layer batch-norm CNN, 12 epochs, augmentation and weight averaging: 99.7%. About 8 min "
    "on a 2-core CPU with AMX (bfloat16), about 25 min on other 2-core CPUs.",
    "tutorial": "The classic PyTorch tutorial: LeNet with dropout, Adam 1e-3, 10 epochs.",
}


def preset_config(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
