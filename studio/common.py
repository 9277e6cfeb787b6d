"""Streamlit helpers shared by the pages: cached resources, per-session state and the sidebar.

Process-wide (st.cache_resource, shared by every browser session): the MNIST tensors, the training
JobManager, loaded models and their test-set evaluations. Per session (st.session_state): the visitor's
token (kept by their browser across reloads and tabs: see studio.ownership), whose digest owns their
training jobs and saved runs, their active model, uploaded checkpoints.

Test seam: AppTest cannot draw on the canvas component, so the Sketch page reads its drawing through
`read_drawing` in pages/sketch.py, which uses the array stored under CANVAS_OVERRIDE_KEY in
st.session_state instead of the canvas when that key is set (any (H, W) or (H, W, 1|3|4) image array).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx
from torch import nn

from mnist.checkpoint import (
    BUNDLED_DIR,
    META_FILE,
    WEIGHTS_FILE,
    Checkpoint,
    SavedRun,
    default_runs_dir,
    list_runs,
    load_checkpoint,
    load_uploaded,
)
from mnist.data import (
    DATA_DIR_ENV,
    DEFAULT_DATA_DIR,
    MnistData,
    default_data_dir,
    load_mnist,
    mnist_available,
)
from mnist.device import describe_device, resolve_device
from mnist.ensemble import first_member
from mnist.errors import DataNotFoundError, MnistError
from mnist.jobs import DEFAULT_REQUESTS_PER_OWNER, Fairness, JobManager
from mnist.records import ModelRef, RunRecord
from mnist.train import EvalResult, evaluate
from studio import disk_budget
from studio.ownership import (
    POLICY_ENV,
    Access,
    Policy,
    access,
    new_token,
    owner_of,
    read_policy,
    valid_token,
    visible_runs,
)
from studio.presence import Presence

CANVAS_OVERRIDE_KEY = "sketch_canvas_override"  # tests: an image array used instead of the drawing
SKETCH_IMAGE_KEY = "sketch_test_image"  # an MNIST test index: Sketch shows that image instead of the canvas
TOKEN_KEY = "visitor_token"  # this browser's secret token (see studio.ownership)
# Whether the browser keeps the token's cookie: True (it arrived with it, or the page read it back), False
# (the page could not: the address must carry the token), absent while not known yet.
COOKIE_OK_KEY = "visitor_cookie_ok"
COOKIE_COMPONENT_KEY = "visitor_cookie"
COOKIE_SESSION_KEY = "visitor_cookie_session"  # not a secret: tells one session's report from the next one's
MODEL_GONE_KEY = "model_gone_notice"  # why the active model changed without the visitor's doing
VISITOR_PARAM = "visitor"
# Test-set evaluations kept (each about 0.2 MB: three 10,000-long tensors): Explore's hard digits compare
# 5 runs, beside visitors' own models.
EVALUATIONS_KEPT = 16
VISITOR_COOKIE = "mnist_studio_visitor"
COOKIE_MAX_AGE = 365 * 24 * 3600  # seconds
# Runs in the app's page (a components.v2 component, not an iframe), given the token as data. Writes the
# cookie (on https partitioned SameSite=None, which also works inside another site's iframe: Spaces), and
# reads it back: if it sticks, drops any ?visitor= from the address at once; either way it tells the
# server (cookie_ok), once per session (a repeated report would rerun the script for nothing).
# The referrer meta: while the address holds ?visitor=, no request of the page may carry it as Referer
# (studio.serve's nginx sends the same policy as a header; plain `streamlit run` cannot send headers).
COOKIE_JS = f"""
let reportedSession = null;
export default function (component) {{
  const token = component.data.token;
  if (!document.querySelector('meta[name="referrer"]')) {{
    const meta = document.createElement("meta");
    meta.name = "referrer";
    meta.content = "no-referrer";
    document.head.appendChild(meta);
  }}
  let attrs = "; Path=/; Max-Age={COOKIE_MAX_AGE}";
  attrs += location.protocol === "https:" ? "; SameSite=None; Secure; Partitioned" : "; SameSite=Lax";
  document.cookie = "{VISITOR_COOKIE}=" + token + attrs;
  const works = document.cookie.split("; ").includes("{VISITOR_COOKIE}=" + token);
  const url = new URL(location.href);
  if (works && url.searchParams.has("{VISITOR_PARAM}")) {{
    url.searchParams.delete("{VISITOR_PARAM}");
    history.replaceState(history.state, "", url);
  }}
  if (reportedSession === component.data.session) return;
  reportedSession = component.data.session;
  component.setStateValue("cookie_ok", works);
}}
"""
_visitor_cookie = st.components.v2.component("visitor_cookie", js=COOKIE_JS)
ACTIVE_MODEL_KEY = "active_model"  # the sidebar's model selectbox; a model key (see model_choices)
UPLOADS_KEY = "uploaded_models"  # model key -> Checkpoint, this session's uploads
log = logging.getLogger(__name__)
JOB_KEY = "job_id"  # the training job this session is looking at
ENTRY_KEY = "_entered_through_app"  # set by streamlit_app.py on every run; see page_setup


# --- MNIST ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataState:
    data: MnistData | None
    error: str | None
    root: Path


def data_root() -> Path:
    return default_data_dir().resolve()


@st.cache_resource(show_spinner=False, max_entries=4)
def _load_data(root: str, files_present: bool) -> DataState:
    # files_present is part of the key: a failed download is tried once per process, not on every
    # rerun (offline it can be slow to fail), and forgotten as soon as the files appear.
    try:
        return DataState(load_mnist(root, download=not files_present), None, Path(root))
    except MnistError as exc:
        return DataState(None, str(exc), Path(root))


def get_data() -> DataState:
    """The data set, loaded (or downloaded into the data folder) once per process; never raises."""
    root = data_root()
    present = mnist_available(root)
    message = "Loading MNIST…" if present else "MNIST is not on this server yet: downloading it (about 11 MB)…"
    with st.spinner(message):
        return _load_data(str(root), present)


def retry_data() -> None:
    _load_data.clear()


def show_data_help(state: DataState) -> None:
    """One message saying what is missing and how to provide it (the folder's path is in the server's log)."""
    error = (state.error or "").replace(str(state.root), "the server's data folder")
    st.warning(
        f"**MNIST is not available, so this page cannot work yet.** {error}\n\n"
        f"How to provide it: put the four files in `./{DEFAULT_DATA_DIR}` next to `streamlit_app.py`, or start "
        f"the app with `{DATA_DIR_ENV}=/path/to/folder streamlit run streamlit_app.py`. With internet access "
        "the app downloads them into that folder by itself. The Sketch page works without MNIST.",
        icon=":material/dataset:",
    )
    st.button("Check again", icon=":material/refresh:", on_click=retry_data, key="retry_data")


def _training_data(root: str) -> MnistData:
    """For the JobManager's threads: the cached data set, or DataNotFoundError."""
    state = _load_data(root, mnist_available(root))
    if state.data is None:
        raise DataNotFoundError(state.error or f"MNIST not found in {root}")
    return state.data


