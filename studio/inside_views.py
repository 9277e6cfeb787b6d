"""Sketch's "Inside the model" views: feature maps, filters, the digit map with neighbours, fool the model.

`show_inside(key, drawing)` is called by the Sketch fragment after the prediction, on every stroke. The
views are off until the visitor switches them on (a first-time visitor's stroke must stay cheap), and
each view chosen in the pills is computed only while chosen; one st.container(key=...) per view. The digit
map and the neighbour index come from studio.background: the page shows their progress and never waits.
Open the page with ?inside=on to have every view on from the start (bench/stroke_cpu.py --inside).
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import math

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image
from plotly.colors import hex_to_rgb, sequential
from torch import nn

from mnist.attack import AttackResult, fool
from mnist.constants import NUM_CLASSES
from mnist.digit_map import DigitMap
from mnist.errors import MnistError
from mnist.inside import Filters, LayerActivation, extract_filters, inspect_drawing
from mnist.preprocess import CanvasImage, preprocess_canvas
from studio import background, dataset, explain, registry
from studio.charts import DIGIT_PALETTE, _layout, probabilities_figure
from studio.views import a_digit, image_alt, upscale

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
GAP = 1  # pixels between tiles, in the grid's own scale
FILTER_PIXELS = 36  # a 3x3 or 5x5 kernel shown this large
FILTERS_WIDTH = 480  # px in the page
MAP_IMAGE_PX = 300  # a layer's grid of feature maps is shown about this wide
POLL_SECONDS = 1.0  # how often a pending background computation's progress is redrawn
MAP_HEIGHT = 460  # px
MAP_STEPS = 10_000  # map coordinates are sent as int16 steps of the map's span (map_units)
MARKER_SIZE = 4  # px, a test image's dot on the map
NEIGHBOUR_SCALE = 3  # 28x28 training images shown at 84x84
SELECTED_SCALE = 4
STAR_NAME = "your drawing"  # the map's trace of the drawing
# The drawing's marker: white with a black edge and five times a test point's size, so that it stands out on
# every digit's colour (the accent-orange star with a thin white edge got lost among the light-blue 5s).
STAR_SIZE = 26  # px
STAR_EDGE = 3  # px
MAP_FIGURE_KEY = "inside_map_figure"  # (model identity, this session's map figure, each trace's test indices)
PNG_LEVEL = 1  # zlib level: these images are a few KB, encoding speed matters more (on every stroke)
# Images are sent at their own size and enlarged by the browser without smoothing: enlarging them here
# made their PNG encoding most of a stroke's cost (15 ms for the last layer's grid at 4x, 1 ms at 1x).
# Images of a stroke are inlined in one st.html each (data: URIs), not st.image's media files: the browser
# fetched each of those with an HTTP request the server answered, 14 requests per stroke with every view on.
GALLERY_CSS = (
    "<style>.inside-gallery {display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start;}"
    ".inside-gallery figure {margin: 0;} .inside-gallery img {image-rendering: pixelated; display: block;}"
    ".inside-gallery figcaption {font-size: 0.8rem; opacity: 0.7; max-width: 22rem;}</style>"
)
FOOL_RESULT_KEY = "fool_result"  # (drawing digest, AttackResult) of the last attack
FOOL_REQUEST_KEY = "fool_requested"  # set by the button's callback: attack on this run
BUDGETS = {  # norm -> (label, minimum, maximum, default, step), on the [0, 1] pixel scale
    "linf": ("L∞: no pixel changes by more than", 0.02, 0.5, 0.2, 0.01),
    "l2": ("L2: total change (Euclidean norm over the 784 pixels) at most", 0.2, 8.0, 2.0, 0.1),
}
NORM_LABELS = {"linf": "L∞ (every pixel a little)", "l2": "L2 (a few pixels more)"}
CHANGE_GAIN = 0.5  # the change shown as 0.5 + 0.5 * delta / max|delta|: grey is no change
SEQUENTIAL = sequential.Viridis  # activations: >= 0 after ReLU
DIVERGING = sequential.RdBu_r  # weights and signed maps: blue negative, red positive


# --- colour ----------------------------------------------------------------------------------


def colour_table(scale: list[str], size: int = 256) -> np.ndarray:
    """(size, 3) uint8 lookup table interpolating a plotly colour list (hex or rgb() strings)."""
    stops = np.array([parse_colour(c) for c in scale], np.float32)
    at = np.linspace(0, 1, len(stops))
    x = np.linspace(0, 1, size)
    return np.stack([np.interp(x, at, stops[:, c]) for c in range(3)], 1).round().astype(np.uint8)


def parse_colour(colour: str) -> tuple[int, int, int]:
    if colour.startswith("#"):
        return hex_to_rgb(colour)
    return tuple(int(float(v)) for v in colour[colour.index("(") + 1 : -1].split(",")[:3])


SEQUENTIAL_LUT = colour_table(SEQUENTIAL)
DIVERGING_LUT = colour_table(DIVERGING)


def lut_indices(values: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """(..., ) floats in [0, 1] -> (..., ) uint8 indices into a lookup table of at most 256 colours."""
    return (np.clip(values, 0, 1) * (len(lut) - 1)).astype(np.uint8)


def colourise(values: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """(..., ) floats in [0, 1] -> (..., 3) uint8 through a lookup table."""
    return lut[lut_indices(values, lut)]


def scale_each(values: np.ndarray, signed: bool) -> np.ndarray:
    """(C, H, W) -> [0, 1] per channel: 0..max for >= 0 maps, symmetric around 0.5 for signed ones."""
    flat = values.reshape(len(values), -1)
    if signed:
        peak = np.abs(flat).max(1).clip(min=1e-8)[:, None, None]
        return 0.5 + 0.5 * values / peak
    peak = flat.max(1).clip(min=1e-8)[:, None, None]
    return values / peak


def tile(images: np.ndarray, columns: int | None = None, background: float = 0.0) -> np.ndarray:
    """(C, H, W) -> one (rows*(H+GAP)-GAP, cols*(W+GAP)-GAP) grid, row by row."""
    count, h, w = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = np.full((rows * (h + GAP) - GAP, columns * (w + GAP) - GAP), background, np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        grid[r * (h + GAP) : r * (h + GAP) + h, c * (w + GAP) : c * (w + GAP) + w] = image
    return grid


def enlarge(rgb: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of an (H, W, 3) image."""
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)


