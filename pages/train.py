"""Train: configure a run, watch it learn live, compare saved runs and manage them."""

from __future__ import annotations

import logging

import streamlit as st

from mnist.checkpoint import (
    check_run_name,
    checkpoint_file_bytes,
    delete_run,
    load_history,
    rename_run,
    save_ensemble,
)
from mnist.config import FIELD_SPECS, PRESET_DESCRIPTIONS, PRESETS, FieldSpec, TrainConfig, preset_config, range_text
from mnist.cost import estimate, over_cap_message, read_max_minutes
from mnist.device import PRECISION_LABELS, available_devices, dtype_name, resolve_device, resolve_precision
from mnist.ensemble import MAX_MEMBERS, MIN_MEMBERS
from mnist.errors import ConfigError, MnistError
from mnist.jobs import DONE, FAILED, QUEUED, RUNNING, STOPPED, BusyError
from mnist.models import ARCHS, build_model, count_parameters, summarize_model
from mnist.records import ModelRef
from mnist.train import History
from studio import dataset, disk_budget, explain, guide, insight_views, job_pool, registry, session, share, visitor
from studio.charts import DEFAULT_SMOOTHING, compare_figure, epoch_figure, lr_figure, step_loss_figure
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
from studio.remembered import RUN_NAME_KEY, SEEDS_KEY
from studio.remembered import TRAIN_PREFIX as PREFIX
from studio.views import format_duration, queue_text, run_row, training_progress

log = logging.getLogger(__name__)
REFRESH_SECONDS = 1.0  # the live panel reruns (alone) this often while a run is queued or training
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
STATE_LABELS = {QUEUED: "queued", RUNNING: "training", DONE: "finished", STOPPED: "stopped", FAILED: "failed"}
MAX_COMPARED = 8
MIN_SEEDS = 1
DELETE_CONFIRM_KEY = "confirm_delete"
DELETE_ERROR_KEY = "delete_error"  # why the last rename or delete was refused
RENAME_KEY = "rename_to"
START_ERROR_KEY = "start_error"  # why the last Start was refused by the pool
RUN_PICK_KEY = "runs_to_watch"  # prefix of "Your runs"' key (see choose_run_to_watch)
ENSEMBLE_PICK_KEY = "ensemble_runs"  # the saved runs chosen for a new ensemble
ENSEMBLE_NAME_KEY = "ensemble_name"
ENSEMBLE_RESULT_KEY = "ensemble_result"  # (ok, message) of the last Make the ensemble
COMPARE_KEY = "compare_runs"  # the saved runs whose curves are compared
# What a link to this page's setup carries (studio.share): the preset and the fields, not the device (a
# machine's devices do not travel with a link) nor the run name (a name is taken once); and the compared runs.
SHARED_FIELDS = tuple(name for name in FORM_FIELDS if name != "device")
LINK_PROBLEMS_KEY = "train_link_problems"  # what the link this session was opened with could not set

manager = job_pool.job_manager()
owner = visitor.owner_id()
runs_dir = registry.runs_dir()


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


def read_runs(text: str) -> list[str]:
    """A link's comma-separated run names (a run name has no comma): saved runs this visitor can see."""
    names = [n for n in text.split(",") if n]
    visible = {r.name for r in registry.runs_list()}
    missing = [n for n in names if n not in visible]
    if not names or missing or len(names) > MAX_COMPARED:
        why = f"there is no saved run named {missing[0]} here" if missing else f"1 to {MAX_COMPARED} run names"
        raise ValueError(f"must name saved runs ({why})")
    return names


def form_params() -> list[share.Param]:
    params = [share.Param("preset", PREFIX + "preset", share.read_choice(PRESETS), label="Preset")]
    for name in SHARED_FIELDS:
        spec = FIELD_SPECS[name]
        write = share.write_bool if spec.kind == "bool" else str
        params.append(share.Param(name, PREFIX + name, field_reader(spec), write, spec.label))
    params.append(share.Param("seeds", SEEDS_KEY, read_seeds, label="Seeds"))
    return params