@st.cache_resource(show_spinner=False)
def presence() -> Presence:
    """Which visitors have a session open in this process (every run notes its own: init_session)."""
    return Presence()


@st.cache_resource(show_spinner=False)
def _job_manager(root: str, runs_dir: str) -> JobManager:
    load = functools.partial(_training_data, root)
    try:
        fairness = Fairness.from_env()
    except MnistError as exc:  # fail safe: a misspelt setting must not let one visitor queue without limit
        log.warning("%s; using one request per visitor until it is fixed", exc)
        fairness = Fairness(requests_per_owner=DEFAULT_REQUESTS_PER_OWNER)
    manager = JobManager(load_data=load, runs_dir=runs_dir, fairness=fairness)
    manager.start_sweeping(presence().is_present)  # a visitor who left loses their queued runs
    return manager


def job_manager() -> JobManager:
    """The training pool shared by every session of this process."""
    return _job_manager(str(data_root()), str(runs_dir()))


# --- the session ------------------------------------------------------------------------------


def visitor_token() -> str:
    """This browser's secret token, the same after a reload and in a second tab (see studio.ownership).

    Read once per session: the cookie wins (a link someone shared, carrying their ?visitor=, does not make
    a returning visitor into them), then the address's ?visitor=, else a new random token.
    """
    if TOKEN_KEY not in st.session_state:
        cookie = valid_token(st.context.cookies.get(VISITOR_COOKIE))
        token = cookie or valid_token(st.query_params.get(VISITOR_PARAM)) or new_token()
        st.session_state[TOKEN_KEY] = token
        if cookie == token:
            st.session_state[COOKIE_OK_KEY] = True
    return st.session_state[TOKEN_KEY]


