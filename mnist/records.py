"""Typed records: a saved run's description (meta.json) and a reference to "which model".

A run's JSON is parsed and validated once, into a RunRecord, where it enters the program (a run folder,
an upload, the bundled model). Everything after that reads attributes: no dict lookups, no type guards.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Literal

from .config import TrainConfig
from .device import TRAINING_DTYPES
from .ensemble import MAX_MEMBERS, MIN_MEMBERS
from .errors import CheckpointError, ConfigError

FORMAT = "mnist-studio-checkpoint"
FORMAT_VERSION = 1
MAX_OWNER_CHARS = 64
ENSEMBLE_ARCH = "ensemble"  # the arch of a run that is an ensemble of other runs (mnist.ensemble)


def _finite_or_none(values: dict, key: str, source: str) -> float | None:
    value = values.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CheckpointError(f"{source}: metrics.{key} must be a finite number, got {value!r}")
    return float(value)


def _count(values: dict, key: str, source: str) -> int:
    value = values.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CheckpointError(f"{source}: metrics.{key} must be a whole number >= 0, got {value!r}")
    return value


@dataclass(frozen=True)
class RunMetrics:
    """What a finished (or stopped) run measured. Unknown values are None (e.g. a run saved by hand)."""

    test_accuracy: float | None = None  # fraction in [0, 1]
    test_loss: float | None = None
    train_seconds: float | None = None  # training only: no data loading, no final evaluation
    steps_done: int = 0
    epochs_done: int = 0
    stopped: bool = False  # stopped by the user before its last epoch
    precision: str | None = None  # training's number format (float32, bfloat16, float16); None: not recorded

    @classmethod
    def from_dict(cls, values: dict, source: str) -> RunMetrics:
        if not isinstance(values, dict):
            raise CheckpointError(f"{source}: 'metrics' must be a dict, got {type(values).__name__}")
        stopped = values.get("stopped", False)
        if not isinstance(stopped, bool):
            raise CheckpointError(f"{source}: metrics.stopped must be true or false, got {stopped!r}")
        precision = values.get("precision")
        if precision is not None and precision not in TRAINING_DTYPES:
            raise CheckpointError(
                f"{source}: metrics.precision must be one of {', '.join(TRAINING_DTYPES)}, got {precision!r}"
            )
        return cls(
            test_accuracy=_finite_or_none(values, "test_accuracy", source),
            test_loss=_finite_or_none(values, "test_loss", source),
            train_seconds=_finite_or_none(values, "train_seconds", source),
            steps_done=_count(values, "steps_done", source),
            epochs_done=_count(values, "epochs_done", source),
            stopped=stopped,
            precision=precision,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    def accuracy_text(self, suffix: str = "") -> str:
        """'99.66%' (plus suffix), or 'accuracy unknown'."""
        if self.test_accuracy is None:
            return "accuracy unknown"
        return f"{self.test_accuracy * 100:.2f}%{suffix}"


@dataclass(frozen=True)
class Provenance:
    """Where a run came from: when it was made and with which versions."""

    created: str = ""  # ISO 8601, UTC; sorts by time as text
    versions: dict[str, str] = field(default_factory=dict)  # mnist_studio, torch, python
    normalization: dict[str, float] = field(default_factory=dict)  # mean and std the inputs were scaled with
    # Who made it: an app visitor's id (a one-way digest of their secret token, so a downloaded file
    # reveals nothing that lets anyone act as them); "" for runs made by the command line or by hand.
    owner: str = ""


def _parse_model(meta: dict, source: str) -> tuple[TrainConfig, RunMetrics, int]:
    """The arch, config, metrics and parameters of one trained model's description, checked."""
    for key in ("arch", "config"):
        if key not in meta:
            raise CheckpointError(f"{source}: the description has no {key!r}")
    for key, kind in (("arch", str), ("config", dict), ("metrics", dict)):
        if key in meta and not isinstance(meta[key], kind):
            raise CheckpointError(f"{source}: {key!r} must be a {kind.__name__}, got {type(meta[key]).__name__}")
    try:
        config = TrainConfig.from_dict(meta["config"])
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{source}: {exc}") from None
    if config.arch != meta["arch"]:
        raise CheckpointError(f"{source}: arch {meta['arch']!r} disagrees with its config ({config.arch!r})")
    return config, RunMetrics.from_dict(meta.get("metrics", {}), source), _parameters(meta, source)


def _parameters(meta: dict, source: str) -> int:
    parameters = meta.get("parameters", 0)
    if isinstance(parameters, bool) or not isinstance(parameters, int) or parameters < 0:
        raise CheckpointError(f"{source}: 'parameters' must be a whole number >= 0, got {parameters!r}")
    return parameters


@dataclass(frozen=True)
class MemberRecord:
    """One model of an ensemble: the run it was taken from (by name) and what that run was."""

    name: str
    config: TrainConfig
    metrics: RunMetrics
    parameters: int

    @property
    def arch(self) -> str:
        return self.config.arch

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "arch": self.arch,
            "config": self.config.to_dict(),
            "metrics": self.metrics.to_dict(),
            "parameters": self.parameters,
        }

    @classmethod
    def from_dict(cls, values, source: str) -> MemberRecord:
        if not isinstance(values, dict):
            raise CheckpointError(f"{source}: must be a dict, got {type(values).__name__}")
        name = values.get("name", "")
        if not isinstance(name, str):
            raise CheckpointError(f"{source}: 'name' must be a str, got {type(name).__name__}")
        config, metrics, parameters = _parse_model(values, source)
        return cls(name, config, metrics, parameters)


