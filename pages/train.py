"""Train: configure a run, watch it learn live, compare saved runs and manage them."""

from __future__ import annotations

import logging

import streamlit as st

from mnist.checkpoint import (
    check_run_name,
)
from mnist.config import FIELD_SPECS, PRESET_DESCRIPTIONS, PRESETS, FieldSpec, TrainConfig, preset_config, range_text
from mnist.cost import estimate, over_cap_message, read_max_minutes
from mnist.device import PRECISION_LABELS, available_devices, dtype_name, resolve_device, resolve_precision
from mnist.ensemble import MAX_MEMBERS, MIN_MEMBERS
from mnist.errors import ConfigError, MnistError
from mnist.jobs import BusyError
from mnist.models import ARCHS, build_model, count_parameters, summarize_model
from studio import dataset, job_pool, registry, session, share, visitor
from studio.form import (
    FORM_FIELDS,
    NUMBER_WORDS,
    fields_left_out,
    fields_shown,
    form_state,
    form_values,
    parse_field,
    render_field,
)
from studio.train_jobs import REFRESH_SECONDS, STATE_LABELS, run_panel
from studio.train_runs import RUNS_PARAM, saved_runs
from studio.train_state import (
    DEVICE_FIELD_KEY,
    JOB_KEY,
    LINK_PROBLEMS_KEY,
    PRESET_KEY,
    RUN_NAME_KEY,
    SEEDS_KEY,
    START_ERROR_KEY,
)
from studio.train_state import TRAIN_PREFIX as PREFIX
from studio.views import format_duration

log = logging.getLogger(__name__)
# The form in reading order, two fields a row, each row its own st.columns(2): on a phone the columns
# stack row by row, so the order stays this one. The preset, arch and QUICK_ROWS come before Start (a
# short Tab path to it); FORM_ROWS, every other field (full width) and the run's name and seeds are in the
# More settings expander, after it.
QUICK_ROWS = (("epochs", "train_limit"),)
FORM_ROWS = (
    ("batch_size", "seed"),
    ("optimizer", "lr"),
    ("momentum", "nesterov"),
    ("weight_decay", "scheduler"),
    ("step_size", "gamma"),
    ("label_smoothing", "ema"),
    ("device", "precision"),
)  # augment is left out: its label needs the full width (in a half column it was cut to "Augment (ra…")
MORE_SETTINGS = "More settings: batch size, optimizer, schedule, augmentation, device, run name, seeds"
BETWEEN_FIELDS = ""  # the key of a problem that no single field has (batch size vs training images, ...)
MIN_SEEDS = 1
# What a link to this page's setup carries (studio.share): the preset and the fields, not the device (a
# machine's devices do not travel with a link) nor the run name (a name is taken once); and the compared runs.
SHARED_FIELDS = tuple(name for name in FORM_FIELDS if name != "device")

# --- shareable links --------------------------------------------------------------------------


def field_reader(spec: FieldSpec):
    """A link's text for a form field -> what its widget holds, checked like a typed value (studio.share)."""

    def read(text: str) -> object:
        if spec.kind in NUMBER_WORDS:
            value, problem = parse_field(spec, text)
            if problem:
                raise ValueError(f"must be {NUMBER_WORDS[spec.kind]} {range_text(spec)}")
            return form_state(spec, value)
        if spec.kind == "bool":
            return share.read_bool(text)
        return share.read_choice(spec.choices)(text)

    return read


def read_seeds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not MIN_SEEDS <= value <= MAX_MEMBERS:
        raise ValueError(f"must be a whole number between {MIN_SEEDS} and {MAX_MEMBERS}")
    return value


def form_params() -> list[share.Param]:
    params = [share.Param("preset", PRESET_KEY, share.read_choice(PRESETS), label="Preset")]
    for name in SHARED_FIELDS:
        spec = FIELD_SPECS[name]
        write = share.write_bool if spec.kind == "bool" else str
        params.append(share.Param(name, PREFIX + name, field_reader(spec), write, spec.label))
    params.append(share.Param("seeds", SEEDS_KEY, read_seeds, label="Seeds"))
    return params


def open_shared_link() -> None:
    """A session opened with a link: its preset, fields and compared runs win over the remembered ones."""
    values, problems = share.apply_link("train", [*form_params(), RUNS_PARAM])
    preset = values.get(PRESET_KEY)
    if preset is not None:  # the link's preset fills the fields the link does not name
        config = preset_config(preset)
        for field in FORM_FIELDS:
            if PREFIX + field not in values:
                st.session_state[PREFIX + field] = form_state(FIELD_SPECS[field], getattr(config, field))
    if problems:
        st.session_state[LINK_PROBLEMS_KEY] = problems


def show_link_problems() -> None:
    share.show_problems(LINK_PROBLEMS_KEY, "Some of this link's settings could not be used; the form kept its own:")


