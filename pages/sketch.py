"""Sketch: draw a digit, see the model's prediction after every stroke, and why it made it."""

from __future__ import annotations

import time

import streamlit as st

from mnist import verdict
from mnist.compare import reread
from mnist.ensemble import first_member, members_of
from mnist.errors import MnistError
from mnist.predict import LIVE_IG_STEPS, predict_tensor, saliency_map
from mnist.preprocess import CanvasImage
from mnist.records import ModelRef
from mnist.verdict import FALLBACK, Calibration, Reading
from studio import (
    background,
    canvas_style,
    compare,
    dataset,
    explain,
    guide,
    inside_views,
    registry,
    session,
)
from studio.charts import probabilities_figure
from studio.model_upload import model_settings
from studio.sketch_input import clear_canvas, keep_drawing, read_drawing, show_picture_input
from studio.sketch_state import SketchState
from studio.views import (
    CANVAS_SIZE,
    image_alt,
    input_alt,
    mnist_input,
    prediction_text,
    saliency_alt,
    saliency_overlay,
    sketch_image_caption,
    upscale,
    verdict_text,
)

CONFIDENCE_THRESHOLD = verdict.CONFIDENT  # below this the page says the model is unsure: one fact, the verdict's
CALIBRATION_WAIT_SECONDS = 1.0  # a stroke waits this long at most for a model's verdict calibration
DIGIT_PREVIEW_SCALE = 4  # each digit of a number shown at 112x112
PROBABILITIES_HEIGHT = 190  # pixels: on a phone the chart fits under the canvas with the verdict, in one screen
DIGIT_CHART_HEIGHT = 160  # pixels: one small probabilities chart per digit of a number
NOT_A_DIGIT_HINT = "Draw one digit, 0 to 9, as one shape, or several digits side by side with a gap between them."
DEFAULT_STROKE = 20  # canvas pixels; the digit is rescaled anyway, this looks like MNIST's pen
PREVIEW_SCALE = 8  # the 28x28 input shown at 224x224
COLUMNS = [1, 1.35]  # canvas | prediction, relative widths
TOOLBAR_CAPTION = "Above the canvas: ↶ Undo the last stroke · ↷ Redo it. Clear starts over."
# streamlit-drawable-canvas 0.13 keeps Undo's history across a new width, but resets it whenever it is handed a
# drawing (initial_drawing), which this page must do at each width change (CANVAS_RESTORE_KEY): it has no way to
# hand back the history itself.
STROKE_HINT = "A new width keeps the drawing, but Undo then starts from it: the canvas component forgets its history."
# The input: the canvas (Draw) or a picture (Picture), as tabs; the open tab is what the model reads. Only the
# open tab's widgets are made (lazy tabs), so the camera asks for permission only once Picture is opened; the
# canvas is made in both, so the drawing is still there on the way back.
INPUT_TAB_KEY = canvas_style.INPUT_TABS_KEY  # its phone layout: studio.page_css
DRAW_TAB, PICTURE_TAB = "Draw", "Picture"


def read_calibration(ref: ModelRef) -> tuple[Calibration, bool]:
    """The not-a-digit check's calibration for the model, and whether it is ready (else FALLBACK meanwhile).

    Computed once per model in the background (a stored one loads at once; a new run's takes ~20 s).
    """
    task = background.calibration_task(ref)
    task.wait(CALIBRATION_WAIT_SECONDS)  # a stored calibration is ready by then: no fallback flash
    return (task.result, True) if task.ready else (FALLBACK, False)


def saliency_of(model, image: CanvasImage, digit: int):
    """The saliency map of `digit`: an ensemble's first member's (through all members it cost 3x the
    server CPU of the rest of a stroke; bench/stroke_cpu.py with the bundled ensemble of 3)."""
    return saliency_map(first_member(model), image, target=digit, steps=LIVE_IG_STEPS)


def why_caption(model, digit: int) -> str:
    whose = "; the ensemble's first member" if len(members_of(model)) > 1 else ""
    return f"Why {digit}: pixels that pushed towards it glow (integrated gradients{whose})"