def remember_visitor() -> None:
    """Keep the token in the browser: a cookie, and the address (?visitor=) only where cookies are refused.

    The cookie is written by JavaScript (COOKIE_JS: Streamlit can read cookies, not set them), which reads
    it back and reports. Only where the browser refuses it (a third-party iframe, as on Hugging Face Spaces,
    may) does the address carry the token, so that a reload keeps it. The address is a secret's poor
    carrier (history, shared links, Referer, logs): where the cookie works it never gets the token, and a
    token it arrived with (a reload before, a shared link) is removed at once.
    """
    token = visitor_token()
    if st.session_state.get(COOKIE_OK_KEY) is not True:
        session = st.session_state.setdefault(COOKIE_SESSION_KEY, new_token())
        with st.sidebar:
            _visitor_cookie(
                key=COOKIE_COMPONENT_KEY,
                data={"token": token, "session": session},
                on_cookie_ok_change=_note_cookie_report,
            )
    cookie_ok = st.session_state.get(COOKIE_OK_KEY)
    if cookie_ok:
        if VISITOR_PARAM in st.query_params:
            del st.query_params[VISITOR_PARAM]
    elif (cookie_ok is False or VISITOR_PARAM in st.query_params) and st.query_params.get(VISITOR_PARAM) != token:
        # Refused: page switches drop query parameters, put it back. Not known yet: leave the address alone,
        # unless it holds another (an invalid) token.
        st.query_params[VISITOR_PARAM] = token


def _note_cookie_report() -> None:
    """The cookie script's report: whether the browser keeps the cookie."""
    report = (st.session_state.get(COOKIE_COMPONENT_KEY) or {}).get("cookie_ok")
    if report is not None:
        st.session_state[COOKIE_OK_KEY] = bool(report)


def owner_id() -> str:
    """This visitor's owner id: it sees the training jobs it started, and owns the runs they saved."""
    return owner_of(visitor_token())


@st.cache_resource(show_spinner=False)
def _policy(value: str) -> tuple[Policy, str | None]:
    try:
        return read_policy({POLICY_ENV: value}), None
    except MnistError as exc:  # fail safe: a misspelt policy must not let anyone delete anything
        return Policy.NO_DELETE, f"{exc}; using {Policy.NO_DELETE.value} until it is fixed"


def runs_policy() -> tuple[Policy, str | None]:
    """The operator's policy for saved runs ($MNIST_RUNS_POLICY) and, when it is invalid, why."""
    return _policy(os.environ.get(POLICY_ENV, ""))


def init_session() -> None:
    """Called by streamlit_app.py at the start of every run, before the page."""
    remember_visitor()
    context = get_script_run_ctx()
    if context is not None:
        presence().note(owner_id(), context.session_id)
    st.session_state.setdefault(UPLOADS_KEY, {})
    st.session_state[ENTRY_KEY] = True


