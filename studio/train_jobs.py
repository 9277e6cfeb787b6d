"""The Train page's live panel: the visitor's runs, the one being watched (live while it trains), seed groups."""

from __future__ import annotations

import streamlit as st

from mnist.jobs import DONE, FAILED, QUEUED, RUNNING, STOPPED
from mnist.records import ModelRef
from mnist.runs import load_history
from mnist.train import History
from studio import explain, guide, insight_views, job_pool, registry, visitor
from studio.charts import DEFAULT_SMOOTHING, epoch_figure, lr_figure, step_loss_figure
from studio.train_state import JOB_KEY, LOSS_SMOOTHING_KEY, RUN_PICK_KEY
from studio.views import format_duration, queue_text, training_progress

REFRESH_SECONDS = 1.0  # the live panel reruns (alone) this often while a run is queued or training
STATE_LABELS = {QUEUED: "queued", RUNNING: "training", DONE: "finished", STOPPED: "stopped", FAILED: "failed"}


def my_jobs():
    """This session's runs, newest first."""
    manager = job_pool.job_manager()
    return sorted(manager.jobs_for(visitor.owner_id()), key=lambda j: j.created, reverse=True)


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
    manager = job_pool.job_manager()
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
        smoothing = st.session_state.get(LOSS_SMOOTHING_KEY, DEFAULT_SMOOTHING)
        st.plotly_chart(step_loss_figure(history.steps, smoothing), key="live_step_loss")
        st.plotly_chart(epoch_figure(history.epochs), key="live_epochs")
        if text := curves_text(history):
            st.caption(text)
        st.plotly_chart(lr_figure(history.steps), key="live_lr")
        st.caption(explain.learning_rate_text(job.config.scheduler, job.config.lr))
        st.slider(
            "Loss smoothing (EMA)", 0.0, 0.99, DEFAULT_SMOOTHING, 0.01, key=LOSS_SMOOTHING_KEY, persist_state="session"
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
    ref = ModelRef.run(run_name)
    if st.session_state.get(registry.ACTIVE_MODEL_KEY) == ref:
        st.caption(f"Saved as `{run_name}` · the active model for Sketch and Explore.")
    else:
        st.button(label, icon=icon, on_click=registry.set_active_model, args=(ref,), key=key)


@st.fragment(run_every=REFRESH_SECONDS)
def live_job(job_id: str) -> None:
    """Reruns on its own every second while the run is queued or training, then hands back to the page."""
    manager = job_pool.job_manager()
    render_job(job_id)
    job = manager.get(job_id)
    if job is None or job.is_finished:
        st.rerun()  # the whole page: the new run joins the history and the sidebar's model list


def show_seed_group(group) -> None:
    """One line about a seeds group: how far it is, its saved ensemble, or why there is none."""
    n = len(group.jobs)
    if group.state == DONE:
        name = group.run_dir.name
        record = registry.get_checkpoint(ModelRef.run(name)).record
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
    manager = job_pool.job_manager()
    groups = manager.groups_for(visitor.owner_id())
    for group in sorted(groups, key=lambda g: g.id, reverse=True)[:3]:  # the latest few
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
        index=ids.index(st.session_state[JOB_KEY]),
        key=key,
        format_func=lambda i: labels.get(i, i),
        on_change=lambda: st.session_state.update({JOB_KEY: st.session_state[key]}),
    )


def run_panel() -> None:
    manager = job_pool.job_manager()
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
    if st.session_state.get(JOB_KEY) not in labels:  # a new session (a reload, a second tab)
        st.session_state[JOB_KEY] = first_to_watch(jobs).id
    if len(jobs) > 1:
        choose_run_to_watch(labels)
    job = manager.get(st.session_state[JOB_KEY])
    if job.is_finished:
        render_job(job.id)
    else:
        live_job(job.id)


@st.cache_data(show_spinner=False, max_entries=64)
def cached_history(path: str) -> History:
    return load_history(path)  # runs never change once saved