# --- images of a model -------------------------------------------------------------------------


def activation_image(layer: LayerActivation) -> np.ndarray:
    """One layer's activations as an RGB grid at one pixel per value: every channel of a conv layer (C, H, W),
    or a hidden linear layer's units (U,) as a square-ish grid of one-pixel cells."""
    return colourise(*activation_grid(layer))


def activation_png(layer: LayerActivation) -> tuple[bytes, int]:
    """activation_image as a paletted PNG (the same pixels, a third of the encoding time and about half the
    bytes of an RGB one: on every stroke), and its width in pixels."""
    grid, lut = activation_grid(layer)
    return palette_png(lut_indices(grid, lut), lut), grid.shape[1]


def activation_grid(layer: LayerActivation) -> tuple[np.ndarray, np.ndarray]:
    """activation_image's grid of values in [0, 1], and the lookup table that colours it."""
    if layer.kind == "conv":
        signed = bool((layer.values < 0).any())  # lenet-dropout's maps are raw conv outputs, before ReLU
        grid = tile(scale_each(layer.values, signed), background=0.5 if signed else 0.0)
    else:
        units = layer.values
        side = math.ceil(math.sqrt(len(units)))
        cells = np.zeros(side * side, np.float32)
        cells[: len(units)] = units
        signed = bool((units < 0).any())
        grid = scale_each(cells.reshape(1, side, side), signed)[0]
    return grid, DIVERGING_LUT if signed else SEQUENTIAL_LUT


def gallery(images: list[tuple[bytes, int, str]]) -> str:
    """HTML of (png, width in px, caption) figures in a wrapping row (GALLERY_CSS), images inlined."""
    figures = "".join(
        f'<figure><img width="{width}" alt="{html.escape(caption)}" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode()}"><figcaption>{html.escape(caption)}'
        "</figcaption></figure>"
        for png, width, caption in images
    )
    return f'<div class="inside-gallery">{figures}</div>'


def png_bytes(rgb: np.ndarray) -> bytes:
    """An (H, W, 3) uint8 image as PNG, encoded fast (st.image would encode an array at level 6)."""
    return encode_png(Image.fromarray(rgb))


