"""Sketch's picture input: the last picture the visitor gave (a file or a camera photo), kept per session.

Read once, when it is given (mnist.photo.read_picture: a photo of paper -> white ink on black, like the
canvas), so that reruns of the page only show it. A file that is not a usable picture is kept as its plain
refusal, which the page shows; the drawing on the canvas is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from mnist.photo import PictureError, read_picture

PICTURE_KEY = "sketch_picture"


@dataclass(frozen=True, eq=False)  # holds an array: compared by identity
class Picture:
    """A picture the visitor gave: its ink as the canvas would hold it, or why it cannot be read."""

    name: str  # the file's name, or "your photo"
    ink: np.ndarray | None  # (H, W) uint8, white ink on black; None when refused
    error: str | None  # the plain refusal; None when read

    @property
    def usable(self) -> bool:
        return self.ink is not None


def read(name: str, data: bytes) -> Picture:
    """The picture's ink, or its refusal in plain words (never an exception)."""
    try:
        return Picture(name, read_picture(data), None)
    except PictureError as exc:
        return Picture(name, None, f"{name}: {exc}")


def take_picture(name: str, data: bytes) -> Picture:
    """Read `data` and make it the session's picture."""
    picture = read(name, data)
    st.session_state[PICTURE_KEY] = picture
    return picture


def current_picture() -> Picture | None:
    picture = st.session_state.get(PICTURE_KEY)
    return picture if isinstance(picture, Picture) else None


def forget_picture() -> None:
    st.session_state.pop(PICTURE_KEY, None)