def hidden_heading(text: str) -> None:
    """A heading for screen readers only: the page's sections in order (h1 title, h2 sections, h3 verdict)."""
    st.markdown(f'<h2 class="sr-only">{text}</h2>', unsafe_allow_html=True)


def heading(reading: Reading) -> str:
    """The one line in the `prediction` container: Prediction: D (P%), Number: 17, Not a digit: a dot."""
    return verdict_text(reading, CONFIDENCE_THRESHOLD)


def explain_probabilities(ref: ModelRef, digit: int, confidence: float) -> None:
    """Under the probabilities chart: what its line means and, for a model trained with label smoothing, why it
    is rarely very sure (studio.explain)."""
    st.caption(explain.probabilities_text(digit, confidence, CONFIDENCE_THRESHOLD))
    smoothing = registry.get_checkpoint(ref).record.config.label_smoothing
    if text := explain.label_smoothing_text(smoothing, confidence):
        st.caption(text)


def compare_drawing(ref: ModelRef, reading: Reading, names: dict[ModelRef, str], device: str) -> None:
    """The second-model menu and, when one is chosen, its reading of the same drawing beside the active one's.

    The second model rereads the drawing's groups as the first reading cut them (mnist.compare.reread): no
    second preprocessing, and no second saliency map."""
    other = compare.show_picker(names, ref)
    if other is None or reading.empty:
        return
    try:
        model = registry.model_on_device(other, device)
        calibration, _ = read_calibration(other)
        second = reread(model, reading, calibration)
    except MnistError as exc:
        with st.container(key=compare.CONTAINER_KEY):
            st.error(f"{names[other]} cannot read this drawing: {exc}")
        return
    compare.show_comparison(
        compare.reading_answer(names[ref], reading, CONFIDENCE_THRESHOLD),
        compare.reading_answer(names[other], second, CONFIDENCE_THRESHOLD),
    )


def show_prediction(ref: ModelRef, label: str, array, names: dict[ModelRef, str], what: str = "drawing") -> None:
    """The verdict on `array` (the canvas's drawing or a picture's ink: `what`), its details and the comparison."""
    device = SketchState.of().device
    try:
        model = registry.model_on_device(ref, device)
        calibration, calibrated = read_calibration(ref)
        started = time.perf_counter()
        reading = verdict.read_drawing(model, array, calibration)
        elapsed_ms = (time.perf_counter() - started) * 1000
    except MnistError as exc:
        with st.container(key="prediction"):
            st.error(str(exc))
        return
    with st.container(key="prediction"):
        if reading.empty:
            ask_for_input(what)
        else:
            st.markdown(f"### {heading(reading)}")
            if reading.verdict == "not_a_digit":
                st.caption(NOT_A_DIGIT_HINT)
    if reading.empty:
        compare.show_picker(names, ref)
        return
    guide.mark_done(guide.Step.DRAW)
    note = "" if calibrated else " · not-a-digit check still calibrating for this model"
    st.caption(f"{label} · {device} · {elapsed_ms:.0f} ms{note}")
    if len(reading.groups) > 1:
        show_digits(reading)
        compare_drawing(ref, reading, names, device)
        return
    group = reading.groups[0]
    st.plotly_chart(
        probabilities_figure(group.probabilities, CONFIDENCE_THRESHOLD, height=PROBABILITIES_HEIGHT),
        key="probabilities",
        config={"displayModeBar": False},
    )
    if group.digit is not None:  # not a digit: no digit for the line's words
        explain_probabilities(ref, group.digit, group.confidence)
    compare_drawing(ref, reading, names, device)
    seen, why = st.columns(2)
    with seen:
        read = None if reading.verdict == "not_a_digit" else group.digit
        st.image(
            upscale(group.pixels, PREVIEW_SCALE),
            caption="What the model sees: 28×28, centred like MNIST",
            alt=input_alt(read, what),
        )
    if reading.verdict == "not_a_digit":
        return  # no digit to explain
    with why:
        try:
            saliency = saliency_of(model, CanvasImage(group.pixels), group.digit)
        except MnistError as exc:
            st.error(str(exc))
        else:
            st.image(
                saliency_overlay(group.pixels, saliency, PREVIEW_SCALE),
                caption=why_caption(model, group.digit),
                alt=saliency_alt(group.digit),
            )


