"""Sketch's model settings: the visitor's own checkpoint (weights, and a meta.json when needed) and the device."""

from __future__ import annotations

import streamlit as st

from mnist.device import available_devices
from mnist.errors import MnistError
from studio import registry, uploads
from studio.sketch_state import (
    DEVICE_KEY,
    UPLOAD_ERROR_KEY,
    UPLOAD_OK_KEY,
    UPLOAD_PAIRED_KEY,
    UPLOAD_WIDGET_KEY,
    SketchState,
)


def on_weights_upload() -> None:
    """A new weights file: load it, without the .json that went with the previous weights."""
    meta = st.session_state.get(SketchState.of().json_uploader_key)
    if meta is not None and meta.file_id == st.session_state.get(UPLOAD_PAIRED_KEY):
        # That .json described the weights this file replaces: kept, it would be refused as another run's.
        SketchState.of().empty_json_uploader()
    on_upload()


def on_upload() -> None:
    """Validate the uploaded weights (with the .json, if one is uploaded) and make them the active model."""
    st.session_state.pop(UPLOAD_ERROR_KEY, None)
    st.session_state.pop(UPLOAD_OK_KEY, None)
    weights = st.session_state.get(UPLOAD_WIDGET_KEY)
    meta = st.session_state.get(SketchState.of().json_uploader_key)
    if weights is None:
        return  # removed, or a .json before its weights: the model in use stays
    if not weights.name.lower().endswith(".safetensors"):
        st.session_state[UPLOAD_ERROR_KEY] = uploads.wrong_file_text(weights.name)
        return
    st.session_state[UPLOAD_PAIRED_KEY] = meta.file_id if meta is not None else None
    try:
        ref = registry.add_upload(weights.getvalue(), meta.getvalue() if meta is not None else None, weights.name)
    except MnistError as exc:
        st.session_state[UPLOAD_ERROR_KEY] = f"{weights.name} cannot be used. {uploads.refusal_text(exc)}"
        return
    record = registry.model_choices()[ref].record
    used = f"{weights.name} with {meta.name}" if meta is not None else weights.name
    model = f"{record.model_text}, {record.metrics.accuracy_text(' test accuracy')}"
    st.session_state[UPLOAD_OK_KEY] = f"Loaded {used}: {model}. It is now the active model (see the sidebar)."


def model_settings(expanded: bool) -> None:
    with st.expander("Model, device and your own checkpoint", icon=":material/tune:", expanded=expanded):
        st.caption("Pick the model in the sidebar: the bundled one, any run trained on the Train page, or an upload.")
        st.file_uploader(
            "Upload a checkpoint (model.safetensors)",
            type=["safetensors"],
            key=UPLOAD_WIDGET_KEY,
            on_change=on_weights_upload,
            help="The file from Download model.safetensors on the Train page. A new file replaces the old one.",
        )
        st.file_uploader(
            "Its meta.json (only for weights saved without their description)",
            type=["json"],
            key=SketchState.of().json_uploader_key,
            on_change=on_upload,
            help="MNIST Studio's downloads carry their description: they need no .json.",
        )
        if UPLOAD_ERROR_KEY in st.session_state:
            st.error(st.session_state[UPLOAD_ERROR_KEY])
        if UPLOAD_OK_KEY in st.session_state:
            st.success(st.session_state[UPLOAD_OK_KEY])
        devices = available_devices()
        state = SketchState.of()
        if state.device not in devices or DEVICE_KEY not in st.session_state:
            state.device = devices[-1]  # cpu: a single drawing gains nothing from a GPU
        st.selectbox("Device for predictions", devices, key=DEVICE_KEY)