def setup_link() -> str:
    """The link to the form as it is: the preset and the fields that differ from it (a short address)."""
    values = share.current(form_params())
    preset = preset_config(values[PRESET_KEY] or "fast")
    held = form_values(PREFIX)
    for name in SHARED_FIELDS:
        spec = FIELD_SPECS[name]
        if not spec.applies(held) or values[PREFIX + name] == form_state(spec, getattr(preset, name)):
            values[PREFIX + name] = None
    if values[SEEDS_KEY] == 1:
        values[SEEDS_KEY] = None
    return share.link(form_params(), values)


def share_setup() -> None:
    with st.expander("Copy link to this setup", icon=":material/share:"):
        st.caption("This link opens Train with this preset and these settings for whoever you send it to.")
        st.code(setup_link(), language=None, wrap_lines=True)


# --- the form ---------------------------------------------------------------------------------


def apply_preset() -> None:
    """Fill every field from the chosen preset (the preset control's callback)."""
    config = preset_config(st.session_state.get(PRESET_KEY) or "fast")
    for field in FORM_FIELDS:
        st.session_state[PREFIX + field] = form_state(FIELD_SPECS[field], getattr(config, field))
    if config.device not in device_options():
        st.session_state[DEVICE_FIELD_KEY] = "auto"


def device_options() -> list[str]:
    return ["auto", *available_devices()]  # a GPU only appears when there is one


@st.cache_data(show_spinner=False)
def arch_summary(arch: str) -> tuple[int, list[dict]]:
    model = build_model(arch)
    rows = [
        {"layer": r.name, "type": r.kind, "output shape": " × ".join(map(str, r.output_shape)), "parameters": r.params}
        for r in summarize_model(model)
    ]
    return count_parameters(model), rows


def precision_label(name: str) -> str:
    """'auto (bfloat16 here)': what auto means on this machine's auto device (short: a half column shows about
    20 characters); the others as the spec says."""
    if name != "auto":
        return PRECISION_LABELS[name]
    return f"auto ({dtype_name(resolve_precision(name, resolve_device('auto')))} here)"


def config_form(data_ready: bool) -> None:
    """Preset, architecture, epochs and images, then Start: a short Tab path; every other field under More settings."""
    fill_missing_fields()
    keep = {"persist_state": "session"}  # keep the values when the user visits another page

    st.segmented_control("Preset", list(PRESETS), key=PRESET_KEY, on_change=apply_preset, required=True, **keep)
    st.caption(PRESET_DESCRIPTIONS.get(st.session_state.get(PRESET_KEY) or "fast", ""))

    widget_args = {  # the arch and device menus show more than the spec knows: sizes, this machine's devices
        "arch": {"format_func": lambda a: f"{a} · {arch_summary(a)[0]:,} parameters"},
        "device": {
            "options": device_options(),
            "format_func": lambda d: f"auto ({resolve_device('auto').type})" if d == "auto" else d,
        },
        "precision": {"format_func": precision_label},
    }

    def show(name: str, container):
        return render_field(FIELD_SPECS[name], container, PREFIX, **widget_args.get(name, {}), **keep)

    arch = show("arch", st)
    params, rows = arch_summary(arch)
    with st.expander(f"{arch}: {params:,} parameters, {len(rows)} layers", icon=":material/layers:"):
        st.caption(ARCHS[arch].description)
        st.dataframe(rows, hide_index=True, width="stretch")

    config, problems = build_config()
    show_rows(QUICK_ROWS, problems, show)
    name_problem = run_name_problem(run_name(), config)
    with st.container():  # its messages come and go: the expander below keeps its place (and what is typed in it)
        start_area(config, problems, name_problem, data_ready)
    # One label always: a new label would be a new expander, closed while its fields are being edited.
    with st.expander(MORE_SETTINGS, icon=":material/tune:"):
        show_rows(FORM_ROWS, problems, show)
        for name in fields_left_out({"arch"}.union(*QUICK_ROWS, *FORM_ROWS)):
            show(name, st)
        run_name_and_seeds(keep)
        if name_problem:
            st.error(name_problem, icon=":material/error:")
    share_setup()


def fill_missing_fields() -> None:
    """Every field a value before its widget exists: the preset's, where neither the visitor nor their
    remembered choices (studio.remembered) gave one."""
    preset = st.session_state.setdefault(PRESET_KEY, "fast")
    config = preset_config(preset or "fast")
    for field in FORM_FIELDS:
        if st.session_state.get(PREFIX + field) is None:
            st.session_state[PREFIX + field] = form_state(FIELD_SPECS[field], getattr(config, field))
    if st.session_state[DEVICE_FIELD_KEY] not in device_options():
        st.session_state[DEVICE_FIELD_KEY] = "auto"


