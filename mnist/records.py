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
from .errors import CheckpointError, ConfigError, MnistError

FORMAT = "mnist-studio-checkpoint"
FORMAT_VERSION = 1
MAX_OWNER_CHARS = 64


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

    @classmethod
    def from_dict(cls, values: dict, source: str) -> RunMetrics:
        if not isinstance(values, dict):
            raise CheckpointError(f"{source}: 'metrics' must be a dict, got {type(values).__name__}")
        stopped = values.get("stopped", False)
        if not isinstance(stopped, bool):
            raise CheckpointError(f"{source}: metrics.stopped must be true or false, got {stopped!r}")
        return cls(
            test_accuracy=_finite_or_none(values, "test_accuracy", source),
            test_loss=_finite_or_none(values, "test_loss", source),
            train_seconds=_finite_or_none(values, "train_seconds", source),
            steps_done=_count(values, "steps_done", source),
            epochs_done=_count(values, "epochs_done", source),
            stopped=stopped,
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


@dataclass(frozen=True)
class RunRecord:
    """A run's description: the meta.json of a run folder, also embedded in its model.safetensors."""

    name: str
    config: TrainConfig
    metrics: RunMetrics
    parameters: int
    provenance: Provenance

    @property
    def arch(self) -> str:
        return self.config.arch

    @property
    def created(self) -> str:
        return self.provenance.created

    def to_dict(self) -> dict:
        """The JSON layout (format version 1)."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "arch": self.arch,
            "config": self.config.to_dict(),
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
        for key in ("arch", "config"):
            if key not in meta:
                raise CheckpointError(f"{source}: the description has no {key!r}")
        kinds = (("arch", str), ("config", dict), ("metrics", dict), ("created", str), ("name", str))
        kinds += (("versions", dict), ("normalization", dict), ("owner", str))
        for key, kind in kinds:
            if key in meta and not isinstance(meta[key], kind):
                raise CheckpointError(f"{source}: {key!r} must be a {kind.__name__}, got {type(meta[key]).__name__}")
        try:
            config = TrainConfig.from_dict(meta["config"])
        except (ConfigError, TypeError) as exc:
            raise CheckpointError(f"{source}: {exc}") from None
        if config.arch != meta["arch"]:
            raise CheckpointError(f"{source}: arch {meta['arch']!r} disagrees with its config ({config.arch!r})")
        parameters = meta.get("parameters", 0)
        if isinstance(parameters, bool) or not isinstance(parameters, int) or parameters < 0:
            raise CheckpointError(f"{source}: 'parameters' must be a whole number >= 0, got {parameters!r}")
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
        return cls(
            name=meta.get("name", ""),
            config=config,
            metrics=RunMetrics.from_dict(meta.get("metrics", {}), source),
            parameters=parameters,
            provenance=provenance,
        )


# --- which model ------------------------------------------------------------------------------

ModelKind = Literal["bundled", "run", "upload"]
MODEL_KINDS: tuple[ModelKind, ...] = ("bundled", "run", "upload")
KEY_SEPARATOR = ":"


@dataclass(frozen=True)
class ModelRef:
    """Which model: the bundled one, a saved run (by name) or an upload (by a digest of its bytes).

    `key` is its one string form, for select boxes and session state; `ModelRef.parse` reads it back.
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

    @classmethod
    def parse(cls, key: str) -> ModelRef:
        kind, _, name = str(key).partition(KEY_SEPARATOR)
        if kind not in MODEL_KINDS or (kind == "bundled") != (name == ""):
            raise MnistError(f"{key!r} does not name a model: expected 'bundled', 'run:NAME' or 'upload:DIGEST'")
        return cls(kind, name)