def page_setup() -> None:
    """First line of every page: make sure the run went through streamlit_app.py's st.navigation.

    Streamlit still knows the old multipage mode where every file in pages/ is a page of its own. A fresh
    server uses it for the very first run of the process, so a first visitor who opens /train directly
    would get pages/train.py alone, without the app's navigation, sidebar or layout. Switching the flag
    off and rerunning sends that run through streamlit_app.py like every other.
    """
    if st.session_state.pop(ENTRY_KEY, False):
        return
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False
    st.rerun()


# --- models -----------------------------------------------------------------------------------


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

    @property
    def key(self) -> str:
        return self.ref.key


def _bundled_record() -> RunRecord:
    """The bundled model's description: its meta.json, else the one embedded in its weights."""
    try:
        return RunRecord.parse((BUNDLED_DIR / META_FILE).read_bytes(), str(BUNDLED_DIR / META_FILE))
    except (OSError, MnistError):
        return _load_checkpoint(str(BUNDLED_DIR), _mtime(BUNDLED_DIR / WEIGHTS_FILE)).record


def _label(record: RunRecord, where: str) -> str:
    return f"{record.model_text} {record.metrics.accuracy_text()} · {where}"


def model_choices() -> dict[str, ModelChoice]:
    """Every model this session can use, by key: the bundled one, saved runs (newest first), its uploads."""
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
    for key, (name, ckpt) in st.session_state.get(UPLOADS_KEY, {}).items():
        where = f"uploaded {name}"
        choices.append(ModelChoice(ModelRef.parse(key), _label(ckpt.record, where), ckpt.record, where))
    return {choice.key: choice for choice in choices}


def active_model_key(choices: dict[str, ModelChoice] | None = None) -> str | None:
    """The session's model, made valid: bundled by default, else the newest run; None when there is none."""
    choices = model_choices() if choices is None else choices
    current = st.session_state.get(ACTIVE_MODEL_KEY)
    if current in choices:
        return current
    return next(iter(choices), None)


def model_name(key: str) -> str | None:
    """A model key's name for visitors; None when the value names no model at all (a stale or forged
    widget value: the menu then falls back to the default, with no notice and no error)."""
    try:
        return ModelRef.parse(key).name or key
    except MnistError:
        return None


def set_active_model(key: str) -> None:
    """Callback-safe: make `key` the session's model (used by Sketch and Explore)."""
    st.session_state[ACTIVE_MODEL_KEY] = key


def _folder_of(ref: ModelRef) -> Path:
    """The folder holding a bundled or saved-run model."""
    return BUNDLED_DIR if ref.kind == "bundled" else runs_dir() / ref.name


def get_checkpoint(key: str) -> Checkpoint:
    """Load (cached) the model behind a key; raises MnistError (CheckpointError) when it cannot."""
    ref = ModelRef.parse(key)
    if ref.kind == "upload":
        upload = st.session_state.get(UPLOADS_KEY, {}).get(key)
        if upload is None:
            raise MnistError("the uploaded model is no longer in this session; upload it again")
        return upload[1]
    folder = _folder_of(ref)
    return _load_checkpoint(str(folder), _mtime(folder / WEIGHTS_FILE))


def inside_model(key: str) -> nn.Module:
    """The one network Inside the model shows for `key`: its model, or an ensemble's first member."""
    return first_member(get_checkpoint(key).model)


def model_identity(key: str) -> str:
    """A string that changes whenever the model behind `key` changes: the cache key for its results."""
    ref = ModelRef.parse(key)
    if ref.kind == "upload":
        return key  # the key holds a hash of the bytes
    folder = _folder_of(ref)
    return f"{folder}@{_mtime(folder / WEIGHTS_FILE)}"


@st.cache_resource(show_spinner=False, max_entries=8)
def _model_on(identity: str, device: str, _model: nn.Module) -> nn.Module:
    return copy.deepcopy(_model).to(device).eval()


