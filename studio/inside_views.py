"""Sketch's "Inside the model" views: feature maps, filters, the digit map with neighbours, fool the model.

`show_inside(ref, drawing)` is called by the Sketch fragment after the prediction, on every stroke. The
views are off until the visitor switches them on (a first-time visitor's stroke must stay cheap), and
each view chosen in the pills is computed only while chosen; one st.container(key=...) per view. Feature
maps and filters are drawn by studio.inside_maps, the digit map and neighbours by studio.inside_digit_map
(their background computations never make a stroke wait); Fool the model is here.
Open the page with ?inside=on to have every view on from the start (bench/stroke_cpu.py --inside).
"""

from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st
from torch import nn

from mnist.attack import AttackResult, fool
from mnist.constants import NUM_CLASSES
from mnist.errors import MnistError
from mnist.inside import inspect_drawing
from mnist.preprocess import CanvasImage, preprocess_canvas
from mnist.records import ModelRef
from studio import explain, registry
from studio.charts import probabilities_figure
from studio.inside_digit_map import SELECTED_SCALE, show_digit_map
from studio.inside_maps import DIVERGING_LUT, GALLERY_CSS, colourise, enlarge, show_feature_maps, show_filters
from studio.views import a_digit, upscale

TOGGLE_KEY = "inside_on"
VIEWS_KEY = "inside_views"
QUERY_PARAM = "inside"  # ?inside=on: every view on from the first run
QUERY_ON = ("1", "on", "all", "true")
VIEWS = {  # container key -> label
    "feature-maps": "Feature maps",
    "filters": "Filters",
    "digit-map": "Digit map & neighbours",
    "fool-the-model": "Fool the model",
}
FOOL_RESULT_KEY = "fool_result"  # (drawing digest, AttackResult) of the last attack
FOOL_REQUEST_KEY = "fool_requested"  # set by the button's callback: attack on this run
BUDGETS = {  # norm -> (label, minimum, maximum, default, step), on the [0, 1] pixel scale
    "linf": ("L∞: no pixel changes by more than", 0.02, 0.5, 0.2, 0.01),
    "l2": ("L2: total change (Euclidean norm over the 784 pixels) at most", 0.2, 8.0, 2.0, 0.1),
}
NORM_LABELS = {"linf": "L∞ (every pixel a little)", "l2": "L2 (a few pixels more)"}
CHANGE_GAIN = 0.5  # the change shown as 0.5 + 0.5 * delta / max|delta|: grey is no change


# --- the views ------------------------------------------------------------------------------


def show_toggle() -> bool:
    """The views' on/off switch, and whether they are on.

    Sketch shows it under the canvas, whose height is fixed: below the views' column it sank out of sight as the
    prediction column above it grew.
    """
    if TOGGLE_KEY not in st.session_state:
        st.session_state[TOGGLE_KEY] = st.query_params.get(QUERY_PARAM, "").lower() in QUERY_ON
    return st.toggle(
        "Inside the model",
        key=TOGGLE_KEY,
        help="What each layer computes for your drawing, the first layer's filters, where the drawing lands "
        "among the 10,000 test images, its nearest training images, and a change that fools the model.",
    )


def show_inside(ref: ModelRef, drawing) -> None:
    """The chosen views of the model `ref` names for the canvas's RGBA `drawing` (or None), if show_toggle is on."""
    if not st.session_state.get(TOGGLE_KEY):
        return
    st.html(GALLERY_CSS)
    chosen = st.pills(
        "Views", list(VIEWS), format_func=VIEWS.get, selection_mode="multi", default=list(VIEWS), key=VIEWS_KEY
    )
    image = None if drawing is None else preprocess_canvas(drawing)
    if image is None or image.pixels is None:
        st.caption("Draw a digit to see inside the model.")
        return
    model = registry.inside_model(ref)  # the CPU copy: these views are batch-1 work
    record = registry.get_checkpoint(ref).record
    if record.is_ensemble:
        first = record.members[0]
        st.caption(
            f":material/info: The active model is an {record.model_text}: these views show its first member, "
            f"{first.arch} (run {first.name}), which reads this drawing on its own."
        )
    try:
        inspection = inspect_drawing(model, image)
    except MnistError as exc:
        st.error(str(exc))
        return
    renderers = {
        "feature-maps": lambda: show_feature_maps(inspection.activations, model),
        "filters": lambda: show_filters(ref, model),
        "digit-map": lambda: show_digit_map(ref, inspection),
        "fool-the-model": lambda: show_fool(model, image, inspection.prediction),
    }
    for view in chosen or []:
        with st.container(key=view, border=True):
            renderers[view]()