RUNS_PARAM = share.Param("runs", COMPARE_KEY, read_runs, ",".join, "Compare runs")


def open_shared_link() -> None:
    """A session opened with a link: its preset, fields and compared runs win over the remembered ones."""
    values, problems = share.apply_link("train", [*form_params(), RUNS_PARAM])
    preset = values.get(PREFIX + "preset")
    if preset is not None:  # the link's preset fills the fields the link does not name
        config = preset_config(preset)
        for field in FORM_FIELDS:
            if PREFIX + field not in values:
                st.session_state[PREFIX + field] = form_state(FIELD_SPECS[field], getattr(config, field))
    if problems:
        st.session_state[LINK_PROBLEMS_KEY] = problems


def show_link_problems() -> None:
    problems = st.session_state.pop(LINK_PROBLEMS_KEY, None)
    if problems:
        lines = "\n".join(f"- {p}" for p in problems)
        st.warning(f"Some of this link's settings could not be used; the form kept its own:\n{lines}")


def setup_link() -> str:
    """The link to the form as it is: the preset and the fields that differ from it (a short address)."""
    values = share.current(form_params())
    preset = preset_config(values[PREFIX + "preset"] or "fast")
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
    config = preset_config(st.session_state.get(PREFIX + "preset") or "fast")
    for field in FORM_FIELDS:
        st.session_state[PREFIX + field] = form_state(FIELD_SPECS[field], getattr(config, field))
    if config.device not in device_options():
        st.session_state[PREFIX + "device"] = "auto"


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

    st.segmented_control("Preset", list(PRESETS), key=PREFIX + "preset", on_change=apply_preset, required=True, **keep)
    st.caption(PRESET_DESCRIPTIONS.get(st.session_state.get(PREFIX + "preset") or "fast", ""))

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
    preset = st.session_state.setdefault(PREFIX + "preset", "fast")
    config = preset_config(preset or "fast")
    for field in FORM_FIELDS:
        if st.session_state.get(PREFIX + field) is None:
            st.session_state[PREFIX + field] = form_state(FIELD_SPECS[field], getattr(config, field))
    if st.session_state[PREFIX + "device"] not in device_options():
        st.session_state[PREFIX + "device"] = "auto"


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
    for request in manager.active_requests(owner):
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
    waiting = {job.name for job in manager.jobs_for(owner) if not job.is_finished}
    waiting |= {group.name for group in manager.groups_for(owner) if not group.is_finished}
    for taken in planned_names(name, config):
        if (runs_dir / taken).exists() or taken in waiting:
            return f"Run name: a run named {taken} already exists; choose another name or leave it empty."
    return None


def start_run() -> None:
    # The form is read at the click, not passed from the last render: a click right after editing a field
    # can interrupt the rerun that edit started, and that render's values are the old ones.
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
    st.session_state[job_pool.JOB_KEY] = job.id
    st.session_state[RUN_NAME_KEY] = ""  # that name is taken now: the next run gets its own or an automatic one


# --- the run being watched --------------------------------------------------------------------


def my_jobs():
    """This session's runs, newest first."""
    return sorted(manager.jobs_for(owner), key=lambda j: j.created, reverse=True)


def first_to_watch(jobs):
    """The run a page opened afresh shows: one training now (after a reload mid-run, not the queued seed
    behind it), else the newest."""
    return next((j for j in jobs if j.state == RUNNING), jobs[0])


def plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def job_title(job) -> str:
    c = job.config
    limit = f" · first {c.train_limit:,} images" if c.train_limit else ""
    seed = f" · seed {c.seed}" if job.group else ""  # one of several seeds: which one
    return f"{job.id} · {c.arch} · {plural(c.epochs, 'epoch')} · batch {c.batch_size}{limit}{seed}"