def model_on_device(key: str, device: str) -> nn.Module:
    """The model of `key` on `device` (a cached copy; the CPU original stays untouched)."""
    model = get_checkpoint(key).model
    if device == "cpu":
        return model
    return _model_on(model_identity(key), device, model)


@st.cache_resource(show_spinner="Evaluating the model on the 10,000 test images…", max_entries=EVALUATIONS_KEPT)
def _evaluate(identity: str, data_root: str, _model: nn.Module, _data: MnistData) -> tuple[EvalResult, list[dict]]:
    result = evaluate(_model, _data.test_images, _data.test_labels)
    return result, result.misclassified()


def evaluation(key: str, state: DataState) -> tuple[EvalResult, list[dict]]:
    """Test-set evaluation of a model and its mistakes, computed once per model and shared by all sessions."""
    return _evaluate(model_identity(key), str(state.root), get_checkpoint(key).model, state.data)


def add_upload(weights: bytes, meta_json: bytes | None, name: str) -> str:
    """Validate an uploaded checkpoint, add it to this session's models and make it active; its key."""
    ckpt = load_uploaded(weights, meta_json, name=name)
    key = ModelRef.upload(hashlib.sha256(weights + (meta_json or b"")).hexdigest()[:16]).key
    st.session_state.setdefault(UPLOADS_KEY, {})[key] = (name, ckpt)
    set_active_model(key)
    return key


# --- the sidebar ------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def _device_text() -> str:
    return describe_device(resolve_device("auto"))


@st.cache_resource(show_spinner=False, max_entries=4)
def _announce_folders(root: str, runs: str) -> None:
    """Once per process (and folder pair): where MNIST and the saved runs are, on the command line."""
    print(f"MNIST Studio: MNIST folder {root}; saved runs in {runs}", file=sys.stderr, flush=True)


def sidebar() -> None:
    """Device, MNIST availability, the active model (selectable) with its accuracy, training load."""
    choices = model_choices()
    active = active_model_key(choices)
    previous = st.session_state.get(ACTIVE_MODEL_KEY)
    gone = None if previous is None or previous in choices else model_name(previous)
    if gone is not None and active is not None:
        # Its maker deleted (or renamed) the run this visitor was using: say so, never switch silently.
        st.session_state[MODEL_GONE_KEY] = (
            f"The model you were using ({gone}) was deleted or renamed by its maker. "
            f"You now have: {choices[active].label}."
        )
    if active is not None and previous != active:
        st.session_state[ACTIVE_MODEL_KEY] = active  # before the widget exists: allowed
    with st.sidebar:
        disk_budget.show_in_sidebar(runs_dir(), owner_id(), active)  # its run is not removed while active here
        if MODEL_GONE_KEY in st.session_state:
            st.warning(st.session_state[MODEL_GONE_KEY], icon=":material/info:")
            st.button("OK", key="model_gone_ok", on_click=st.session_state.pop, args=(MODEL_GONE_KEY, None))
        if choices:
            st.selectbox(
                "Active model",
                options=list(choices),
                format_func=lambda k: choices[k].where if k in choices else k,  # the rest is in the caption
                key=ACTIVE_MODEL_KEY,
                help="Used by Sketch and Explore. Train a model or upload a checkpoint on Sketch to add one.",
            )
            record = choices[active].record
            accuracy = record.metrics.accuracy_text(" test accuracy")
            st.caption(f":material/neurology: {choices[active].where} · {record.model_text} · {accuracy}")
        else:
            st.info("No model yet: train one on the Train page.", icon=":material/neurology:")
        st.caption(f":material/memory: Device: {_device_text()}")
        root = data_root()
        _announce_folders(str(root), str(runs_dir()))  # the server's paths are for the operator, not visitors
        if mnist_available(root):
            st.caption(":material/dataset: MNIST: available")
        else:
            st.caption(":material/dataset: MNIST: not found on this server (Sketch still works)")
        running, queued = job_manager().active_count()
        if running or queued:
            st.caption(f":material/model_training: Training now: {running} running, {queued} queued")