def ask_for_input(what: str) -> None:
    """The `prediction` container's text before there is anything to read."""
    if what == "picture":
        st.markdown("### Give a picture")
        st.caption("Upload a picture or take a photo of a digit written on paper.")
    else:
        st.markdown("### Draw a digit")
        st.caption("Draw one digit, 0 to 9, on the black canvas. The prediction follows every stroke.")


def show_digits(reading: Reading) -> None:
    """Several digits: each one's crop as the model sees it, its reading and its ten probabilities."""
    count = len(reading.groups)
    for place, (column, group) in enumerate(zip(st.columns(count), reading.groups, strict=True), start=1):
        with column:
            what = "not sure" if group.verdict == "unsure" else ""
            st.image(
                upscale(group.pixels, DIGIT_PREVIEW_SCALE),
                caption=f"{group.digit} ({group.confidence:.0%}) {what}",
                alt=f"Digit {place} of {count} as the model sees it, read as {group.digit} at {group.confidence:.0%}",
            )
            st.plotly_chart(
                probabilities_figure(group.probabilities, CONFIDENCE_THRESHOLD, height=DIGIT_CHART_HEIGHT),
                config={"displayModeBar": False},
                key=f"probabilities_{group.box.left}",
            )


def close_test_image() -> None:
    SketchState.of().test_image = None


