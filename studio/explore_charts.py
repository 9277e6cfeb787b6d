"""Explore's charts in Vega-Lite (Altair): pure functions from plain data to alt.Chart (no Streamlit here).

Vega-Lite, not Plotly, for two reasons. A point selection answers a single tap on a touch screen (Plotly
wants a hover, then a click: two taps), and Streamlit's Vega-Lite bundle is a fraction of Plotly's on the
wire (docs/pages.md). They render as SVG: every cell is an element with its own aria-label, so a screen
reader and a browser test can find it, and 100 cells are far below where SVG gets slow. The page gives each
chart its height (st.altair_chart's height), so the space is kept before the chart arrives.
"""

from __future__ import annotations

import math

import altair as alt
import numpy as np

from studio.charts import ACCENT, MUTED, TEST_COLOR, TRAIN_COLOR

CELL_SELECTION = "cell"  # the confusion matrix's point selection: Streamlit reports it under this name
TRUE_FIELD, PREDICTED_FIELD, COUNT_FIELD = "true digit", "predicted digit", "images"
CORRECT_FILL = "#3a4150"  # the diagonal: right answers, one quiet grey
NO_ERROR_FILL = "#1b1e26"
ERROR_RANGE = ["#5c2a2a", "#ff4b4b"]  # mistakes, on their own scale: a handful stays visible next to a thousand
CHOSEN_STROKE_PX = 3
CONFUSION_SIZE_PX = 330  # the matrix's side: fits a 390 px phone's column with the axes
EMBED = {"embedOptions": {"renderer": "svg"}}  # Streamlit reads the renderer from the spec's usermeta


def _svg(chart: alt.Chart) -> alt.Chart:
    return chart.properties(usermeta=EMBED)


def confusion_rows(confusion, selected: tuple[int | None, int | None] = (None, None)) -> list[dict]:
    """One row per cell: true digit, predicted digit, count, whether it is a mistake, whether the filter holds it.

    `selected` = (true, predicted), None meaning any: (4, None) holds the whole row of 4.
    """
    counts = np.asarray(confusion, dtype=np.int64)
    true_filter, predicted_filter = selected
    rows = []
    for true in range(counts.shape[0]):
        for predicted in range(counts.shape[1]):
            chosen = (true_filter is not None or predicted_filter is not None) and (
                true_filter in (None, true) and predicted_filter in (None, predicted)
            )
            count = int(counts[true, predicted])
            rows.append(
                {
                    TRUE_FIELD: true,
                    PREDICTED_FIELD: predicted,
                    COUNT_FIELD: count,
                    "mistakes": 0 if true == predicted else count,
                    "right": true == predicted,
                    "chosen": chosen,
                    "label": str(count) if count else "",  # empty cells stay quiet
                }
            )
    return rows


def confusion_chart(confusion, selected: tuple[int | None, int | None] = (None, None)) -> alt.LayerChart:
    """Confusion matrix (rows = true digit, columns = prediction): a tap on a cell selects it.

    The selection (CELL_SELECTION) carries the cell's true and predicted digit. The cells the current
    filter holds are outlined in the accent colour.
    """
    rows = confusion_rows(confusion, selected)
    n = int(np.asarray(confusion).shape[0])
    max_errors = max([1] + [r["mistakes"] for r in rows])
    pick = alt.selection_point(name=CELL_SELECTION, fields=[TRUE_FIELD, PREDICTED_FIELD], on="click", clear=False)
    digits = list(range(n))
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X(f"{PREDICTED_FIELD}:O", sort=digits, axis=alt.Axis(orient="top", labelAngle=0)),
        y=alt.Y(f"{TRUE_FIELD}:O", sort=digits),
    )
    fill = alt.condition(
        "datum.right",
        alt.value(CORRECT_FILL),
        alt.Color(
            "mistakes:Q",
            scale=alt.Scale(domain=[0, max_errors], range=[NO_ERROR_FILL, *ERROR_RANGE]),
            legend=None,
        ),
    )
    cells = base.mark_rect(cursor="pointer").encode(
        color=fill,
        stroke=alt.condition("datum.chosen", alt.value(ACCENT), alt.value(None)),
        strokeWidth=alt.condition("datum.chosen", alt.value(CHOSEN_STROKE_PX), alt.value(0)),
        tooltip=[f"{TRUE_FIELD}:O", f"{PREDICTED_FIELD}:O", f"{COUNT_FIELD}:Q"],
    )
    cells = cells.add_params(pick)
    text = base.mark_text(fontSize=11).encode(
        text="label:N",
        color=alt.value("#f0f2f6"),
    )
    chart = alt.layer(cells, text).properties(width=CONFUSION_SIZE_PX, height=CONFUSION_SIZE_PX)
    return _svg(chart)


def selected_cell(event) -> tuple[int, int] | None:
    """(true, predicted) of the cell a selection event names, or None (no cell, or a cleared selection)."""
    points = ((event or {}).get("selection") or {}).get(CELL_SELECTION) or []
    if not points:
        return None
    point = points[0]
    try:
        return int(point[TRUE_FIELD]), int(point[PREDICTED_FIELD])
    except (KeyError, TypeError, ValueError):
        return None


def class_distribution_chart(train_counts: list[int], test_counts: list[int]) -> alt.Chart:
    """Share of each digit in the training and test sets (counts in the tooltip)."""
    rows = []
    for split, counts in (("train", train_counts), ("test", test_counts)):
        total = max(1, sum(counts))
        name = f"{split} ({sum(counts):,} images)"
        rows += [{"digit": d, "split": name, "share": 100 * c / total, "images": c} for d, c in enumerate(counts)]
    names = [rows[0]["split"], rows[-1]["split"]]
    chart = (
        alt.Chart(alt.Data(values=rows), title="Class distribution")
        .mark_bar()
        .encode(
            x=alt.X("digit:O", axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("split:N", sort=names),
            y=alt.Y("share:Q", title="% of the split"),
            color=alt.Color(
                "split:N",
                sort=names,
                scale=alt.Scale(domain=names, range=[TRAIN_COLOR, TEST_COLOR]),
                legend=alt.Legend(orient="top", title=None),
            ),
            tooltip=["digit:O", "split:N", alt.Tooltip("images:Q", format=","), alt.Tooltip("share:Q", format=".1f")],
        )
    )
    return _svg(chart)


def per_class_accuracy_chart(per_class: list[float]) -> alt.LayerChart:
    """Test accuracy per true digit, the axis zoomed to where the bars differ, the weakest digit in the accent."""
    acc = [100 * a for a in per_class]
    low = min(acc) if acc else 0.0
    floor = max(0.0, math.floor(low - (100 - low) * 0.6 - 0.5))
    rows = [{"digit": d, "accuracy": a, "weakest": a == low, "text": f"{a:.1f}"} for d, a in enumerate(acc)]
    base = alt.Chart(alt.Data(values=rows), title="Accuracy per digit (%)").encode(
        x=alt.X("digit:O", title="true digit", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("accuracy:Q", title=None, scale=alt.Scale(domain=[floor, 100.5], clamp=True)),
    )
    bars = base.mark_bar(clip=True).encode(
        color=alt.condition("datum.weakest", alt.value(ACCENT), alt.value(TRAIN_COLOR)),
        tooltip=["digit:O", alt.Tooltip("accuracy:Q", format=".2f")],
    )
    labels = base.mark_text(dy=-6, fontSize=10, color=MUTED).encode(text="text:N")
    return _svg(alt.layer(bars, labels))
