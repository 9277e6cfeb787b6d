"""Sketch: draw a digit, see the model's prediction after every stroke, and why it made it."""

from __future__ import annotations

import time

import numpy as np
import streamlit as st

from mnist import verdict
from mnist.compare import reread
from mnist.device import available_devices
from mnist.ensemble import first_member, members_of
from mnist.errors import MnistError
from mnist.predict import LIVE_IG_STEPS, predict_tensor, saliency_map
from mnist.preprocess import CanvasImage
from mnist.verdict import FALLBACK, Calibration, Reading
from studio import (
    background,
    canvas_style,
    compare,
    dataset,
    explain,
    guide,
    inside_views,
    picture,
    registry,
    session,
    sketch_state,
    uploads,
)
from studio.charts import probabilities_figure
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
CANVAS_VERSION_KEY = "canvas_version"  # bumped by Clear: a new canvas key remounts an empty canvas
TOOLBAR_CAPTION = "Above the canvas: ↶ Undo the last stroke · ↷ Redo it. Clear starts over."
# streamlit-drawable-canvas 0.13 keeps Undo's history across a new width, but resets it whenever it is handed a
# drawing (initial_drawing), which this page must do at each width change (CANVAS_RESTORE_KEY): it has no way to
# hand back the history itself.
STROKE_HINT = "A new width keeps the drawing, but Undo then starts from it: the canvas component forgets its history."
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
# The input: the canvas (Draw) or a picture (Picture), as tabs; the open tab is what the model reads. Only the
# open tab's widgets are made (lazy tabs), so the camera asks for permission only once Picture is opened; the
# canvas is made in both, so the drawing is still there on the way back.
INPUT_TAB_KEY = canvas_style.INPUT_TABS_KEY  # its phone layout: studio.page_css
DRAW_TAB, PICTURE_TAB = "Draw", "Picture"
PICTURE_UPLOAD_KEY = "picture_upload"
PICTURE_CAMERA_KEY = "picture_camera"
CAMERA_ON_KEY = "picture_camera_on"  # the camera is opened on demand: a visitor who uploads is never asked
PICTURE_TYPES = ["png", "jpg", "jpeg", "webp"]
PICTURE_HINT = "A digit written in dark ink on light paper, large in the frame. One digit, or a number."
PICTURE_PREVIEW_WIDTH = 200  # pixels: the ink found in the picture, under its inputs


def clear_canvas() -> None:
    st.session_state[CANVAS_VERSION_KEY] = st.session_state.get(CANVAS_VERSION_KEY, 0) + 1
    st.session_state.pop(sketch_state.CANVAS_OVERRIDE_KEY, None)
    forget_drawing()


def forget_drawing() -> None:
    st.session_state.pop(CANVAS_DRAWING_KEY, None)
    st.session_state.pop(CANVAS_RESTORE_KEY, None)


def keep_drawing() -> None:
    """Before the canvas gets a new stroke width: hand it the drawing, in case it remounts (CANVAS_RESTORE_KEY)."""
    st.session_state[CANVAS_RESTORE_KEY] = st.session_state.get(CANVAS_DRAWING_KEY)


def canvas_key() -> str:
    return f"canvas_{st.session_state.get(CANVAS_VERSION_KEY, 0)}"


def read_drawing(stroke_width: int):
    """The drawing as an RGBA array (None before the first stroke).

    The canvas is always rendered; st.session_state[sketch_state.CANVAS_OVERRIDE_KEY], when set, replaces
    what it returns (AppTest cannot draw on a component).
    """
    # Imported here: the component registers itself at import, which needs a running Streamlit app.
    from streamlit_drawable_canvas import st_canvas

    if canvas_key() not in st.session_state:
        # A canvas new to the server (first visit, back from another page): it reports nothing until the first
        # stroke, so a drawing handed to it would be ink the prediction knows nothing of.
        forget_drawing()
    result = st_canvas(
        stroke_width=stroke_width,
        stroke_color="#FFFFFF",
        background_color="#000000",
        width=CANVAS_SIZE,
        height=CANVAS_SIZE,
        drawing_mode="freedraw",
        update_streamlit=True,  # send the drawing after every stroke: no button to press
        return_image_data=True,
        initial_drawing=st.session_state.get(CANVAS_RESTORE_KEY),
        key=canvas_key(),
    )
    st.session_state[CANVAS_DRAWING_KEY] = result.json_data
    override = st.session_state.get(sketch_state.CANVAS_OVERRIDE_KEY)
    if override is not None:
        return np.asarray(override)
    return result.image_data


