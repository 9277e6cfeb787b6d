"""The sidebar: the device, MNIST's availability, the active model (selectable) and the training load."""

from __future__ import annotations

import sys

import streamlit as st

from mnist.data import mnist_available
from mnist.device import describe_device, resolve_device
from studio import disk_budget
from studio.dataset import data_root
from studio.job_pool import job_manager
from studio.registry import ACTIVE_MODEL_KEY, MODEL_GONE_KEY, active_model, model_choices, model_name, runs_dir
from studio.visitor import owner_id


@st.cache_resource(show_spinner=False)
def _device_text() -> str:
    return describe_device(resolve_device("auto"))


@st.cache_resource(show_spinner=False, max_entries=4)
def _announce_folders(root: str, runs: str) -> None:
    """Once per process (and folder pair): where MNIST and the saved runs are, on the command line."""
    print(f"MNIST Studio: MNIST folder {root}; saved runs in {runs}", file=sys.stderr, flush=True)


def show() -> None:
    """Device, MNIST availability, the active model (selectable) with its accuracy, training load."""
    choices = model_choices()
    active = active_model(choices)
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
                format_func=lambda ref: choices[ref].where if ref in choices else str(ref),  # the rest: the caption
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