def show_rows(form_rows, problems: dict[str, str], show) -> None:
    """Fields two a row, each row its own st.columns(2), with their problems under the row."""
    for row in form_rows:
        shown = fields_shown(row, PREFIX)
        if not shown:
            continue  # nothing in the row applies (step size and gamma without step decay): no empty row
        # A container per row: a message appearing in it leaves the rows below where they are. Moved, they
        # would be drawn anew, and a field being typed in would lose what was typed before its Enter.
        with st.container():
            for column, name in zip(st.columns(2), shown, strict=False):  # a lone field sits on the left
                show(name, column)
            for name in shown:  # under the row, full width: in a half column the message wraps every two words
                if name in problems:
                    st.error(problems[name], icon=":material/error:")


def start_area(config: TrainConfig | None, problems: dict[str, str], name_problem: str | None, ready: bool) -> None:
    """The estimate, what blocks Start (whichever field it is), and Start."""
    cost_problem = show_estimate(config) if ready else None
    if BETWEEN_FIELDS in problems:
        st.error(problems[BETWEEN_FIELDS], icon=":material/error:")
    refused = [FIELD_SPECS[n].label for n in problems if n != BETWEEN_FIELDS] + (["Run name"] if name_problem else [])
    if refused:  # the field may be a screen away, or in the collapsed More settings: say which ones
        st.caption(f":material/block: To start, fix: {', '.join(refused)}.")
    if not ready:
        st.caption("Training needs MNIST: see the message at the top of the page.")
    if START_ERROR_KEY in st.session_state:
        st.error(st.session_state.pop(START_ERROR_KEY), icon=":material/error:")
        show_busy_requests()
    st.button(
        "Start training",
        type="primary",
        icon=":material/play_arrow:",
        disabled=config is None or name_problem is not None or cost_problem is not None or not ready,
        on_click=start_run,
        width="stretch",
    )


def run_name_and_seeds(keep: dict) -> None:
    st.text_input(
        "Run name",
        key=RUN_NAME_KEY,
        placeholder="optional: automatic (date, time, architecture)",
        help="The saved run's folder name; leave it empty for an automatic one.",  # rules: check_run_name says them
        **keep,
    )
    st.number_input(
        "Seeds",
        min_value=MIN_SEEDS,
        max_value=MAX_MEMBERS,
        step=1,
        key=SEEDS_KEY,
        help=f"1: one run. {MIN_MEMBERS} to {MAX_MEMBERS}: one run per seed (seed, seed + 1, …), then their ensemble, "
        "saved as a run of its own when all have finished (with a name, the runs are NAME-seedS).",
        **keep,
    )


def show_estimate(config: TrainConfig | None) -> str | None:
    """The run's estimated training time on this server, under the form; why it is refused, if it is."""
    if config is None:
        return None
    try:
        found = estimate(config, seeds(), wait=False)
    except MnistError as exc:
        st.caption(f":material/timer: {str(exc).capitalize()}.")
        return None
    if found is None:  # measured in the background: a few steps of this architecture on this server
        wait_for_estimate(config, seeds())
        return None
    cap = max_run_minutes()
    seeds_text = f" for {seeds()} seeds" if seeds() > 1 else ""
    cap_text = f"; this server's cap is {cap:g} min per request." if cap is not None else "."
    st.caption(
        f":material/timer: Estimated training time on this server{seeds_text}: about "
        f"{format_duration(found.seconds)} ({found.steps:,} steps × {found.step_seconds:.2f} s){cap_text}"
    )
    if cap is not None and found.minutes > cap:
        problem = f"Cannot start: {over_cap_message(found, cap)}."
        st.error(problem, icon=":material/timer_off:")
        return problem
    return None


@st.fragment(run_every=REFRESH_SECONDS)
def wait_for_estimate(config: TrainConfig, n_seeds: int) -> None:
    """Reruns alone until the estimate is measured, then reruns the page so the form shows it."""
    if estimate(config, n_seeds, wait=False) is None:
        st.caption(":material/timer: Estimating the training time on this server (a few steps of this model)…")
    else:
        st.rerun()


def max_run_minutes() -> float | None:
    """The operator's cap ($MNIST_MAX_RUN_MINUTES); a bad value caps at nothing, and says so in the log."""
    try:
        return read_max_minutes()
    except MnistError as exc:
        log.warning("%s; no cap until it is fixed", exc)
        return None


def show_busy_requests() -> None:
    """Under a refused Start: what this visitor already has waiting or training, each with its Stop."""
    manager = job_pool.job_manager()
    for request in manager.active_requests(visitor.owner_id()):
        jobs = getattr(request, "jobs", [request])
        for job in (j for j in jobs if not j.is_finished):
            st.button(
                f"Stop {job.id} ({STATE_LABELS.get(job.state, job.state)})",
                icon=":material/stop:",
                on_click=manager.stop,
                args=(job.id,),
                key=f"stop_busy_{job.id}",
            )


