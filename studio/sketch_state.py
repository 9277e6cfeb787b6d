"""The Sketch page's session state, named once.

Test seam: AppTest cannot draw on the canvas component, so the Sketch page reads its drawing through
`read_drawing` in pages/sketch.py, which uses the array stored under CANVAS_OVERRIDE_KEY in
st.session_state instead of the canvas when that key is set (any (H, W) or (H, W, 1|3|4) image array).
"""

from __future__ import annotations

CANVAS_OVERRIDE_KEY = "sketch_canvas_override"  # tests: an image array used instead of the drawing
SKETCH_IMAGE_KEY = "sketch_test_image"  # an MNIST test index: Sketch shows that image instead of the canvas