def json_uploader_key() -> str:
    return f"{UPLOAD_JSON_KEY}_{st.session_state.get(UPLOAD_JSON_VERSION_KEY, 0)}"


def on_weights_upload() -> None:
    """A new weights file: load it, without the .json that went with the previous weights."""
    meta = st.session_state.get(json_uploader_key())
    if meta is not None and meta.file_id == st.session_state.get(UPLOAD_PAIRED_KEY):
        # That .json described the weights this file replaces: kept, it would be refused as another run's.
        st.session_state[UPLOAD_JSON_VERSION_KEY] = st.session_state.get(UPLOAD_JSON_VERSION_KEY, 0) + 1
    on_upload()


def on_upload() -> None:
    """Validate the uploaded weights (with the .json, if one is uploaded) and make them the active model."""
    st.session_state.pop(UPLOAD_ERROR_KEY, None)
    st.session_state.pop(UPLOAD_OK_KEY, None)
    weights = st.session_state.get(UPLOAD_WIDGET_KEY)
    meta = st.session_state.get(json_uploader_key())
    if weights is None:
        return  # removed, or a .json before its weights: the model in use stays
    if not weights.name.lower().endswith(".safetensors"):
        st.session_state[UPLOAD_ERROR_KEY] = uploads.wrong_file_text(weights.name)
        return
    st.session_state[UPLOAD_PAIRED_KEY] = meta.file_id if meta is not None else None
    try:
        key = registry.add_upload(weights.getvalue(), meta.getvalue() if meta is not None else None, weights.name)
    except MnistError as exc:
        st.session_state[UPLOAD_ERROR_KEY] = f"{weights.name} cannot be used. {uploads.refusal_text(exc)}"
        return
    record = registry.model_choices()[key].record
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
            key=json_uploader_key(),
            on_change=on_upload,
            help="MNIST Studio's downloads carry their description: they need no .json.",
        )
        if UPLOAD_ERROR_KEY in st.session_state:
            st.error(st.session_state[UPLOAD_ERROR_KEY])
        if UPLOAD_OK_KEY in st.session_state:
            st.success(st.session_state[UPLOAD_OK_KEY])
        devices = available_devices()
        if st.session_state.get("sketch_device") not in devices:
            st.session_state["sketch_device"] = devices[-1]  # cpu: a single drawing gains nothing from a GPU
        st.selectbox("Device for predictions", devices, key="sketch_device")


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


def read_calibration(key: str) -> tuple[Calibration, bool]:
    """The not-a-digit check's calibration for the model, and whether it is ready (else FALLBACK meanwhile).

    Computed once per model in the background (a stored one loads at once; a new run's takes ~20 s).
    """
    task = background.calibration_task(key)
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


def explain_probabilities(key: str, digit: int, confidence: float) -> None:
    """Under the probabilities chart: what its line means and, for a model trained with label smoothing, why it
    is rarely very sure (studio.explain)."""
    st.caption(explain.probabilities_text(digit, confidence, CONFIDENCE_THRESHOLD))
    smoothing = registry.get_checkpoint(key).record.config.label_smoothing
    if text := explain.label_smoothing_text(smoothing, confidence):
        st.caption(text)


def compare_drawing(key: str, reading: Reading, names: dict[str, str], device: str) -> None:
    """The second-model menu and, when one is chosen, its reading of the same drawing beside the active one's.

    The second model rereads the drawing's groups as the first reading cut them (mnist.compare.reread): no
    second preprocessing, and no second saliency map."""
    other = compare.show_picker(names, key)
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
        compare.reading_answer(names[key], reading, CONFIDENCE_THRESHOLD),
        compare.reading_answer(names[other], second, CONFIDENCE_THRESHOLD),
    )


