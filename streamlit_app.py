"""MNIST Studio: train a digit classifier, explore the data and its mistakes, sketch digits live.

Run with `streamlit run streamlit_app.py`. MNIST is read from $MNIST_DATA_DIR, else ./data (downloaded
there when missing and online); saved runs go to $MNIST_RUNS_DIR, else ./runs.
"""

import os
from pathlib import Path

# Before torch loads: idle OpenMP threads sleep instead of spinning. A shared server runs training and
# many sessions' predictions at once on few cores; spinning threads made a fast-preset training step
# 5x slower and prediction p99 10x worse there (bench/predict_latency.py, measured under load).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import streamlit as st

from mnist import machine
from mnist.errors import MnistError

# Also before torch loads: its threads (and numpy's BLAS) sized to the CPUs this host gives us, not the
# CPUs it shows (a 1-CPU container on a 16-core host would otherwise train and predict on 16 threads).
try:
    machine.limit_thread_env()
except MnistError as exc:  # the operator's MNIST_CPUS or MNIST_MEMORY_MB is not a number
    st.error(f"This server is misconfigured: {exc}.")
    st.stop()

from studio import canvas_style, guide, remembered, session, sidebar, visitor

machine.size_torch_threads()  # once per process; torch is loaded by now

# A local image, served by the app itself: a :material/...: page icon is fetched from fonts.gstatic.com,
# and every request to another origin tells it the page's address (which may carry ?visitor=).
PAGE_ICON = Path(__file__).resolve().parent / "studio" / "assets" / "page-icon.png"
st.set_page_config(page_title="MNIST Studio", page_icon=str(PAGE_ICON), layout="wide")
canvas_style.style_page()  # every page: phone header, focus rings, no mode bar on touch
session.init_session()
remembered.sync_session(visitor.owner_id())  # before any widget: a new tab starts as the last one left off

navigation = st.navigation(
    [
        st.Page("pages/sketch.py", title="Sketch", icon=":material/draw:", default=True),
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/explore.py", title="Explore", icon=":material/query_stats:"),
    ]
)
with st.sidebar:
    st.markdown("### :material/draw: MNIST Studio")
guide.show()  # a first visitor's four steps, under the title (the sidebar is folded away on a phone)
sidebar.show()
navigation.run()