def render_job(job_id: str) -> None:
    job = manager.get(job_id)
    if job is None:
        st.info("This run is no longer tracked; find it under Saved runs below.")
        return
    events = manager.events(job)
    state = job.state
    st.markdown(f"**{job_title(job)}** · {STATE_LABELS.get(state, state)}")
    if state == QUEUED:
        running, _queued = manager.active_count()
        st.info(queue_text(manager.position(job), manager.max_workers, running), icon=":material/hourglass_top:")
        st.button("Cancel this run", icon=":material/close:", on_click=manager.stop, args=(job.id,), key="stop_job")
    elif state == RUNNING:
        progress = training_progress(History.of_events(events).steps, job.config.epochs)
        st.progress(progress.fraction, text=progress.text)
        if job.stop_event.is_set():
            st.caption("Stopping after the current step; the model trained so far will be saved…")
        else:
            st.button(
                "Stop (keeps the model trained so far)",
                icon=":material/stop:",
                on_click=manager.stop,
                args=(job.id,),
                key="stop_job",
            )
    elif state == FAILED:
        st.error(f"Training failed: {job.error}", icon=":material/error:")
    elif job.metrics is None:  # withdrawn from the queue before it started
        why = f" {job.stop_reason[0].upper()}{job.stop_reason[1:]}." if job.stop_reason else ""
        st.info(f"Cancelled before it started: nothing was trained or saved.{why}", icon=":material/block:")
    else:
        render_summary(job)
    if events:
        history = History.of_events(events)
        smoothing = st.session_state.get("loss_smoothing", DEFAULT_SMOOTHING)
        st.plotly_chart(step_loss_figure(history.steps, smoothing), key="live_step_loss")
        st.plotly_chart(epoch_figure(history.epochs), key="live_epochs")
        if text := curves_text(history):
            st.caption(text)
        st.plotly_chart(lr_figure(history.steps), key="live_lr")
        st.caption(explain.learning_rate_text(job.config.scheduler, job.config.lr))
        st.slider(
            "Loss smoothing (EMA)", 0.0, 0.99, DEFAULT_SMOOTHING, 0.01, key="loss_smoothing", persist_state="session"
        )
        insight_views.show_job_insight(events)


def curves_text(history: History) -> str:
    """The paragraph under a run's curves, with its own numbers (studio.explain)."""
    last = history.epochs[-1] if history.epochs else None
    return explain.curves_text(
        [e.loss for e in history.steps],
        None if last is None else last.train_accuracy,
        None if last is None else last.test_accuracy,
        len(history.epochs),
    )


def ensemble_text(record) -> str:
    """Why an ensemble scores what it scores against its members (studio.explain); '' without the figures."""
    members = [m.metrics.test_accuracy for m in record.members]
    if record.metrics.test_accuracy is None or None in members:
        return ""
    return explain.ensemble_text(members, record.metrics.test_accuracy)


def render_summary(job) -> None:
    m = job.metrics  # a finished job that trained always has them (render_job checks)
    acc, loss = m.test_accuracy or 0.0, m.test_loss or 0.0
    duration = format_duration(m.train_seconds)
    if job.state == STOPPED:
        why = f" ({job.stop_reason})" if job.stop_reason else ""
        st.warning(
            f"Stopped after {m.steps_done:,} steps{why}: the model trained so far was saved. "
            f"Test accuracy {acc * 100:.2f}% after {duration} of training.",
            icon=":material/stop_circle:",
        )
    else:
        st.success(
            f"Finished: test accuracy {acc * 100:.2f}% after {duration} of training "
            f"({plural(m.epochs_done, 'epoch')}, {plural(m.steps_done, 'step')}"
            f"{f', in {m.precision}' if m.precision else ''}).",
            icon=":material/check_circle:",
        )
    cols = st.columns(4)
    cols[0].metric("Test accuracy", f"{acc * 100:.2f}%")
    cols[1].metric("Test loss", f"{loss:.4f}")
    seconds = m.train_seconds  # plain seconds: "2 min 05 s" is cut off in a narrow column
    cols[2].metric("Training time", "–" if seconds is None else f"{seconds:,.0f} s")
    cols[3].metric("Steps", f"{m.steps_done:,}")
    if job.run_dir is not None:
        use_button(job.run_dir.name, "Use this model in Sketch and Explore", ":material/check:", "use_finished")
    if job.state == DONE:
        guide.mark_done(guide.Step.TRAIN)  # the start guide's step 2: a run trained to its end and saved


