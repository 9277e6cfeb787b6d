"""Checkpoints: safetensors weights + a JSON file, in run folders written atomically.

A run folder holds model.safetensors, meta.json and history.json, and insight.safetensors when the run
recorded per-epoch insight (mnist.insight). It is built under a hidden temporary name and renamed into
place, so a crash never leaves a half-written run visible. Files computed later from its model (the digit
map, the training features, the verdict calibration: mnist.store) may be added beside them.
Loading never unpickles: safetensors holds raw tensors only.
The runs folder itself (listing it, deleting and renaming a run): mnist.runs.

An ensemble (mnist.ensemble) is a run like any other: its model.safetensors holds every member's tensors,
named `members.<k>.<tensor>`, and its description (arch "ensemble") lists each member's name, arch, config,
metrics and parameters, so the folder or the lone file is all it needs. Its metrics are its own, measured
on the test set when it was made (save_ensemble).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import platform
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

from . import __version__
from .config import TrainConfig
from .constants import MNIST_MEAN, MNIST_STD, WEIGHT_STORAGES
from .data import MnistData
from .ensemble import Ensemble, build_ensemble, members_of
from .errors import CheckpointError
from .inside import digest_model
from .insight import INSIGHT_FILE, encode_insight
from .io import atomic_write_bytes, atomic_write_json
from .models import build_model, count_parameters, ready_for_inference
from .records import MemberRecord, Provenance, RunMetrics, RunRecord
from .train import History, evaluate

WEIGHTS_FILE = "model.safetensors"
META_FILE = "meta.json"
HISTORY_FILE = "history.json"
META_KEY = "mnist_studio"  # the JSON is also embedded in the safetensors header: one file is enough
RUNS_DIR_ENV = "MNIST_RUNS_DIR"
DEFAULT_RUNS_DIR = "runs"
MAX_CHECKPOINT_BYTES = 50 * 1024 * 1024  # the largest registered model is 2.4 MB
MAX_JSON_BYTES = 1024 * 1024
BUNDLED_DIR = Path(__file__).parent / "assets" / "default-model"
RUN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
PICKLE_PREFIXES = (b"\x80", b"PK\x03\x04")  # pickle protocol 2+, zip (torch.save)
STORAGE_DTYPES = {name: getattr(torch, name) for name in WEIGHT_STORAGES}  # a model computes in float32
log = logging.getLogger(__name__)
_save_listeners: list[Callable[[Path], None]] = []  # see add_save_listener


@dataclass
class Checkpoint:
    model: nn.Module  # in eval mode, on the CPU
    record: RunRecord
    path: Path

    @property
    def config(self) -> TrainConfig:
        return self.record.config

    @property
    def arch(self) -> str:
        return self.record.arch


def default_runs_dir() -> Path:
    return Path(os.environ.get(RUNS_DIR_ENV) or DEFAULT_RUNS_DIR)


def check_run_name(name: str) -> str:
    """A run name that cannot escape the runs folder: letters, digits, '.', '_', '-'."""
    if not isinstance(name, str) or not RUN_NAME_RE.fullmatch(name) or ".." in name:
        raise CheckpointError(
            f"invalid run name {name!r}: use up to 100 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    return name


def run_path(runs_dir: Path, name: str) -> Path:
    """The folder of run `name` inside runs_dir, refusing anything that resolves outside it."""
    runs_dir = Path(runs_dir).resolve()
    path = (runs_dir / check_run_name(name)).resolve()
    if path.parent != runs_dir:
        raise CheckpointError(f"run name {name!r} points outside the runs folder")
    return path


def free_run_path(runs_dir: Path, name: str) -> Path:
    """run_path, refusing a name that a run already has."""
    path = run_path(runs_dir, name)
    if path.exists():
        raise CheckpointError(f"a run named {name!r} already exists in {runs_dir}")
    return path


def new_run_name(arch: str) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{arch}-{secrets.token_hex(2)}"


def new_provenance(owner: str = "") -> Provenance:
    """Made now, with this program's versions and normalisation; owner: see Provenance.owner."""
    return Provenance(
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        versions={"mnist_studio": __version__, "torch": torch.__version__, "python": platform.python_version()},
        normalization={"mean": MNIST_MEAN, "std": MNIST_STD},
        owner=owner,
    )


def build_record(model: nn.Module, config: TrainConfig, metrics: RunMetrics, name: str, owner: str = "") -> RunRecord:
    return RunRecord(name, config, metrics, count_parameters(model), new_provenance(owner))