def palette_png(indices: np.ndarray, lut: np.ndarray) -> bytes:
    """An (H, W) uint8 image of indices into `lut` ((N <= 256, 3) uint8 colours) as a paletted PNG."""
    image = Image.fromarray(indices, mode="P")
    image.putpalette(lut.tobytes())
    return encode_png(image)


def encode_png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=PNG_LEVEL)
    return out.getvalue()


def layer_caption(layer: LayerActivation) -> str:
    shape = " × ".join(map(str, layer.shape))
    what = "channels" if layer.kind == "conv" else "units"
    return f"layer {layer.name} · {' → '.join(layer.stages)} · {shape} ({layer.shape[0]} {what})"


def filters_image(filters: Filters) -> np.ndarray:
    """The first layer's kernels (out, in, k, k; the inputs averaged) or a linear layer's (units, 28, 28)
    weights as one RGB grid on a diverging scale, each kernel scaled to its own largest |weight|."""
    weights = filters.weights.mean(1) if filters.kind == "conv" else filters.weights
    grid = tile(scale_each(weights, signed=True), background=0.5)
    factor = max(1, FILTER_PIXELS // weights.shape[-1])
    return enlarge(colourise(grid, DIVERGING_LUT), factor)


@st.cache_resource(show_spinner=False, max_entries=8)
def cached_filters_image(identity: str, _model: nn.Module) -> tuple[bytes, int, str, str]:
    """The filters' PNG (built once per model: the weights never change), its width, caption and explanation."""
    filters = extract_filters(_model)
    shape = " × ".join(map(str, filters.weights.shape))
    if filters.kind == "conv":
        caption = f"layer {filters.name}: {filters.total_units} kernels ({shape}), red positive, blue negative"
    else:
        caption = f"layer {filters.name}: each of {filters.total_units} units' weights on the 28×28 pixels ({shape})"
    rgb = filters_image(filters)
    kernel = filters.weights.shape[-1] if filters.kind == "conv" else None
    text = explain.filters_text(filters.total_units, kernel, filters.kind)
    return png_bytes(rgb), min(FILTERS_WIDTH, rgb.shape[1] * 2), caption, text


# --- the digit map --------------------------------------------------------------------------


@st.cache_resource(show_spinner=False, max_entries=8)
def base_map_figure(identity: str, _digit_map: DigitMap) -> tuple[go.Figure, list[np.ndarray]]:
    """The map's test points, one WebGL trace per true digit, mistakes ringed; and each trace's test indices.

    Built once per model: a stroke only copies it and adds the drawing's marker (typed arrays keep the
    copy and its JSON to about a millisecond each).
    """
    m = _digit_map
    xy = map_units(m.coords, m.coords)
    fig = go.Figure()
    indices = []
    for digit in range(NUM_CLASSES):
        where = np.flatnonzero(m.labels == digit).astype(np.int32)
        indices.append(where)
        fig.add_trace(
            go.Scattergl(
                x=xy[where, 0],
                y=xy[where, 1],
                mode="markers",
                name=str(digit),
                marker=dict(size=MARKER_SIZE, color=DIGIT_PALETTE[digit], opacity=0.75),
                customdata=where.astype(np.int16),  # the prediction too would add 20 KB to every stroke
                hovertemplate="test #%{customdata}: a " + str(digit) + " (ringed if the model is wrong)<extra></extra>",
            )
        )
    wrong = np.flatnonzero(m.mistakes).astype(np.int32)
    indices.append(wrong)
    fig.add_trace(
        go.Scattergl(
            x=xy[wrong, 0],
            y=xy[wrong, 1],
            mode="markers",
            name=f"mistakes ({len(wrong)})",
            marker=dict(size=9, symbol="circle-open", color="#ff4b4b", line=dict(width=2)),
            customdata=np.stack([wrong, m.labels[wrong], m.predictions[wrong]], 1).astype(np.int16),
            hovertemplate="test #%{customdata[0]}: a %{customdata[1]}, read as %{customdata[2]}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[0.0],
            y=[0.0],  # moved to the drawing's place on every stroke (place_drawing)
            mode="markers",
            name=STAR_NAME,
            marker=dict(size=STAR_SIZE, symbol="star", color="white", line=dict(color="black", width=STAR_EDGE)),
            hovertemplate="your drawing<extra></extra>",
        )
    )
    _layout(fig, MAP_HEIGHT, None)
    fig.update_layout(hovermode="closest", dragmode="pan", legend=dict(y=1.0, yanchor="bottom", x=0, xanchor="left"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x")
    return fig, indices


def map_units(coords: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Map coordinates (N, 2) as int16 steps of the reference coordinates' span, 0..MAP_STEPS.

    The figure is sent on every stroke: int16 instead of float32 halves its 10,000 points' bytes, and the
    axes are hidden (only distances on the map mean something), so the units do not show.
    """
    low = reference.min(0)
    span = max(float((reference.max(0) - low).max()), 1e-8)
    return np.round((coords - low) / span * MAP_STEPS).clip(-MAP_STEPS, 2 * MAP_STEPS).astype(np.int16)


def session_map_figure(identity: str, digit_map: DigitMap) -> tuple[go.Figure, list[np.ndarray]]:
    """This session's copy of the model's map figure, made once: a stroke only moves its star.

    Copying the 10,000-point figure costs ~10 ms (plotly validates every trace); moving one marker, 0.1 ms.
    Only this session's script thread touches it, one run at a time.
    """
    held = st.session_state.get(MAP_FIGURE_KEY)
    if held is None or held[0] != identity:
        base, indices = base_map_figure(identity, digit_map)
        held = (identity, go.Figure(base), indices)
        st.session_state[MAP_FIGURE_KEY] = held
    return held[1], held[2]


def place_drawing(fig: go.Figure, where: np.ndarray) -> go.Figure:
    """The map with its star (the last trace) at the drawing's place `where` (2,)."""
    fig.data[-1].update(x=[float(where[0])], y=[float(where[1])])
    return fig


def selected_test_index(event, indices: list[np.ndarray]) -> int | None:
    """The test image of the point clicked on the map (None: none, or the drawing's marker)."""
    points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else []
    points = points or getattr(getattr(event, "selection", None), "points", None) or []
    for point in points:
        curve, at = point.get("curve_number"), point.get("point_index")
        if curve is not None and at is not None and curve < len(indices) and at < len(indices[curve]):
            return int(indices[curve][at])
    return None


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


def show_inside(key: str, drawing) -> None:
    """The chosen views of the model `key` for the canvas's RGBA `drawing` (or None), if show_toggle is on."""
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
    model = registry.inside_model(key)  # the CPU copy: these views are batch-1 work
    record = registry.get_checkpoint(key).record
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
        "filters": lambda: show_filters(key, model),
        "digit-map": lambda: show_digit_map(key, inspection),
        "fool-the-model": lambda: show_fool(model, image, inspection.prediction),
    }
    for view in chosen or []:
        with st.container(key=view, border=True):
            renderers[view]()


def kernel_size(model: nn.Module, name: str) -> int | None:
    """The side of a conv layer's square kernel (3 for 3x3), None when the layer has none."""
    size = getattr(dict(model.named_modules()).get(name), "kernel_size", None)
    return size[0] if isinstance(size, tuple) else size


def feature_maps_explanation(activations: list[LayerActivation], model: nn.Module) -> str:
    """The paragraph under the feature maps, with this drawing's numbers (studio.explain)."""
    conv = [a for a in activations if a.kind == "conv"]
    if not conv:
        hidden = activations[0].values if activations else np.zeros(0)
        return explain.hidden_units_text(len(hidden), int((hidden > 0).sum()))
    layers = [
        (a.name, a.shape[0], kernel_size(model, a.name), a.stages, explain.strongest_channel(a.values)) for a in conv
    ]
    return explain.feature_maps_text(layers)


def show_feature_maps(activations: list[LayerActivation], model: nn.Module) -> None:
    conv = [a for a in activations if a.kind == "conv"]
    layers = conv or activations  # a linear-only model (mlp): its hidden units
    st.markdown("**Feature maps**: what each layer computes for your drawing")
    if conv:
        st.caption("Every channel of every conv layer, each scaled to its own peak (bright: strongly active).")
    else:
        st.caption("This model has no conv layers: each hidden unit's activation, one cell per unit.")
    figures = []
    for layer in layers:
        png, width = activation_png(layer)
        figures.append((png, shown_width(width), layer_caption(layer)))
    st.html(gallery(figures))
    st.caption(feature_maps_explanation(activations, model))


def shown_width(pixels: int) -> int:
    """Page width (px) of an image `pixels` wide: enlarged a whole number of times to about MAP_IMAGE_PX."""
    return pixels * max(1, round(MAP_IMAGE_PX / pixels))


def show_filters(key: str, model: nn.Module) -> None:
    st.markdown("**Filters**: the first layer's learned weights")
    png, width, caption, text = cached_filters_image(registry.model_identity(key), model)
    st.html(gallery([(png, width, caption)]))
    st.caption(text)


def show_digit_map(key: str, inspection) -> None:
    features, prediction = inspection.features, inspection.prediction
    state = dataset.get_data()
    if state.data is None:
        st.info("The digit map and the nearest training images need MNIST (see Train or Explore).")
        return
    map_task = background.digit_map_task(key, state.data)
    index_task = background.neighbours_task(key, state.data)
    left, right = st.columns([3, 2], gap="medium")
    with left:
        st.markdown("**Digit map**: the 10,000 test images as the model sees them")
        if map_task.ready:
            show_map(key, map_task.result, features, state.data)
            st.caption(explain.digit_map_text(prediction, float(inspection.probabilities[prediction])))
        else:
            show_pending(map_task, "computing the map…")
    with right, st.container(key="neighbours"):
        st.markdown("**Nearest training images** in the model's feature space")
        if index_task.ready:
            show_neighbours(index_task.result, features, state.data, prediction)
        else:
            show_pending(index_task, "computing the training images' features…")
    pending = [t for t in (map_task, index_task) if not t.finished.is_set()]
    if pending:
        poll(pending)


def show_pending(task: background.Task, what: str) -> None:
    if task.error is not None:
        st.error(f"Could not compute this: {task.error}")
        return
    st.info(f"{what} ({task.progress:.0%})", icon=":material/hourglass_top:")
    st.caption("In the background, once per model; it appears here when ready, you can keep drawing.")


@st.fragment(run_every=POLL_SECONDS)
def poll(tasks: list[background.Task]) -> None:
    """Reruns alone while the tasks compute; reruns the page once one of them has finished."""
    if any(t.finished.is_set() for t in tasks):
        st.rerun()


def show_map(key: str, digit_map: DigitMap, features: np.ndarray, data) -> None:
    fig, indices = session_map_figure(registry.model_identity(key), digit_map)
    event = st.plotly_chart(
        place_drawing(fig, map_units(digit_map.place(features)[None], digit_map.coords)[0]),
        key="digit_map_chart",
        on_select="rerun",
        selection_mode="points",
        config={"displayModeBar": False, "scrollZoom": True},
    )
    st.caption(
        f"Coloured by true digit, the model's mistakes ringed in red, your drawing the star. A neighbour-graph "
        f"layout of the penultimate features ({digit_map.method}); hover for a point, click to see its image."
    )
    chosen = selected_test_index(event, indices)
    if chosen is not None:
        label, predicted = int(digit_map.labels[chosen]), int(digit_map.predictions[chosen])
        st.image(
            upscale(data.test_images[chosen], SELECTED_SCALE),
            caption=f"test #{chosen}: a {label}, read as {predicted} ({digit_map.confidences[chosen]:.0%})",
            alt=image_alt("test image", chosen, label, predicted, float(digit_map.confidences[chosen])),
        )


def show_neighbours(index, features: np.ndarray, data, prediction: int) -> None:
    nearest = index.nearest(features)
    figures = []
    for n in nearest:
        gray = np.repeat(data.train_images[n.index].numpy()[..., None], 3, axis=2)  # (28, 28, 3) uint8
        figures.append((png_bytes(gray), 28 * NEIGHBOUR_SCALE, f"{a_digit(n.label)} · distance {n.distance:.2f}"))
    st.html(gallery(figures))
    labels = [n.label for n in nearest]
    top = max(set(labels), key=labels.count)
    st.caption(f"{labels.count(top)} of {len(nearest)} are {top}s (training image #{nearest[0].index} is nearest).")
    st.caption(explain.neighbours_text(labels, prediction))


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