@dataclass(frozen=True)
class RunRecord:
    """A run's description: the meta.json of a run folder, also embedded in its model.safetensors.

    An ensemble (arch ENSEMBLE_ARCH) describes each of its members; its config is its first member's
    (the model Inside the model shows) and its parameters are the members' total.
    """

    name: str
    config: TrainConfig
    metrics: RunMetrics
    parameters: int
    provenance: Provenance
    members: tuple[MemberRecord, ...] = ()  # an ensemble's, in order; () for a single model

    @classmethod
    def ensemble(
        cls, name: str, members: tuple[MemberRecord, ...], metrics: RunMetrics, provenance: Provenance
    ) -> RunRecord:
        if not MIN_MEMBERS <= len(members) <= MAX_MEMBERS:
            raise CheckpointError(f"an ensemble needs {MIN_MEMBERS} to {MAX_MEMBERS} models, got {len(members)}")
        parameters = sum(m.parameters for m in members)
        return cls(name, members[0].config, metrics, parameters, provenance, tuple(members))

    @property
    def is_ensemble(self) -> bool:
        return bool(self.members)

    @property
    def arch(self) -> str:
        return ENSEMBLE_ARCH if self.is_ensemble else self.config.arch

    @property
    def model_text(self) -> str:
        """What the model is, for people: 'cnn-bn', or 'ensemble of 5 · cnn-bn' ('cnn-bn + mlp' when mixed)."""
        if not self.is_ensemble:
            return self.arch
        archs = " + ".join(dict.fromkeys(m.arch for m in self.members))  # each once, in member order
        return f"ensemble of {len(self.members)} · {archs}"

    @property
    def created(self) -> str:
        return self.provenance.created

    def to_dict(self) -> dict:
        """The JSON layout (format version 1); an ensemble has members instead of a config."""
        model = (
            {"members": [m.to_dict() for m in self.members]} if self.is_ensemble else {"config": self.config.to_dict()}
        )
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "arch": self.arch,
            **model,
            "metrics": self.metrics.to_dict(),
            "parameters": self.parameters,
            "normalization": dict(self.provenance.normalization),
            "versions": dict(self.provenance.versions),
            "created": self.provenance.created,
            **({"owner": self.provenance.owner} if self.provenance.owner else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def parse(cls, text: bytes | str, source: str) -> RunRecord:
        """Parse and validate a description; CheckpointError names the source and what is wrong."""
        try:
            meta = json.loads(text)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
            raise CheckpointError(f"{source}: not valid JSON ({exc})") from None
        return cls.from_dict(meta, source)

    @classmethod
    def from_dict(cls, meta, source: str) -> RunRecord:
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise CheckpointError(f"{source}: not an MNIST Studio checkpoint description (no format {FORMAT!r})")
        if meta.get("format_version") != FORMAT_VERSION:
            version = meta.get("format_version")
            raise CheckpointError(f"{source}: checkpoint format version {version!r} is not supported")
        kinds = (("created", str), ("name", str), ("versions", dict), ("normalization", dict), ("owner", str))
        for key, kind in kinds:
            if key in meta and not isinstance(meta[key], kind):
                raise CheckpointError(f"{source}: {key!r} must be a {kind.__name__}, got {type(meta[key]).__name__}")
        provenance = Provenance(
            created=meta.get("created", ""),
            versions={str(k): str(v) for k, v in meta.get("versions", {}).items()},
            normalization={
                str(k): float(v)
                for k, v in meta.get("normalization", {}).items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)
            },
            owner=meta.get("owner", "")[:MAX_OWNER_CHARS],
        )
        name = meta.get("name", "")
        if meta.get("arch") == ENSEMBLE_ARCH:
            metrics = RunMetrics.from_dict(meta.get("metrics", {}), source)
            record = cls.ensemble(name, _parse_members(meta, source), metrics, provenance)
            if "parameters" in meta and _parameters(meta, source) != record.parameters:
                raise CheckpointError(
                    f"{source}: 'parameters' says {meta['parameters']!r}, its members have {record.parameters:,} in all"
                )
            return record
        if "members" in meta:
            raise CheckpointError(f"{source}: has 'members' but its arch is {meta.get('arch')!r}, not an ensemble")
        config, metrics, parameters = _parse_model(meta, source)
        return cls(name=name, config=config, metrics=metrics, parameters=parameters, provenance=provenance)


def _parse_members(meta: dict, source: str) -> tuple[MemberRecord, ...]:
    members = meta.get("members")
    if not isinstance(members, list) or not MIN_MEMBERS <= len(members) <= MAX_MEMBERS:
        count = f"{len(members)} members" if isinstance(members, list) else f"'members' {type(members).__name__}"
        raise CheckpointError(f"{source}: an ensemble must list {MIN_MEMBERS} to {MAX_MEMBERS} members, got {count}")
    return tuple(MemberRecord.from_dict(m, f"{source}: member {k}") for k, m in enumerate(members))


# --- which model ------------------------------------------------------------------------------

ModelKind = Literal["bundled", "run", "upload"]
KEY_SEPARATOR = ":"


@dataclass(frozen=True)
class ModelRef:
    """Which model: the bundled one, a saved run (by name) or an upload (by a digest of its bytes).

    The app passes these objects themselves (session state, select boxes: frozen, so hashable and comparable);
    `key` is its one string form, for where a model must be named in text;
    """

    kind: ModelKind
    name: str = ""  # run name, or upload digest; empty for the bundled model

    @property
    def key(self) -> str:
        return self.kind if self.kind == "bundled" else f"{self.kind}{KEY_SEPARATOR}{self.name}"

    @classmethod
    def bundled(cls) -> ModelRef:
        return cls("bundled")

    @classmethod
    def run(cls, name: str) -> ModelRef:
        return cls("run", name)

    @classmethod
    def upload(cls, digest: str) -> ModelRef:
        return cls("upload", digest)