def show_test_image(ref: ModelRef | None, label: str | None, index: int, names: dict[ModelRef, str]) -> None:
    """MNIST test image `index` as the input instead of the drawing (set by Explore: SketchState.test_image).

    The model gets the image's own 28x28 pixels (views.mnist_input), so this is the prediction Explore
    lists for it; the heading, probabilities and saliency are the drawing's, through the page's helpers.
    """
    left, right = st.columns(COLUMNS, gap="large")
    data = dataset.get_data().data
    known = data is not None and 0 <= index < len(data.test_labels)
    with left:
        hidden_heading("The test image")
        if known:
            st.image(
                upscale(data.test_images[index], CANVAS_SIZE // 28),
                width=CANVAS_SIZE,
                alt=image_alt("MNIST test image", index, int(data.test_labels[index])),
            )
            st.caption(sketch_image_caption(index, int(data.test_labels[index])))
        else:
            st.warning(f"MNIST test image #{index} is not available here (is MNIST installed?).")
        st.button(
            "Back to drawing",
            icon=":material/draw:",
            on_click=close_test_image,
        )
    with right:
        hidden_heading("The model's answer")
        if ref is None:
            with st.container(key="prediction"):
                st.info("No model yet: train one on the Train page (about 20 s) or upload a checkpoint below.")
        if ref is None or not known:
            return
        image = mnist_input(data.test_images[index])
        try:
            model = registry.model_on_device(ref, SketchState.of().device)
            probs = predict_tensor(model, image.to_tensor())[0]
            saliency = saliency_of(model, image, int(probs.argmax()))
        except MnistError as exc:
            with st.container(key="prediction"):
                st.error(str(exc))
            return
        digit, probabilities = int(probs.argmax()), tuple(float(p) for p in probs)
        text = prediction_text(digit, probabilities[digit], probabilities, CONFIDENCE_THRESHOLD)
        with st.container(key="prediction"):
            st.markdown(f"### {text}")
        st.caption(label)
        st.plotly_chart(
            probabilities_figure(probabilities, CONFIDENCE_THRESHOLD, height=PROBABILITIES_HEIGHT),
            key="probabilities",
            config={"displayModeBar": False},
        )
        explain_probabilities(ref, digit, probabilities[digit])
        first = compare.probabilities_answer(names[ref], text, probabilities)
        compare_test_image(ref, first, image, int(data.test_labels[index]), names)
        why, _ = st.columns(2)
        why.image(
            saliency_overlay(image.pixels, saliency, PREVIEW_SCALE),
            caption=why_caption(model, digit),
            alt=saliency_alt(digit),
        )


def compare_test_image(
    ref: ModelRef, first: compare.Answer, image: CanvasImage, truth: int, names: dict[ModelRef, str]
) -> None:
    """The second-model menu and, when one is chosen, both models' answers for the test image, with its label."""
    other = compare.show_picker(names, ref)
    if other is None:
        return
    try:
        model = registry.model_on_device(other, SketchState.of().device)
        probs = tuple(float(p) for p in predict_tensor(model, image.to_tensor())[0])
    except MnistError as exc:
        with st.container(key=compare.CONTAINER_KEY):
            st.error(f"{names[other]} cannot read this image: {exc}")
        return
    digit = max(range(len(probs)), key=probs.__getitem__)
    text = prediction_text(digit, probs[digit], probs, CONFIDENCE_THRESHOLD)
    compare.show_comparison(first, compare.probabilities_answer(names[other], text, probs), truth)


def show_controls() -> int:
    """The stroke-width slider and Clear, side by side (on a phone too: studio.canvas_style); the width."""
    width, clear = st.columns([3, 1], vertical_alignment="bottom")
    with width:
        stroke = st.slider(
            "Stroke width",
            6,
            40,
            DEFAULT_STROKE,
            key="stroke_width",
            persist_state="session",
            on_change=keep_drawing,
            help=STROKE_HINT,
        )
    with clear:
        st.button("Clear", icon=":material/delete:", on_click=clear_canvas, width="stretch")
    return stroke


@st.fragment
def sketch(ref: ModelRef | None, label: str | None, names: dict[ModelRef, str]) -> None:
    """Canvas, its controls and the prediction that follows the drawing.

    A fragment: a stroke, the stroke-width slider and Clear rerun only this function, not the sidebar
    or the rest of the page (a whole-page rerun cost about 3x the CPU per stroke: bench/stroke_cpu.py).
    A change of model or device is a full rerun, which calls it again with the new model and label.
    """
    if (test_image := SketchState.of().test_image) is not None:  # a test image opened from Explore
        show_test_image(ref, label, test_image, names)
        return
    with st.container(key=canvas_style.SKETCH_LAYOUT_KEY):
        left, right = st.columns(COLUMNS, gap="large")
    with left:
        hidden_heading("Your drawing")
        canvas_style.style_canvas_toolbar()  # its toolbar always shown, above the canvas: the room is the canvas's
        draw_tab, picture_tab = st.tabs([DRAW_TAB, PICTURE_TAB], key=INPUT_TAB_KEY, on_change="rerun")
        with draw_tab:
            canvas_slot = st.container()
            with st.container(key=canvas_style.CONTROLS_KEY):
                stroke = show_controls()
            with canvas_slot:
                drawing = read_drawing(stroke)
            st.caption(TOOLBAR_CAPTION)
        given = None
        if picture_tab.open:
            with picture_tab:
                given = show_picture_input()
        if ref is not None:
            inside_views.show_toggle()  # under the canvas, whose height is fixed: it stays in sight
    what = "picture" if picture_tab.open else "drawing"
    array = (given.ink if given is not None else None) if picture_tab.open else drawing
    with right:
        hidden_heading("The model's answer")
        if ref is None:
            with st.container(key="prediction"):
                st.info("No model yet: train one on the Train page (about 20 s) or upload a checkpoint below.")
        elif array is None:
            with st.container(key="prediction"):
                ask_for_input(what)
            compare.show_picker(names, ref)
        else:
            show_prediction(ref, label, array, names, what)
    if ref is not None:  # after the prediction, full width: a view never delays the heading
        inside_views.show_inside(ref, array)


session.page_setup()
st.title("Sketch a digit", anchor=False)
choices = registry.model_choices()
ref = registry.active_model(choices)

sketch(ref, None if ref is None else choices[ref].label, {k: choice.where for k, choice in choices.items()})
# Outside the fragment: an upload or another device changes the model, which the sidebar shows too.
_, settings = st.columns(COLUMNS, gap="large")
with settings:
    model_settings(expanded=ref is None)