# --- fool the model ---------------------------------------------------------------------------


def drawing_digest(image: CanvasImage) -> str:
    return hashlib.sha1(image.pixels.tobytes()).hexdigest()


def show_fool(model: nn.Module, image: CanvasImage, prediction: int) -> None:
    st.markdown("**Fool the model**: the smallest change that makes it read another digit")
    # Required: a click on the chosen digit no longer deselects it, which greyed out the button without a word.
    target = st.segmented_control("Target digit", list(range(NUM_CLASSES)), default=3, required=True, key="fool_target")
    norm_col, budget_col = st.columns([1, 2], vertical_alignment="bottom")
    with norm_col:
        norm = st.radio("Budget", list(NORM_LABELS), format_func=NORM_LABELS.get, key="fool_norm")
    label, low, high, default, step = BUDGETS[norm]
    with budget_col:
        budget = st.slider(label, low, high, default, step, key=f"fool_budget_{norm}")
    st.button(
        "Fool the model",
        icon=":material/auto_fix_high:",
        on_click=st.session_state.__setitem__,
        args=(FOOL_REQUEST_KEY, True),
        key="fool_go",
    )
    if st.session_state.pop(FOOL_REQUEST_KEY, False) and target is not None:
        try:
            result = fool(model, image, int(target), float(budget), norm)
        except MnistError as exc:
            st.error(str(exc))
            return
        st.session_state[FOOL_RESULT_KEY] = (drawing_digest(image), result)
    found = st.session_state.get(FOOL_RESULT_KEY)
    if found is None or found[0] != drawing_digest(image):
        st.caption(f"The model reads {a_digit(prediction)}. Choose a target and press the button (about a second).")
        return
    show_attack(found[1])


def change_image(result: AttackResult) -> np.ndarray:
    """The perturbation amplified to the full scale: grey no change, red added ink, blue removed."""
    peak = max(result.linf, 1e-8)
    return colourise(0.5 + CHANGE_GAIN * result.perturbation / peak, DIVERGING_LUT)


def show_attack(result: AttackResult) -> None:
    size = f"largest pixel change {result.linf:.3f}, L2 size {result.l2:.2f}"
    if result.steps == 0:
        st.info(f"The model already reads {a_digit(result.target)}: choose another target digit.")
        return
    if result.success:
        st.success(f"After {result.steps} steps the model reads {a_digit(result.target)} ({size}).")
    else:
        best = result.probabilities[result.target]
        st.warning(
            f"The budget is not enough: the best change found gives {result.target} only {best:.0%} and the "
            f"model still reads {a_digit(result.prediction)}. Allow a larger change."
        )
    st.caption(explain.fool_text(result.target, result.linf, result.l2, result.success))
    original, change, adversarial, probs = st.columns([1, 1, 1, 1.6])
    scale = SELECTED_SCALE * 2
    first = int(result.original_probabilities.argmax())
    original.image(upscale(result.original, scale), caption=f"original: {first}", alt=f"Your drawing, read as {first}")
    change.image(
        enlarge(change_image(result), scale),
        caption=f"the change, amplified ({size})",
        alt="The change, amplified: red where ink was added, blue where it was removed, grey unchanged",
    )
    adversarial.image(
        upscale(result.adversarial, scale),
        caption=f"result: the model reads {result.prediction}",
        alt=f"Your drawing with the change, read as {result.prediction}",
    )
    with probs:
        st.plotly_chart(
            probabilities_figure(result.probabilities), key="fool_probabilities", config={"displayModeBar": False}
        )