def use_button(run_name: str, label: str, icon: str, key: str) -> None:
    """A button that makes the saved run the active model, or a line saying it already is."""
    model_key = ModelRef.run(run_name).key
    if st.session_state.get(registry.ACTIVE_MODEL_KEY) == model_key:
        st.caption(f"Saved as `{run_name}` · the active model for Sketch and Explore.")
    else:
        st.button(label, icon=icon, on_click=registry.set_active_model, args=(model_key,), key=key)


@st.fragment(run_every=REFRESH_SECONDS)
def live_job(job_id: str) -> None:
    """Reruns on its own every second while the run is queued or training, then hands back to the page."""
    render_job(job_id)
    job = manager.get(job_id)
    if job is None or job.is_finished:
        st.rerun()  # the whole page: the new run joins the history and the sidebar's model list


def show_seed_group(group) -> None:
    """One line about a seeds group: how far it is, its saved ensemble, or why there is none."""
    n = len(group.jobs)
    if group.state == DONE:
        name = group.run_dir.name
        record = registry.get_checkpoint(ModelRef.run(name).key).record
        acc = record.metrics.accuracy_text(" test accuracy")
        st.success(f"{plural(n, 'seed')} done: saved `{name}`, {record.model_text}, {acc}.")
        if text := ensemble_text(record):
            st.caption(text)
        use_button(name, "Use the ensemble in Sketch and Explore", ":material/stacks:", f"use_ensemble_{group.id}")
    elif group.state == FAILED:
        st.warning(f"{plural(n, 'seed')}: {group.error}.", icon=":material/info:")
    else:
        finished = group.finished_jobs
        st.info(
            f"{plural(n, 'seed')}: {finished} of {n} runs finished; their ensemble is saved when all are done"
            f"{' (saving it now…)' if finished == n else ''}.",
            icon=":material/stacks:",
        )


@st.fragment(run_every=REFRESH_SECONDS)
def live_seed_group(group) -> None:
    """Refreshes while a group trains; reruns the page once its ensemble is saved (or cannot be)."""
    show_seed_group(group)
    if group.is_finished:
        st.rerun()


def seed_groups() -> None:
    for group in sorted(manager.groups_for(owner), key=lambda g: g.id, reverse=True)[:3]:  # the latest few
        (show_seed_group if group.is_finished else live_seed_group)(group)


def choose_run_to_watch(labels: dict[str, str]) -> None:
    """ "Your runs": which of this visitor's runs the panel shows, each labelled with its state now.

    The widget's key names every run's state: a key kept across a state change (training -> stopped) kept
    the browser's old label of the chosen run. A new key is a new widget, drawn with the labels of now;
    JOB_KEY holds the choice across them.
    """
    states = "-".join(label.rsplit(" · ", 1)[-1] for label in labels.values())
    key = f"{RUN_PICK_KEY}_{len(labels)}_{states}"
    ids = list(labels)
    st.selectbox(
        "Your runs",
        ids,
        index=ids.index(st.session_state[job_pool.JOB_KEY]),
        key=key,
        format_func=lambda i: labels.get(i, i),
        on_change=lambda: st.session_state.update({job_pool.JOB_KEY: st.session_state[key]}),
    )


