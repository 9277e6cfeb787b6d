"""Train's "training insight": per epoch, the confusion matrix, the first layer's filters and a fixed panel
of 16 test digits whose predictions change as the model learns (mnist.insight.EpochInsight).

`show_job_insight(events)`: a live or finished job's insight, from its EpochEvents, in the container keyed
`training-insight`. `show_run_insight(run)`: a saved run's, read from its insight.safetensors, in the
container keyed `run-insight` (both can be on the page at once: keys must differ).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from mnist.insight import INSIGHT_FILE, EpochInsight, load_insight
from mnist.runs import SavedRun
from mnist.train import EpochEvent
from studio import dataset, explain
from studio.charts import confusion_figure
from studio.inside_maps import filters_image
from studio.views import image_alt, upscale

CONFUSION_HEIGHT = 380  # px
PANEL_SCALE = 2  # the panel's 28x28 test digits shown at 56x56
PANEL_COLUMNS = 8
FILTERS_WIDTH = 320  # px


def insights_of(events: list) -> list[EpochInsight]:
    """The insight attached to a job's epoch events, in epoch order."""
    return [e.insight for e in events if isinstance(e, EpochEvent) and e.insight is not None]


@st.cache_resource(show_spinner=False, max_entries=16)
def cached_insight(path: str, mtime: int) -> list[EpochInsight]:
    # mtime is part of the key: a run renamed or replaced under the same name is read again.
    return load_insight(path)


def show_job_insight(events: list, prefix: str = "job") -> None:
    """The training-insight container of a job (live or finished); a note until its first epoch ends."""
    with st.container(key="training-insight", border=True):
        st.markdown("**Training insight**: inside the model after every epoch")
        insights = insights_of(events)
        if not insights:
            st.caption("Appears after the first epoch: the confusion matrix, the filters and 16 test digits.")
            return
        show_insight(insights, prefix)


def show_run_insight(run: SavedRun) -> None:
    """A saved run's training insight (runs trained before it existed have none: say so)."""
    path = Path(run.path)
    insight_file = path / INSIGHT_FILE
    mtime = insight_file.stat().st_mtime_ns if insight_file.is_file() else 0
    insights = cached_insight(str(path), mtime)
    with st.container(key="run-insight"):
        if not insights and run.record.is_ensemble:
            st.caption("An ensemble was not trained: see the training insight of each of its runs.")
            return
        if not insights:
            st.caption("This run has no saved training insight (it was trained before runs recorded it).")
            return
        show_insight(insights, f"run_{run.name}")


def show_insight(insights: list[EpochInsight], prefix: str) -> None:
    """Epoch slider, then confusion matrix | filters, then the panel of test digits."""
    if len(insights) > 1:
        epochs = [i.epoch for i in insights]
        # The range is part of the widget's identity: a new epoch of a live run moves the slider to it.
        epoch = st.select_slider("Epoch", epochs, value=epochs[-1], key=f"{prefix}_insight_epoch_{len(epochs)}")
        insight = insights[epochs.index(epoch)]
    else:
        insight = insights[0]
        st.caption(f"Epoch {insight.epoch}")
    # One above the other: the Train page's run panel is about 500 px wide, too narrow for two columns.
    st.plotly_chart(
        confusion_figure(insight.confusion, height=CONFUSION_HEIGHT),
        key=f"{prefix}_insight_confusion",
        config={"displayModeBar": False},
    )
    st.caption(f"{explain.confusion_text(insight.confusion, insight.epoch)} Mistakes are in red.")
    caption = filters_caption(insight)
    st.image(filters_image(insight.filters), caption=caption, width=FILTERS_WIDTH, alt=f"Filters: {caption}")
    show_panel(insight, len(insights))


def filters_caption(insight: EpochInsight) -> str:
    f = insight.filters
    shown = len(f.weights)
    what = "kernels" if f.kind == "conv" else "units' weights on the 28×28 pixels"
    of = f"{shown}" if shown == f.total_units else f"first {shown} of {f.total_units}"
    return f"First layer {f.name} after epoch {insight.epoch}: {of} {what} (red positive, blue negative)"


def show_panel(insight: EpochInsight, epochs: int) -> None:
    """The fixed test digits with this epoch's prediction and confidence; ✗ marks a wrong one."""
    data = dataset.get_data().data
    if data is None:
        return
    predictions = insight.panel_predictions
    confidence = insight.panel_probabilities.max(1)
    captions = [
        f"{'✓' if p == y else '✗'} {y} → {p} ({c:.0%})"
        for y, p, c in zip(insight.panel_labels, predictions, confidence, strict=True)
    ]
    images = [upscale(data.test_images[int(i)], PANEL_SCALE) for i in insight.panel_indices]
    alts = [
        image_alt("test image", int(i), int(y), int(p), float(c))
        for i, y, p, c in zip(insight.panel_indices, insight.panel_labels, predictions, confidence, strict=True)
    ]
    right = int((predictions == insight.panel_labels).sum())
    st.markdown(f"**{len(images)} test digits** (the first of each digit, then six hard ones): {right} right")
    st.caption(explain.panel_text(right, len(images), insight.epoch, epochs))
    for start in range(0, len(images), PANEL_COLUMNS):
        row = slice(start, start + PANEL_COLUMNS)
        st.image(images[row], caption=captions[row], alt=alts[row])