def show_prediction(key: str, label: str, array, names: dict[str, str], what: str = "drawing") -> None:
    """The verdict on `array` (the canvas's drawing or a picture's ink: `what`), its details and the comparison."""
    device = st.session_state.get("sketch_device", "cpu")
    try:
        model = registry.model_on_device(key, device)
        calibration, calibrated = read_calibration(key)
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
        compare.show_picker(names, key)
        return
    guide.mark_done(guide.Step.DRAW)
    note = "" if calibrated else " · not-a-digit check still calibrating for this model"
    st.caption(f"{label} · {device} · {elapsed_ms:.0f} ms{note}")
    if len(reading.groups) > 1:
        show_digits(reading)
        compare_drawing(key, reading, names, device)
        return
    group = reading.groups[0]
    st.plotly_chart(
        probabilities_figure(group.probabilities, CONFIDENCE_THRESHOLD, height=PROBABILITIES_HEIGHT),
        key="probabilities",
        config={"displayModeBar": False},
    )
    explain_probabilities(key, group.digit, group.confidence)
    compare_drawing(key, reading, names, device)
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


def show_test_image(key: str | None, label: str | None, index: int, names: dict[str, str]) -> None:
    """MNIST test image `index` as the input instead of the drawing (set by Explore: sketch_state.SKETCH_IMAGE_KEY).

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
            on_click=st.session_state.pop,
            args=(sketch_state.SKETCH_IMAGE_KEY, None),
        )
    with right:
        hidden_heading("The model's answer")
        if key is None:
            with st.container(key="prediction"):
                st.info("No model yet: train one on the Train page (about 20 s) or upload a checkpoint below.")
        if key is None or not known:
            return
        image = mnist_input(data.test_images[index])
        try:
            model = registry.model_on_device(key, st.session_state.get("sketch_device", "cpu"))
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
        explain_probabilities(key, digit, probabilities[digit])
        first = compare.probabilities_answer(names[key], text, probabilities)
        compare_test_image(key, first, image, int(data.test_labels[index]), names)
        why, _ = st.columns(2)
        why.image(
            saliency_overlay(image.pixels, saliency, PREVIEW_SCALE),
            caption=why_caption(model, digit),
            alt=saliency_alt(digit),
        )


def compare_test_image(key: str, first: compare.Answer, image: CanvasImage, truth: int, names: dict[str, str]) -> None:
    """The second-model menu and, when one is chosen, both models' answers for the test image, with its label."""
    other = compare.show_picker(names, key)
    if other is None:
        return
    try:
        model = registry.model_on_device(other, st.session_state.get("sketch_device", "cpu"))
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
def sketch(key: str | None, label: str | None, names: dict[str, str]) -> None:
    """Canvas, its controls and the prediction that follows the drawing.

    A fragment: a stroke, the stroke-width slider and Clear rerun only this function, not the sidebar
    or the rest of the page (a whole-page rerun cost about 3x the CPU per stroke: bench/stroke_cpu.py).
    A change of model or device is a full rerun, which calls it again with the new key and label.
    """
    if sketch_state.SKETCH_IMAGE_KEY in st.session_state:  # a test image opened from Explore
        show_test_image(key, label, st.session_state[sketch_state.SKETCH_IMAGE_KEY], names)
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
        if key is not None:
            inside_views.show_toggle()  # under the canvas, whose height is fixed: it stays in sight
    what = "picture" if picture_tab.open else "drawing"
    array = (given.ink if given is not None else None) if picture_tab.open else drawing
    with right:
        hidden_heading("The model's answer")
        if key is None:
            with st.container(key="prediction"):
                st.info("No model yet: train one on the Train page (about 20 s) or upload a checkpoint below.")
        elif array is None:
            with st.container(key="prediction"):
                ask_for_input(what)
            compare.show_picker(names, key)
        else:
            show_prediction(key, label, array, names, what)
    if key is not None:  # after the prediction, full width: a view never delays the heading
        inside_views.show_inside(key, array)


session.page_setup()
st.title("Sketch a digit")
choices = registry.model_choices()
key = registry.active_model_key(choices)

sketch(key, None if key is None else choices[key].label, {k: choice.where for k, choice in choices.items()})
# Outside the fragment: an upload or another device changes the model, which the sidebar shows too.
_, settings = st.columns(COLUMNS, gap="large")
with settings:
    model_settings(expanded=key is None)
