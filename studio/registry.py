"""The model registry: the saved runs this visitor may see, the models they can choose, the active one.

Process-wide (st.cache_resource, shared by every browser session): the runs folder's listing, loaded models,
their copies on a device and their test-set evaluations. Per session (st.session_state): the active model
(the sidebar's select box) and the checkpoints this session uploaded.
"""

from __future__ import annotations

import copy
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from torch import nn

from mnist.checkpoint import (
    BUNDLED_DIR,
    META_FILE,
    WEIGHTS_FILE,
    Checkpoint,
    default_runs_dir,
    load_checkpoint,
    load_uploaded,
)
from mnist.data import MnistData
from mnist.ensemble import first_member
from mnist.errors import MnistError
from mnist.records import ModelRef, RunRecord
from mnist.runs import SavedRun, list_runs
from mnist.store import digest_weights_file
from mnist.train import EvalResult, evaluate
from studio.dataset import DataState
from studio.ownership import POLICY_ENV, Access, Policy, access, read_policy, visible_runs
from studio.visitor import owner_id

ACTIVE_MODEL_KEY = "active_model"  # the sidebar's model selectbox; a ModelRef (see model_choices)
UPLOADS_KEY = "uploaded_models"  # ModelRef -> (name, Checkpoint), this session's uploads
MODEL_GONE_KEY = "model_gone_notice"  # why the active model changed without the visitor's doing
# Test-set evaluations kept (each about 0.2 MB: three 10,000-long tensors): Explore's hard digits compare
# 5 runs, beside visitors' own models.
EVALUATIONS_KEPT = 16
WEIGHT_DIGESTS_KEPT = 64  # model_identity's digests (64 hex characters each) of the weights files seen


def init_uploads() -> None:
    """Every session starts with no uploaded models (kept across its runs)."""
    st.session_state.setdefault(UPLOADS_KEY, {})


@st.cache_resource(show_spinner=False)
def _policy(value: str) -> tuple[Policy, str | None]:
    try:
        return read_policy({POLICY_ENV: value}), None
    except MnistError as exc:  # fail safe: a misspelt policy must not let anyone delete anything
        return Policy.NO_DELETE, f"{exc}; using {Policy.NO_DELETE.value} until it is fixed"


def runs_policy() -> tuple[Policy, str | None]:
    """The operator's policy for saved runs ($MNIST_RUNS_POLICY) and, when it is invalid, why."""
    return _policy(os.environ.get(POLICY_ENV, ""))


def runs_dir() -> Path:
    return default_runs_dir().resolve()


@st.cache_resource(show_spinner=False, max_entries=4)
def _list_runs(path: str, mtime: int) -> list:
    # mtime is part of the key: a run renamed into place or deleted changes the folder's mtime.
    return list_runs(path)


def all_runs() -> list[SavedRun]:
    """list_runs of the runs folder, re-read only when the folder changes (not on every stroke's rerun)."""
    path = runs_dir()
    return _list_runs(str(path), _mtime(path))


def runs_list() -> list[SavedRun]:
    """The saved runs this visitor may see under the operator's policy, newest first."""
    return visible_runs(all_runs(), owner_id(), runs_policy()[0])


def run_access(run: SavedRun) -> Access:
    return access(run, owner_id(), runs_policy()[0])


def bundled_available() -> bool:
    return (BUNDLED_DIR / WEIGHTS_FILE).is_file()


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


@st.cache_resource(show_spinner="Loading the model…", max_entries=16)
def _load_checkpoint(path: str, mtime: int) -> Checkpoint:
    # mtime is part of the key: a replaced file is loaded again.
    return load_checkpoint(path)


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the model select box: which model, its label and its description."""

    ref: ModelRef
    label: str
    record: RunRecord
    where: str = ""  # short: "Bundled", the run's name, "uploaded NAME" (the sidebar's narrow menu shows this)


def _bundled_record() -> RunRecord:
    """The bundled model's description: its meta.json, else the one embedded in its weights."""
    try:
        return RunRecord.parse((BUNDLED_DIR / META_FILE).read_bytes(), str(BUNDLED_DIR / META_FILE))
    except (OSError, MnistError):
        return _load_checkpoint(str(BUNDLED_DIR), _mtime(BUNDLED_DIR / WEIGHTS_FILE)).record


def _label(record: RunRecord, where: str) -> str:
    return f"{record.model_text} {record.metrics.accuracy_text()} · {where}"


