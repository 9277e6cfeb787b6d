"""Sketch's inputs: the drawing canvas (with Clear and the stroke width's care) and the Picture tab."""

from __future__ import annotations

import numpy as np
import streamlit as st

from studio import picture
from studio.sketch_state import CAMERA_ON_KEY, PICTURE_CAMERA_KEY, PICTURE_UPLOAD_KEY, SketchState
from studio.views import CANVAS_SIZE

PICTURE_TYPES = ["png", "jpg", "jpeg", "webp"]
PICTURE_HINT = "A digit written in dark ink on light paper, large in the frame. One digit, or a number."
PICTURE_PREVIEW_WIDTH = 200  # pixels: the ink found in the picture, under its inputs


def clear_canvas() -> None:
    SketchState.of().clear_canvas()


def keep_drawing() -> None:
    """Before the canvas gets a new stroke width: hand it the drawing, in case it remounts (CANVAS_RESTORE_KEY)."""
    SketchState.of().keep_drawing()


def read_drawing(stroke_width: int):
    """The drawing as an RGBA array (None before the first stroke).

    The canvas is always rendered; st.session_state[CANVAS_OVERRIDE_KEY], when set, replaces
    what it returns (AppTest cannot draw on a component).
    """
    # Imported here: the component registers itself at import, which needs a running Streamlit app.
    from streamlit_drawable_canvas import st_canvas

    state = SketchState.of()
    if state.canvas_key not in st.session_state:
        # A canvas new to the server (first visit, back from another page): it reports nothing until the first
        # stroke, so a drawing handed to it would be ink the prediction knows nothing of.
        state.forget_drawing()
    result = st_canvas(
        stroke_width=stroke_width,
        stroke_color="#FFFFFF",
        background_color="#000000",
        width=CANVAS_SIZE,
        height=CANVAS_SIZE,
        drawing_mode="freedraw",
        update_streamlit=True,  # send the drawing after every stroke: no button to press
        return_image_data=True,
        initial_drawing=state.restore,
        key=state.canvas_key,
    )
    state.drawing = result.json_data
    override = state.canvas_override
    if override is not None:
        return np.asarray(override)
    return result.image_data


def on_picture_upload() -> None:
    given = st.session_state.get(PICTURE_UPLOAD_KEY)
    if given is None:
        picture.forget_picture()  # removed: Picture shows its inputs again
    else:
        picture.take_picture(given.name, given.getvalue())


def on_camera_photo() -> None:
    photo = st.session_state.get(PICTURE_CAMERA_KEY)
    if photo is None:
        picture.forget_picture()
    else:
        picture.take_picture("Your photo", photo.getvalue())


def show_picture_input() -> picture.Picture | None:
    """The Picture tab: a file or a camera photo, then the ink found in it (or why it cannot be read)."""
    st.file_uploader(
        "Upload a picture of a digit (PNG or JPEG)",
        type=PICTURE_TYPES,
        key=PICTURE_UPLOAD_KEY,
        on_change=on_picture_upload,
        help=PICTURE_HINT,
    )
    if st.toggle("Use the camera", key=CAMERA_ON_KEY):
        st.camera_input("Take a photo of a digit on paper", key=PICTURE_CAMERA_KEY, on_change=on_camera_photo)
    given = picture.current_picture()
    if given is None:
        st.caption(PICTURE_HINT)
    elif given.error is not None:
        st.error(given.error)
    else:
        st.image(
            given.ink,
            width=PICTURE_PREVIEW_WIDTH,
            caption=f"The ink found in {given.name}",
            alt=f"The ink found in {given.name}, white on black",
        )
    return given