def run_panel() -> None:
    seed_groups()
    jobs = my_jobs()
    if not jobs:
        st.info(
            "Start a run to watch it learn here: the loss after every few steps, train and test accuracy after "
            "every epoch and the learning rate, live. It trains in the background: you can switch pages.",
            icon=":material/monitoring:",
        )
        trained = [r for r in registry.runs_list() if not r.record.is_ensemble]  # an ensemble has no curves
        if trained:
            latest = trained[0]
            metrics = latest.record.metrics
            acc_text = "" if metrics.test_accuracy is None else f", {metrics.accuracy_text(' test accuracy')}"
            st.caption(f"Meanwhile, the curves of the latest saved run, `{latest.name}`{acc_text}:")
            history = cached_history(str(latest.path))
            st.plotly_chart(step_loss_figure(history.steps), key="latest_step_loss")
            st.plotly_chart(epoch_figure(history.epochs), key="latest_epochs")
            if text := curves_text(history):
                st.caption(text)
        return
    labels = {j.id: f"{job_title(j)} · {STATE_LABELS.get(j.state, j.state)}" for j in jobs}
    if st.session_state.get(job_pool.JOB_KEY) not in labels:  # a new session (a reload, a second tab)
        st.session_state[job_pool.JOB_KEY] = first_to_watch(jobs).id
    if len(jobs) > 1:
        choose_run_to_watch(labels)
    job = manager.get(st.session_state[job_pool.JOB_KEY])
    if job.is_finished:
        render_job(job.id)
    else:
        live_job(job.id)


# --- saved runs -------------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=64)
def cached_history(path: str) -> History:
    return load_history(path)  # runs never change once saved


def ask_delete(name: str) -> None:
    st.session_state[DELETE_CONFIRM_KEY] = name


def cancel_delete() -> None:
    st.session_state.pop(DELETE_CONFIRM_KEY, None)


def refusal(name: str, verb: str) -> str | None:
    """Why this visitor may not change run `name` now (checked again at the click, not just by the button)."""
    run = next((r for r in registry.all_runs() if r.name == name), None)
    if run is None:
        return f"Could not {verb} {name}: it no longer exists."
    allowed = registry.run_access(run)
    return None if allowed.can_change else f"Could not {verb} {name}: {allowed.reason}."


def forget_run(name: str, new_name: str | None = None) -> None:
    """Drop (or follow, for a rename) this session's references to a run that was deleted or renamed."""
    if st.session_state.get(registry.ACTIVE_MODEL_KEY) == ModelRef.run(name).key:
        if new_name is None:
            st.session_state.pop(registry.ACTIVE_MODEL_KEY, None)  # back to the default model
        else:
            st.session_state[registry.ACTIVE_MODEL_KEY] = ModelRef.run(new_name).key
    compared = st.session_state.get(COMPARE_KEY, [])
    st.session_state[COMPARE_KEY] = [new_name if n == name else n for n in compared if new_name or n != name]
    st.session_state["manage_run"] = new_name
    if new_name is None:
        st.session_state.pop("manage_run", None)


def do_delete(name: str) -> None:
    st.session_state.pop(DELETE_CONFIRM_KEY, None)
    problem = refusal(name, "delete")
    if problem is None:
        try:
            delete_run(runs_dir, name)
        except MnistError as exc:
            problem = f"Could not delete {name}: {exc}"
    if problem:
        st.session_state[DELETE_ERROR_KEY] = problem
        return
    forget_run(name)


def do_rename(name: str) -> None:
    new_name = (st.session_state.get(RENAME_KEY) or "").strip()
    problem = refusal(name, "rename")
    if problem is None and new_name == name:
        problem = f"{name} already has that name: type a new one."
    if problem is None:
        try:
            rename_run(runs_dir, name, new_name)
        except MnistError as exc:
            problem = f"Could not rename {name}: {exc}"
    if problem:
        st.session_state[DELETE_ERROR_KEY] = problem
        return
    st.session_state[RENAME_KEY] = ""
    forget_run(name, new_name)


