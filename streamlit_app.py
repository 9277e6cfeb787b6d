"""MNIST Studio: train a digit classifier, explore the data and its mistakes, sketch digits live.

Run with `streamlit run streamlit_app.py`. MNIST is read from $MNIST_DATA_DIR, else ./data (downloaded
there when missing and online); saved runs go to $MNIST_RUNS_DIR, else ./runs.
"""

import os

# Before torch loads: idle OpenMP threads sleep instead of spinning. A shared server runs training and
# many sessions' predictions at once on few cores; spinning threads made a fast-preset training step
# 5x slower and prediction p99 10x worse there (bench/predict_latency.py, measured under load).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import streamlit as st

from studio import common

st.set_page_config(page_title="MNIST Studio", page_icon=":material/draw:", layout="wide")
common.init_session()

navigation = st.navigation(
    [
        st.Page("pages/sketch.py", title="Sketch", icon=":material/draw:", default=True),
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/explore.py", title="Explore", icon=":material/query_stats:"),
    ]
)
with st.sidebar:
    st.markdown("### :material/draw: MNIST Studio")
common.sidebar()
navigation.run()
