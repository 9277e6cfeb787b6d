"""The MNIST data set, loaded once per process and shared by every session; what to do when it is missing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from mnist.data import DATA_DIR_ENV, DEFAULT_DATA_DIR, MnistData, default_data_dir, load_mnist, mnist_available
from mnist.errors import DataNotFoundError, MnistError


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


def training_data(root: str) -> MnistData:
    """For the JobManager's threads: the cached data set, or DataNotFoundError."""
    state = _load_data(root, mnist_available(root))
    if state.data is None:
        raise DataNotFoundError(state.error or f"MNIST not found in {root}")
    return state.data