def manage_controls(run) -> None:
    """Rename and delete, for the run's maker only; everyone else sees who made it and why not."""
    name, allowed = run.name, registry.run_access(run)
    if not allowed.can_change:
        st.caption(f":material/lock: Made by {allowed.made_by}: you cannot rename or delete it ({allowed.reason}).")
        return
    with st.form("rename_run", border=False, enter_to_submit=True):
        st.text_input("New name", key=RENAME_KEY, placeholder=name, max_chars=100)
        st.form_submit_button("Rename", icon=":material/edit:", on_click=do_rename, args=(name,), width="stretch")
    if st.session_state.get(DELETE_CONFIRM_KEY) == name:
        st.warning(f"Delete `{name}`? Its folder and checkpoint are removed from disk.")
        yes, no = st.columns(2)
        yes.button("Yes, delete", type="primary", on_click=do_delete, args=(name,), width="stretch")
        no.button("Cancel", on_click=cancel_delete, width="stretch")
    else:
        st.button("Delete…", icon=":material/delete:", on_click=ask_delete, args=(name,), width="stretch")


def saved_runs() -> None:
    st.header("Saved runs")
    policy, policy_problem = registry.runs_policy()
    st.caption(f":material/group: {policy.description}")
    if limit := disk_budget.budget():
        st.caption(f":material/hard_drive: {disk_budget.policy_text(limit)}")
    if policy_problem:
        st.error(f"The server's run policy is misconfigured: {policy_problem}.")
    runs = registry.runs_list()
    if not runs:
        st.info("No saved runs yet. Every finished or stopped run is saved here.")  # its folder: the operator's log
        return
    st.dataframe(
        [run_row(r.name, r.record, registry.run_access(r).made_by) for r in runs],
        hide_index=True,
        width="stretch",
        column_config={
            "test accuracy %": st.column_config.NumberColumn(format="%.2f"),
            "lr": st.column_config.NumberColumn(format="%g"),
            "parameters": st.column_config.NumberColumn(format="localized"),
            "stopped early": st.column_config.CheckboxColumn("stopped", help="Stopped before its last epoch"),
        },
    )
    names = [r.name for r in runs]
    by_name = {r.name: r for r in runs}

    compare_col, manage_col = st.columns([2, 1], gap="large")
    with compare_col:
        if COMPARE_KEY not in st.session_state:
            st.session_state[COMPARE_KEY] = names[:2]
        st.session_state[COMPARE_KEY] = [n for n in st.session_state[COMPARE_KEY] if n in by_name]
        chosen = st.multiselect(
            "Compare runs",
            names,
            key=COMPARE_KEY,
            max_selections=MAX_COMPARED,
            placeholder="Choose runs",
            persist_state="session",  # kept while the visitor is on another page
        )
        if chosen:
            histories = {n: cached_history(str(by_name[n].path)) for n in chosen}
            st.plotly_chart(compare_figure(histories), key="compare")
            st.caption("A link that shows these curves:")
            st.code(share.link([RUNS_PARAM], {COMPARE_KEY: chosen}), language=None, wrap_lines=True)
    with manage_col:
        if st.session_state.get("manage_run") not in by_name:
            st.session_state["manage_run"] = names[0]
        name = st.selectbox("Manage a run", names, key="manage_run", persist_state="session")
        run = by_name[name]
        record = run.record
        st.caption(
            f"{record.model_text} · {record.metrics.accuracy_text(' test accuracy')} · {record.parameters:,} parameters"
            f" · made by {registry.run_access(run).made_by}"
        )
        if record.is_ensemble and (text := ensemble_text(record)):
            st.caption(text)
        key = run.ref.key
        is_active = st.session_state.get(registry.ACTIVE_MODEL_KEY) == key
        st.button(
            "Active model" if is_active else "Make it the active model",
            icon=":material/check:",
            disabled=is_active,
            on_click=registry.set_active_model,
            args=(key,),
            width="stretch",
        )
        try:
            weights = checkpoint_file_bytes(run.path)
        except MnistError as exc:
            st.error(str(exc))
        else:
            st.download_button(
                "Download model.safetensors",
                data=weights,
                file_name="model.safetensors",
                mime="application/octet-stream",
                icon=":material/download:",
                on_click="ignore",
                width="stretch",
                help="One file: the weights with the run's description embedded. Load it on the Sketch page.",
            )
        manage_controls(run)
        if DELETE_ERROR_KEY in st.session_state:
            st.error(st.session_state.pop(DELETE_ERROR_KEY))
    with st.expander(f"Training insight of {name}", icon=":material/visibility:"):
        insight_views.show_run_insight(run)
    ensemble_maker(runs)


