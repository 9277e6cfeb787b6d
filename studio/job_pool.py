"""The training pool: one JobManager per process, shared by every session."""

from __future__ import annotations

import functools
import logging

import streamlit as st

from mnist.errors import MnistError
from mnist.jobs import DEFAULT_REQUESTS_PER_OWNER, Fairness, JobManager
from studio.dataset import data_root, training_data
from studio.registry import runs_dir
from studio.visitor import presence

log = logging.getLogger(__name__)


@st.cache_resource(show_spinner=False)
def _job_manager(root: str, runs_dir: str) -> JobManager:
    load = functools.partial(training_data, root)
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