def encode_weights(model: nn.Module, record: RunRecord, storage: str = "float32") -> bytes:
    """The safetensors file of `model`, its float tensors stored as `storage` (a STORAGE_DTYPES name)."""
    dtype = STORAGE_DTYPES[storage]
    state = {k: as_stored(v.detach().cpu().contiguous(), dtype, k) for k, v in model.state_dict().items()}
    return save_safetensors_bytes(state, metadata={META_KEY: json.dumps(record.to_dict(), sort_keys=True)})


def as_stored(tensor: torch.Tensor, dtype: torch.dtype, key: str) -> torch.Tensor:
    """A float tensor in the storage dtype; refused if a value falls outside that dtype's range."""
    if not tensor.is_floating_point() or tensor.dtype == dtype:
        return tensor
    stored = tensor.to(dtype)
    if not torch.isfinite(stored).all() and torch.isfinite(tensor).all():
        raise CheckpointError(f"{key} holds values beyond the range of {dtype}: store the weights as float32")
    return stored


@torch.no_grad()
def round_to_storage(model: nn.Module, storage: str) -> nn.Module:
    """`model` with its float weights rounded in place to what a `storage` file keeps of them, so that
    what is measured before saving is what the saved file predicts."""
    dtype = STORAGE_DTYPES[storage]
    for key, tensor in model.state_dict().items():
        if tensor.is_floating_point() and tensor.dtype != dtype:
            tensor.copy_(as_stored(tensor, dtype, key))
    return model


def save_run(
    model: nn.Module,
    config: TrainConfig,
    metrics: RunMetrics,
    history: History | None = None,
    runs_dir: Path | str | None = None,
    name: str | None = None,
    owner: str = "",
) -> Path:
    """Write a complete run folder atomically and return its path. owner: see Provenance.owner."""
    name = name or new_run_name(config.arch)
    return write_run(model, build_record(model, config, metrics, name, owner), history, runs_dir)


def write_run(
    model: nn.Module, record: RunRecord, history: History | None, runs_dir: Path | str | None, storage: str = "float32"
) -> Path:
    """Write the run folder record.name (a single model or an ensemble) atomically and return its path."""
    runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    runs_dir.mkdir(parents=True, exist_ok=True)
    name = record.name
    final = free_run_path(runs_dir, name)
    tmp = Path(tempfile.mkdtemp(dir=runs_dir, prefix=f".{name}."))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it owner-only
        atomic_write_bytes(tmp / WEIGHTS_FILE, encode_weights(model, record, storage))
        atomic_write_json(tmp / META_FILE, record.to_dict())
        atomic_write_json(tmp / HISTORY_FILE, (history or History()).to_dict())
        insights = [e.insight for e in (history or History()).epochs if e.insight is not None]
        if insights:
            atomic_write_bytes(tmp / INSIGHT_FILE, encode_insight(insights))
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tell_save_listeners(final)
    return final


def add_save_listener(listener: Callable[[Path], None]) -> Callable[[], None]:
    """Call listener(run folder) after every run this process saves (save_run, save_ensemble): the app keeps
    its disk budget this way (mnist.disk), whoever saved. Returns a function that removes the listener."""
    _save_listeners.append(listener)
    return lambda: _save_listeners.remove(listener) if listener in _save_listeners else None


def tell_save_listeners(run_dir: Path) -> None:
    """The run is saved whatever a listener does: its failure is logged, never raised to the saver."""
    for listener in list(_save_listeners):
        try:
            listener(run_dir)
        except Exception:
            log.exception("after saving %s: %r failed", run_dir.name, listener)


def member_parts(checkpoint: Checkpoint) -> list[tuple[nn.Module, MemberRecord]]:
    """The models `checkpoint` adds to an ensemble, each with what the ensemble says about it: a single run
    is one member; an ensemble gives its members (an ensemble of ensembles is one flat ensemble)."""
    record = checkpoint.record
    if record.is_ensemble:
        return list(zip(members_of(checkpoint.model), record.members, strict=True))
    name = record.name or checkpoint.path.name
    return [(checkpoint.model, MemberRecord(name, record.config, record.metrics, count_parameters(checkpoint.model)))]


def refuse_repeated_members(parts: list[tuple[nn.Module, MemberRecord]]) -> None:
    """CheckpointError when the same weights come twice (a run given twice, or a run and an ensemble that
    holds it): the mean would count that model twice."""
    seen: dict[str, str] = {}
    for model, record in parts:
        digest = digest_model(model)
        if digest in seen:
            which = record.name if seen[digest] == record.name else f"{seen[digest]} and {record.name}"
            raise CheckpointError(
                f"the same model comes twice ({which}, alone or inside an ensemble): an ensemble counts each "
                "model once, so leave one of them out"
            )
        seen[digest] = record.name