def model_choices() -> dict[ModelRef, ModelChoice]:
    """Every model this session can use, by ModelRef: the bundled one, saved runs (newest first), its uploads."""
    choices: list[ModelChoice] = []
    if bundled_available():
        try:
            record = _bundled_record()
        except MnistError:
            record = None  # a damaged bundled model is left out, not shown broken
        if record is not None:
            label = f"Bundled: {record.model_text} {record.metrics.accuracy_text()}"
            choices.append(ModelChoice(ModelRef.bundled(), label, record, "Bundled"))
    for run in runs_list():
        choices.append(ModelChoice(run.ref, _label(run.record, f"run {run.name}"), run.record, run.name))
    for ref, (name, ckpt) in st.session_state.get(UPLOADS_KEY, {}).items():
        where = f"uploaded {name}"
        choices.append(ModelChoice(ref, _label(ckpt.record, where), ckpt.record, where))
    return {choice.ref: choice for choice in choices}


def active_model(choices: dict[ModelRef, ModelChoice] | None = None) -> ModelRef | None:
    """The session's model, made valid: bundled by default, else the newest run; None when there is none."""
    choices = model_choices() if choices is None else choices
    current = st.session_state.get(ACTIVE_MODEL_KEY)
    if current in choices:
        return current
    return next(iter(choices), None)


def model_name(value: object) -> str | None:
    """A model's name for visitors; None when the value names no model at all (a stale or forged widget
    value comes back as the label's text: the menu then falls back to the default, with no notice and no error)."""
    return (value.name or value.key) if isinstance(value, ModelRef) else None


def set_active_model(ref: ModelRef) -> None:
    """Callback-safe: make `ref` the session's model (used by Sketch and Explore)."""
    st.session_state[ACTIVE_MODEL_KEY] = ref


def _folder_of(ref: ModelRef) -> Path:
    """The folder holding a bundled or saved-run model."""
    return BUNDLED_DIR if ref.kind == "bundled" else runs_dir() / ref.name


def get_checkpoint(ref: ModelRef) -> Checkpoint:
    """Load (cached) the model `ref` names; raises MnistError (CheckpointError) when it cannot."""
    if ref.kind == "upload":
        upload = st.session_state.get(UPLOADS_KEY, {}).get(ref)
        if upload is None:
            raise MnistError("the uploaded model is no longer in this session; upload it again")
        return upload[1]
    folder = _folder_of(ref)
    return _load_checkpoint(str(folder), _mtime(folder / WEIGHTS_FILE))


def inside_model(ref: ModelRef) -> nn.Module:
    """The one network Inside the model shows for `ref`: its model, or an ensemble's first member."""
    return first_member(get_checkpoint(ref).model)


@st.cache_resource(show_spinner=False, max_entries=WEIGHT_DIGESTS_KEPT)
def _weights_digest(path: str, mtime: int, size: int) -> str:
    # mtime and size are part of the key: a file rewritten (a run retrained under its name) is hashed again,
    # and a rerun's stat is all an unchanged file costs.
    return digest_weights_file(path) or f"unreadable {path}@{mtime}"


def model_identity(ref: ModelRef) -> str:
    """A digest of the weights of the model `ref` names: the cache key for its results. Equal weights (a run
    saved again with the same bytes) share it; new weights under the same name change it."""
    if ref.kind == "upload":
        return ref.key  # its name is a digest of the uploaded bytes
    path = _folder_of(ref) / WEIGHTS_FILE
    try:
        stat = path.stat()
    except OSError:
        return f"missing {path}"  # loading it fails too, with the visitor's message
    return _weights_digest(str(path), stat.st_mtime_ns, stat.st_size)


@st.cache_resource(show_spinner=False, max_entries=8)
def _model_on(identity: str, device: str, _model: nn.Module) -> nn.Module:
    return copy.deepcopy(_model).to(device).eval()


def model_on_device(ref: ModelRef, device: str) -> nn.Module:
    """The model of `ref` on `device` (a cached copy; the CPU original stays untouched)."""
    model = get_checkpoint(ref).model
    if device == "cpu":
        return model
    return _model_on(model_identity(ref), device, model)


@st.cache_resource(show_spinner="Evaluating the model on the 10,000 test images…", max_entries=EVALUATIONS_KEPT)
def _evaluate(identity: str, data_root: str, _model: nn.Module, _data: MnistData) -> tuple[EvalResult, list[dict]]:
    result = evaluate(_model, _data.test_images, _data.test_labels)
    return result, result.misclassified()


def evaluation(ref: ModelRef, state: DataState) -> tuple[EvalResult, list[dict]]:
    """Test-set evaluation of a model and its mistakes, computed once per model and shared by all sessions."""
    return _evaluate(model_identity(ref), str(state.root), get_checkpoint(ref).model, state.data)


def add_upload(weights: bytes, meta_json: bytes | None, name: str) -> ModelRef:
    """Validate an uploaded checkpoint, add it to this session's models and make it active; its ModelRef."""
    ckpt = load_uploaded(weights, meta_json, name=name)
    ref = ModelRef.upload(hashlib.sha256(weights + (meta_json or b"")).hexdigest()[:16])
    st.session_state.setdefault(UPLOADS_KEY, {})[ref] = (name, ckpt)
    set_active_model(ref)
    return ref
