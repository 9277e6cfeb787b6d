"""Sketch's Inside view "Digit map & neighbours": where the drawing lands among the 10,000 test images as the
model sees them, and its nearest training images in the model's feature space.

The digit map and the neighbour index come from studio.background: the view shows their progress and never
waits (poll reruns the page once one is ready).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from mnist.constants import NUM_CLASSES
from mnist.digit_map import DigitMap
from mnist.records import ModelRef
from studio import background, dataset, explain, registry
from studio.charts import DIGIT_PALETTE, _layout
from studio.inside_maps import gallery, png_bytes
from studio.views import a_digit, image_alt, upscale

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


def show_digit_map(ref: ModelRef, inspection) -> None:
    features, prediction = inspection.features, inspection.prediction
    state = dataset.get_data()
    if state.data is None:
        st.info("The digit map and the nearest training images need MNIST (see Train or Explore).")
        return
    map_task = background.digit_map_task(ref, state.data)
    index_task = background.neighbours_task(ref, state.data)
    left, right = st.columns([3, 2], gap="medium")
    with left:
        st.markdown("**Digit map**: the 10,000 test images as the model sees them")
        if map_task.ready:
            show_map(ref, map_task.result, features, state.data)
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


def show_map(ref: ModelRef, digit_map: DigitMap, features: np.ndarray, data) -> None:
    fig, indices = session_map_figure(registry.model_identity(ref), digit_map)
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
