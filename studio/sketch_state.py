"""The Sketch page's session state: each key named once, read and written through SketchState.

Test seam: AppTest cannot draw on the canvas component, so the Sketch page reads its drawing through
studio.sketch_input.read_drawing, which uses the array stored under CANVAS_OVERRIDE_KEY in st.session_state
instead of the canvas when that key is set (any (H, W) or (H, W, 1|3|4) image array).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import streamlit as st

CANVAS_OVERRIDE_KEY = "sketch_canvas_override"  # tests: an image array used instead of the drawing
SKETCH_IMAGE_KEY = "sketch_test_image"  # an MNIST test index: Sketch shows that image instead of the canvas
DEVICE_KEY = "sketch_device"  # the device predictions run on (studio/remembered.py keeps it)
CANVAS_VERSION_KEY = "canvas_version"  # bumped by Clear: a new canvas key remounts an empty canvas
CANVAS_DRAWING_KEY = "canvas_drawing"  # the drawing (fabric.js JSON) the canvas last reported
# The drawing passed back to the canvas as its initial_drawing, taken at each stroke-width change. A new width
# changes the component's data, and two changes in quick succession race in Streamlit's component loader: the
# canvas is disposed and mounted anew, empty, without telling the server. Given the drawing, it comes back.
CANVAS_RESTORE_KEY = "canvas_restore"
UPLOAD_WIDGET_KEY = "checkpoint_upload"  # the weights: one .safetensors file, a new one replaces it
# The optional meta.json has an uploader of its own, whose key carries a version: bumping it empties it.
UPLOAD_JSON_KEY = "checkpoint_upload_json"
UPLOAD_JSON_VERSION_KEY = "checkpoint_upload_json_version"
UPLOAD_PAIRED_KEY = "checkpoint_upload_paired_json"  # file_id of the .json the last weights were tried with
UPLOAD_ERROR_KEY = "checkpoint_upload_error"
UPLOAD_OK_KEY = "checkpoint_upload_ok"
PICTURE_UPLOAD_KEY = "picture_upload"
PICTURE_CAMERA_KEY = "picture_camera"
CAMERA_ON_KEY = "picture_camera_on"  # the camera is opened on demand: a visitor who uploads is never asked
COMPARE_KEY = "compare_with"  # the session's second model (studio.compare): a ModelRef; absent or "" means off


@dataclass
class SketchState:
    """Typed access to the Sketch page's keys in a session's state (st.session_state, or any mapping)."""

    store: MutableMapping[str, Any]

    @classmethod
    def of(cls) -> SketchState:
        return cls(st.session_state)

    @property
    def device(self) -> str:
        return self.store.get(DEVICE_KEY, "cpu")

    @device.setter
    def device(self, value: str) -> None:
        self.store[DEVICE_KEY] = value

    @property
    def canvas_version(self) -> int:
        return self.store.get(CANVAS_VERSION_KEY, 0)

    @property
    def canvas_key(self) -> str:
        """The canvas widget's key: a new one after Clear."""
        return f"canvas_{self.canvas_version}"

    @property
    def canvas_override(self) -> Any | None:
        return self.store.get(CANVAS_OVERRIDE_KEY)

    @property
    def test_image(self) -> int | None:
        """The MNIST test index opened from Explore, shown instead of the canvas; None for the drawing."""
        return self.store.get(SKETCH_IMAGE_KEY)

    @test_image.setter
    def test_image(self, index: int | None) -> None:
        if index is None:
            self.store.pop(SKETCH_IMAGE_KEY, None)
        else:
            self.store[SKETCH_IMAGE_KEY] = index

    @property
    def drawing(self) -> Any | None:
        return self.store.get(CANVAS_DRAWING_KEY)

    @drawing.setter
    def drawing(self, value: Any | None) -> None:
        self.store[CANVAS_DRAWING_KEY] = value

    @property
    def restore(self) -> Any | None:
        return self.store.get(CANVAS_RESTORE_KEY)

    def clear_canvas(self) -> None:
        """Clear: a new, empty canvas, and no test drawing in its place."""
        self.store[CANVAS_VERSION_KEY] = self.canvas_version + 1
        self.store.pop(CANVAS_OVERRIDE_KEY, None)
        self.forget_drawing()

    def forget_drawing(self) -> None:
        self.store.pop(CANVAS_DRAWING_KEY, None)
        self.store.pop(CANVAS_RESTORE_KEY, None)

    def keep_drawing(self) -> None:
        """Before the canvas gets a new stroke width: hand it the drawing, in case it remounts."""
        self.store[CANVAS_RESTORE_KEY] = self.drawing

    @property
    def json_uploader_key(self) -> str:
        return f"{UPLOAD_JSON_KEY}_{self.store.get(UPLOAD_JSON_VERSION_KEY, 0)}"

    def empty_json_uploader(self) -> None:
        self.store[UPLOAD_JSON_VERSION_KEY] = self.store.get(UPLOAD_JSON_VERSION_KEY, 0) + 1