def make_ensemble() -> None:
    """The Make the ensemble button's callback: the chosen runs' ensemble, measured and saved as a run."""
    chosen = list(st.session_state.get(ENSEMBLE_PICK_KEY) or [])
    name = (st.session_state.get(ENSEMBLE_NAME_KEY) or "").strip()
    state = dataset.get_data()
    try:
        if state.data is None:
            raise MnistError("it is measured on the MNIST test set, which is not available")
        members = [registry.get_checkpoint(ModelRef.run(n).key) for n in chosen]
        path = save_ensemble(members, state.data, runs_dir, name or None, owner)
    except MnistError as exc:
        st.session_state[ENSEMBLE_RESULT_KEY] = (False, f"Could not make the ensemble: {exc}.")
        return
    why = ensemble_text(registry.get_checkpoint(ModelRef.run(path.name).key).record)
    st.session_state[ENSEMBLE_RESULT_KEY] = (True, f"Saved the ensemble as `{path.name}`. {why}".rstrip())
    st.session_state[ENSEMBLE_PICK_KEY] = []
    st.session_state[ENSEMBLE_NAME_KEY] = ""
    st.session_state["manage_run"] = path.name


def ensemble_maker(runs) -> None:
    """Pick saved runs and save their ensemble (the mean of their probabilities) as a run of its own."""
    st.markdown("**Make an ensemble** of saved runs: it averages their probabilities and is saved as a run.")
    names = [r.name for r in runs]  # an ensemble chosen here adds its members
    st.session_state[ENSEMBLE_PICK_KEY] = [n for n in st.session_state.get(ENSEMBLE_PICK_KEY, []) if n in names]
    pick_col, name_col = st.columns([2, 1])
    chosen = pick_col.multiselect(
        "Runs to combine", names, key=ENSEMBLE_PICK_KEY, max_selections=MAX_MEMBERS, placeholder="Choose runs"
    )
    name_col.text_input("Ensemble name", key=ENSEMBLE_NAME_KEY, placeholder="optional: automatic")
    enough = len(chosen) >= MIN_MEMBERS
    if not enough:
        st.caption(
            f"Choose {MIN_MEMBERS} to {MAX_MEMBERS} runs (any architectures; an ensemble adds its members, "
            f"up to {MAX_MEMBERS} models in all)."
        )
    st.button(
        "Make the ensemble",
        icon=":material/stacks:",
        disabled=not enough,
        on_click=make_ensemble,
        key="make_ensemble",
        help="Measures it on the 10,000 test images (a second or two per run), then saves it; it is yours.",
    )
    if ENSEMBLE_RESULT_KEY in st.session_state:
        ok, message = st.session_state.pop(ENSEMBLE_RESULT_KEY)
        (st.success if ok else st.error)(message)


# --- the page ---------------------------------------------------------------------------------

session.page_setup()
open_shared_link()  # before any widget: the address's setup goes into the form
st.title("Train a model")
show_link_problems()
data_state = dataset.get_data()
if data_state.data is None:
    dataset.show_data_help(data_state)

form_col, run_col = st.columns([1.15, 1.6], gap="large")
with form_col:
    with st.container(border=True):
        st.header("New run")
        config_form(data_state.data is not None)
with run_col:
    st.header("Progress")
    run_panel()

st.divider()
saved_runs()