def save_ensemble(
    members: list[Checkpoint],
    data: MnistData,
    runs_dir: Path | str | None = None,
    name: str | None = None,
    owner: str = "",
    storage: str = "float32",
) -> Path:
    """Make an ensemble of loaded runs, measure it on the test set and save it as a run; its folder.

    A run that is itself an ensemble adds its members; the same model twice is refused. The members' models
    are only read (an ensemble holds them, it never changes them), so checkpoints that other threads are
    using may be passed. storage: how the file keeps the weights (STORAGE_DTYPES); the test set measures
    the weights as stored.
    """
    parts = [part for checkpoint in members for part in member_parts(checkpoint)]
    refuse_repeated_members(parts)
    records = tuple(record for _, record in parts)
    model = Ensemble(model for model, _ in parts)
    if storage != "float32":
        model = round_to_storage(copy.deepcopy(model), storage)
    name = name or new_run_name(f"ensemble{len(parts)}")
    free_run_path(Path(runs_dir) if runs_dir is not None else default_runs_dir(), name)  # refused before evaluating
    result = evaluate(model, data.test_images, data.test_labels)
    metrics = RunMetrics(test_accuracy=result.accuracy, test_loss=result.loss)
    return write_run(model, RunRecord.ensemble(name, records, metrics, new_provenance(owner)), None, runs_dir, storage)


def model_from_bytes(
    weights: bytes, record: RunRecord | None, source: str, *, embedded_wins: bool = False
) -> tuple[nn.Module, RunRecord]:
    """Validate and load safetensors bytes; the record defaults to the JSON embedded in them.

    embedded_wins: the weights' embedded description is the truth even when a record is given, which
    must then agree with it field by field (uploads: a meta.json of another run must not relabel them).
    """
    if len(weights) > MAX_CHECKPOINT_BYTES:
        limit = MAX_CHECKPOINT_BYTES // 2**20
        size = f"{len(weights) / 1e6:.1f} MB is over the {limit} MB limit"
        raise CheckpointError(f"{source}: {size}", CheckpointError.TOO_LARGE, size)
    try:
        # Parsing safetensors never runs code, so it goes first: a valid file whose 8-byte header length
        # happens to start with 0x80 must not be mistaken for a pickle.
        state = load_safetensors_bytes(weights)
        embedded = _embedded_meta(weights)
    except (SafetensorError, ValueError, RuntimeError, OverflowError) as exc:
        if weights.startswith(PICKLE_PREFIXES):
            raise CheckpointError(
                f"{source}: this is a pickle or torch.save archive, which can run code when loaded and is never "
                "opened here; export the weights as safetensors from MNIST Studio",
                CheckpointError.PICKLE,
            ) from None
        raise CheckpointError(
            f"{source}: not a valid safetensors file ({exc})", CheckpointError.NOT_SAFETENSORS
        ) from None
    if embedded is not None and (record is None or embedded_wins):
        truth = _parse_record(embedded, source, CheckpointError.BAD_DESCRIPTION)
        if record is not None:
            _check_same_description(record, truth, source)
        record = truth
    elif record is None:
        raise CheckpointError(
            f"{source}: has no MNIST Studio description; upload its {META_FILE} too", CheckpointError.NO_DESCRIPTION
        )
    arch = record.model_text
    model = build_for(record)  # RunRecord.parse checked arch and config
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"{source}: weights do not fit architecture {arch!r} (missing: {', '.join(missing[:3]) or 'none'}; "
            f"unexpected: {', '.join(extra[:3]) or 'none'})",
            CheckpointError.WRONG_TENSORS,
            arch,
        )
    for key, tensor in expected.items():
        got = state[key]
        if tensor.dtype == torch.float32 and got.dtype in STORAGE_DTYPES.values():
            got = state[key] = got.float()  # stored narrower (STORAGE_DTYPES): computed in float32
        if got.shape != tensor.shape or got.dtype != tensor.dtype:
            raise CheckpointError(
                f"{source}: {key} is {tuple(got.shape)} {got.dtype}, architecture {arch!r} needs "
                f"{tuple(tensor.shape)} {tensor.dtype}",
                CheckpointError.WRONG_TENSORS,
                arch,
            )
        if got.is_floating_point() and not torch.isfinite(got).all():
            raise CheckpointError(f"{source}: {key} holds NaN or infinite values", CheckpointError.BAD_VALUES)
    check_member_sizes(model, record, source)
    model.load_state_dict(state, strict=True)
    return ready_for_inference(model), record


def build_for(record: RunRecord) -> nn.Module:
    """A freshly initialised model of the described architecture: one network, or an ensemble of them."""
    return build_ensemble(m.arch for m in record.members) if record.is_ensemble else build_model(record.arch)