def build_config() -> tuple[TrainConfig | None, dict[str, str]]:
    """The form's TrainConfig, or None and why not: a message per refused field (BETWEEN_FIELDS: a rule)."""
    held, defaults = form_values(PREFIX), TrainConfig()
    values, problems = {}, {}
    for name in FORM_FIELDS:
        if not FIELD_SPECS[name].applies(held):
            values[name] = getattr(defaults, name)  # no widget and no effect on this run (momentum with Adam)
            continue
        values[name], problem = parse_field(FIELD_SPECS[name], held[name])
        if problem:
            problems[name] = problem
    if problems:
        return None, problems
    try:
        config = TrainConfig(**values)
    except ConfigError as exc:
        return None, {BETWEEN_FIELDS: f"Cannot train with these settings: {exc}."}
    if config.train_limit and config.batch_size > config.train_limit:
        return None, {
            BETWEEN_FIELDS: f"Cannot train with these settings: the batch size ({config.batch_size:,}) is larger "
            f"than the {config.train_limit:,} training images; lower it or use more images."
        }
    return config, {}


def run_name() -> str:
    return (st.session_state.get(RUN_NAME_KEY) or "").strip()  # a phone keyboard may add a trailing space


def seeds() -> int:
    return int(st.session_state.get(SEEDS_KEY) or 1)


def planned_names(name: str, config: TrainConfig | None) -> list[str]:
    """The run names the next Start takes: the name, and with several seeds each seed's run NAME-seedS."""
    if not name or seeds() == 1 or config is None:
        return [name] if name else []
    return [name, *(f"{name}-seed{config.seed + k}" for k in range(seeds()))]


def run_name_problem(name: str, config: TrainConfig | None) -> str | None:
    """Why the next run cannot have this name (checked before training, not when its model is saved)."""
    if not name:
        return None  # an automatic name
    try:
        check_run_name(name)
    except MnistError as exc:
        return f"Run name: {exc}."
    manager, owner, runs_dir = job_pool.job_manager(), visitor.owner_id(), registry.runs_dir()
    waiting = {job.name for job in manager.jobs_for(owner) if not job.is_finished}
    waiting |= {group.name for group in manager.groups_for(owner) if not group.is_finished}
    for taken in planned_names(name, config):
        if (runs_dir / taken).exists() or taken in waiting:
            return f"Run name: a run named {taken} already exists; choose another name or leave it empty."
    return None


def start_run() -> None:
    # The form is read at the click, not passed from the last render: a click right after editing a field
    # can interrupt the rerun that edit started, and that render's values are the old ones. The pool and the
    # owner are read here too: a callback reads no module global (a page module's globals are its last run's).
    config, _problems = build_config()
    name = run_name()
    if config is None or run_name_problem(name, config):
        return  # this rerun shows the problems above the button
    per_seed, cap = None, max_run_minutes()
    if cap is not None:  # waits for the estimate if it is still being measured
        try:
            found = estimate(config, seeds())
        except MnistError as exc:
            st.session_state[START_ERROR_KEY] = f"Cannot start: {exc}."
            return
        if found.minutes > cap:
            return  # the form says why, with the figures
        per_seed = found.seconds_per_seed  # past twice this, the run is stopped (its model kept)
    manager, owner = job_pool.job_manager(), visitor.owner_id()
    try:
        if seeds() == 1:
            job = manager.submit(config, owner, name=name or None, estimate_s=per_seed)
        else:
            job = manager.submit_seeds(config, owner, seeds(), name=name or None, estimate_s=per_seed).jobs[0]
    except BusyError as exc:
        st.session_state[START_ERROR_KEY] = f"Not started: {exc}."
        return
    except MnistError as exc:  # e.g. the last seed past its range
        st.session_state[START_ERROR_KEY] = f"Cannot start these runs: {exc}."
        return
    st.session_state[JOB_KEY] = job.id
    st.session_state[RUN_NAME_KEY] = ""  # that name is taken now: the next run gets its own or an automatic one


# --- the page ---------------------------------------------------------------------------------

session.page_setup()
open_shared_link()  # before any widget: the address's setup goes into the form
st.title("Train a model", anchor=False)
show_link_problems()
data_state = dataset.get_data()
if data_state.data is None:
    dataset.show_data_help(data_state)

form_col, run_col = st.columns([1.15, 1.6], gap="large")
with form_col:
    with st.container(border=True):
        st.header("New run", anchor=False)
        config_form(data_state.data is not None)
with run_col:
    st.header("Progress", anchor=False)
    run_panel()

st.divider()
saved_runs()