def check_member_sizes(model: nn.Module, record: RunRecord, source: str) -> None:
    """An ensemble's description must give each member's true parameter count (it is shown to people)."""
    for k, (member, described) in enumerate(zip(getattr(model, "members", ()), record.members, strict=False)):
        actual = count_parameters(member)
        if described.parameters != actual:
            raise CheckpointError(
                f"{source}: member {k} ({described.arch}) is described with {described.parameters:,} parameters "
                f"but has {actual:,}",
                CheckpointError.BAD_DESCRIPTION,
            )


def _parse_record(text: bytes | str, source: str, kind: str) -> RunRecord:
    """RunRecord.parse, its CheckpointError tagged with kind (which description was bad)."""
    try:
        return RunRecord.parse(text, source)
    except CheckpointError as exc:
        raise CheckpointError(str(exc), kind) from None


def describe_differences(given: RunRecord, truth: RunRecord) -> list[tuple[str, object, object]]:
    """(field, given value, true value) for every field where two descriptions differ, arch first.

    Fields are named as in the JSON (arch, config.epochs, metrics.test_accuracy, name, versions...).
    """
    a, b = given.to_dict(), truth.to_dict()
    # An ensemble has no config (its members have): compared as one field, "members".
    a_nested = {f"{part}.{k}": v for part in ("config", "metrics") for k, v in a.pop(part, {}).items()}
    b_nested = {f"{part}.{k}": v for part in ("config", "metrics") for k, v in b.pop(part, {}).items()}
    a, b = {**a, **a_nested}, {**b, **b_nested}
    fields = ["arch"] + sorted(k for k in a.keys() | b.keys() if k != "arch" and k != "config.arch")
    return [(f, a.get(f), b.get(f)) for f in fields if a.get(f) != b.get(f)]


def _check_same_description(given: RunRecord, truth: RunRecord, source: str) -> None:
    differences = describe_differences(given, truth)
    if differences:
        field, said, saved = differences[0]
        detail = f"the .json says {field} {said!r} but the weights were saved as {saved!r}"
        more = f" (and {len(differences) - 1} more field(s) differ)" if len(differences) > 1 else ""
        raise CheckpointError(
            f"{source}: its .json describes another run: {detail}{more}", CheckpointError.MISMATCH, detail + more
        )


def _embedded_meta(weights: bytes) -> str | None:
    """The JSON string stored under META_KEY in the safetensors header's __metadata__, if any."""
    # Layout: 8-byte little-endian header length, then the JSON header (safetensors' own format).
    header_len = int.from_bytes(weights[:8], "little")
    header = json.loads(weights[8 : 8 + header_len])
    return (header.get("__metadata__") or {}).get(META_KEY)


def read_limited(path: Path, limit: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > limit:
            raise CheckpointError(f"{path}: {size / 1e6:.1f} MB is over the {limit // 2**20} MB limit")
        return path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def load_checkpoint(path: Path | str | None = None) -> Checkpoint:
    """Load a run folder, or a lone .safetensors file with its JSON embedded; default: the bundled model."""
    path = Path(path) if path is not None else BUNDLED_DIR
    if path.is_dir():
        weights_path, meta_path = path / WEIGHTS_FILE, path / META_FILE
    else:
        weights_path, meta_path = path, path.with_suffix(".json")
    if not weights_path.is_file():
        raise CheckpointError(f"no checkpoint at {weights_path}: give a run folder or a .safetensors file")
    record = RunRecord.parse(read_limited(meta_path, MAX_JSON_BYTES), str(meta_path)) if meta_path.is_file() else None
    model, record = model_from_bytes(read_limited(weights_path, MAX_CHECKPOINT_BYTES), record, str(weights_path))
    return Checkpoint(model, record, path)


def load_uploaded(weights: bytes, meta_json: bytes | None = None, name: str = "upload") -> Checkpoint:
    """Validate a checkpoint a user uploaded (bytes only; nothing touches the disk)."""
    if meta_json is not None and len(meta_json) > MAX_JSON_BYTES:
        limit = MAX_JSON_BYTES // 2**20
        raise CheckpointError(
            f"{name} (JSON): {len(meta_json) / 1e6:.1f} MB is over the {limit} MB limit", CheckpointError.BAD_JSON
        )
    record = _parse_record(meta_json, f"{name} (JSON)", CheckpointError.BAD_JSON) if meta_json is not None else None
    # The weights' own description wins: a .json only describes weights saved without one.
    model, record = model_from_bytes(weights, record, name, embedded_wins=True)
    return Checkpoint(model, record, Path(name))
