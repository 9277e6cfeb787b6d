"""Plotly figures for the app: pure functions from plain data to go.Figure (no Streamlit here)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from mnist.constants import NUM_CLASSES
from mnist.train import EpochEvent, History, StepEvent

DIGITS = list(range(NUM_CLASSES))
ACCENT = "#FF8C42"  # the theme's primary colour (.streamlit/config.toml)
MUTED = "#7A8394"
TRAIN_COLOR = "#4C9BE8"
TEST_COLOR = ACCENT
PALETTE = qualitative.Plotly + qualitative.D3  # runs compared on Train: any number of them
# One colour per digit on the digit map, told apart on the dark theme: Tableau 10 (its red and pink, the closest
# pair, are on 3 and 6, digits the map keeps apart). Plotly's default put reds on 1 and 6 and two pinks on 3 and 8.
DIGIT_PALETTE = (
    "#4E79A7",  # 0 blue
    "#F28E2B",  # 1 orange
    "#59A14F",  # 2 green
    "#E15759",  # 3 red
    "#76B7B2",  # 4 teal
    "#EDC948",  # 5 yellow
    "#FF9DA7",  # 6 pink
    "#B07AA1",  # 7 purple
    "#9C755F",  # 8 brown
    "#BAB0AC",  # 9 grey
)
DEFAULT_SMOOTHING = 0.6  # TensorBoard's default; applied per logged point (every log_every steps)


def ema(values, smoothing: float = DEFAULT_SMOOTHING) -> list[float]:
    """Exponential moving average, debiased like TensorBoard's (the first points are not dragged to 0)."""
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    out, avg = [], 0.0
    for i, v in enumerate(values, start=1):
        avg = smoothing * avg + (1 - smoothing) * float(v)
        out.append(avg / (1 - smoothing**i) if smoothing > 0 else avg)
    return out


def _layout(fig: go.Figure, height: int, title: str | None = None, **kw) -> go.Figure:
    fig.update_layout(
        height=height,
        title=dict(text=title, x=0, xanchor="left", font=dict(size=15)) if title else None,
        margin=dict(l=10, r=10, t=40 if title else 10, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1),
        hovermode="x unified",
        **kw,
    )
    return fig


LOG_TICKS = [m * 10.0**e for e in range(-4, 2) for m in (1, 2, 5)]


def _log_axis(fig: go.Figure, **where) -> None:
    """A log y axis labelled 0.01, 0.02, 0.05, 0.1, ... (plotly's own minor labels are bare digits)."""
    fig.update_yaxes(type="log", tickvals=LOG_TICKS, ticktext=[f"{t:g}" for t in LOG_TICKS], **where)


def _empty(fig: go.Figure, message: str) -> go.Figure:
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font=dict(color=MUTED))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


# --- training ---------------------------------------------------------------------------------


def step_loss_figure(steps: list[StepEvent], smoothing: float = DEFAULT_SMOOTHING, height: int = 300) -> go.Figure:
    """Training loss per logged step: the raw values faint, their EMA bold, on a log axis."""
    fig = go.Figure()
    _layout(fig, height, "Training loss")
    if not steps:
        return _empty(fig, "waiting for the first steps…")
    x = [s.step for s in steps]
    y = [s.loss for s in steps]
    fig.add_trace(go.Scatter(x=x, y=y, name="loss", mode="lines", line=dict(color=TRAIN_COLOR, width=1), opacity=0.35))
    fig.add_trace(
        go.Scatter(
            x=x,
            y=ema(y, smoothing),
            name=f"smoothed (EMA {smoothing:g})",
            mode="lines",
            line=dict(color=TRAIN_COLOR, width=3),
        )
    )
    fig.update_xaxes(title_text="step")
    _log_axis(fig)
    fig.update_yaxes(title_text="cross-entropy")
    return fig


def epoch_figure(epochs: list[EpochEvent], height: int = 300) -> go.Figure:
    """Train and test loss (left) and accuracy (right) per epoch."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss per epoch", "Accuracy per epoch (%)"))
    _layout(fig, height)
    fig.update_layout(margin=dict(t=30), legend=dict(orientation="h", y=-0.25, x=0, xanchor="left", yanchor="top"))
    if not epochs:
        fig.add_annotation(
            text="the first epoch's results appear here",
            showarrow=False,
            x=0.5,
            y=0.5,
            xref="paper",
            yref="paper",
            font=dict(color=MUTED),
        )
        return fig
    x = [e.epoch for e in epochs]
    for split, color in (("train", TRAIN_COLOR), ("test", TEST_COLOR)):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[getattr(e, f"{split}_loss") for e in epochs],
                name=f"{split} loss",
                mode="lines+markers",
                line=dict(color=color),
                legendgroup=split,
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[getattr(e, f"{split}_accuracy") * 100 for e in epochs],
                name=f"{split} accuracy",
                mode="lines+markers",
                line=dict(color=color, dash="dot"),
                legendgroup=split,
            ),
            row=1,
            col=2,
        )
    fig.update_xaxes(title_text="epoch", dtick=1 if len(epochs) <= 20 else None)
    return fig


def lr_figure(steps: list[StepEvent], height: int = 220) -> go.Figure:
    """The learning rate the scheduler set, per logged step."""
    fig = go.Figure()
    _layout(fig, height, "Learning rate")
    if not steps:
        return _empty(fig, "waiting for the first steps…")
    fig.add_trace(
        go.Scatter(
            x=[s.step for s in steps],
            y=[s.lr for s in steps],
            name="learning rate",
            mode="lines",
            line=dict(color=ACCENT, width=2),
        )
    )
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(exponentformat="e")
    return fig


def compare_figure(histories: dict[str, History], smoothing: float = DEFAULT_SMOOTHING, height: int = 340) -> go.Figure:
    """Overlay of several runs: smoothed step loss (left), test accuracy per epoch (right)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Training loss (smoothed)", "Test accuracy per epoch (%)"))
    _layout(fig, height)
    fig.update_layout(
        margin=dict(t=50),
        hovermode="closest",
        legend=dict(orientation="h", y=-0.25, x=0, xanchor="left", yanchor="top"),
    )
    for i, (name, history) in enumerate(histories.items()):
        color = PALETTE[i % len(PALETTE)]
        steps, epochs = history.steps, history.epochs
        if steps:
            fig.add_trace(
                go.Scatter(
                    x=[s.step for s in steps],
                    y=ema([s.loss for s in steps], smoothing),
                    name=name,
                    legendgroup=name,
                    line=dict(color=color),
                ),
                row=1,
                col=1,
            )
        if epochs:
            fig.add_trace(
                go.Scatter(
                    x=[e.epoch for e in epochs],
                    y=[e.test_accuracy * 100 for e in epochs],
                    name=name,
                    legendgroup=name,
                    showlegend=not steps,
                    mode="lines+markers",
                    line=dict(color=color),
                ),
                row=1,
                col=2,
            )
    _log_axis(fig, row=1, col=1)
    fig.update_xaxes(title_text="step", row=1, col=1)
    fig.update_xaxes(title_text="epoch", dtick=1, row=1, col=2)
    return fig


# --- a model's mistakes (Train's training insight; Explore draws its own in studio.explore_charts) ---------


def confusion_figure(confusion, selected: tuple[int | None, int | None] = (None, None), height: int = 520) -> go.Figure:
    """Confusion matrix (rows = true digit, columns = prediction) whose cells can be clicked.

    Correct predictions (the diagonal) are grey, mistakes red on their own scale, so a handful of
    errors stays visible next to a thousand correct answers. Plotly heatmaps emit no selection
    events, so a transparent square marker sits on every cell: clicking a cell selects its point,
    with x = predicted and y = true digit. `selected` = (true, predicted) outlines that cell, row
    or column.
    """
    counts = np.asarray(confusion, dtype=np.int64)
    n = counts.shape[0]
    diag_mask = np.eye(n, dtype=bool)
    errors = np.where(diag_mask, np.nan, counts).astype(float)
    correct = np.where(diag_mask, counts, np.nan).astype(float)
    max_err = max(1.0, float(np.nanmax(errors)) if n > 1 else 1.0)
    text = np.where(counts > 0, counts.astype(str), "")  # empty cells stay quiet
    fig = go.Figure()
    fig.add_trace(
        go.Heatmap(
            z=correct,
            x=DIGITS[:n],
            y=DIGITS[:n],
            colorscale=[[0, "#3a4150"], [1, "#3a4150"]],
            showscale=False,
            text=text,
            texttemplate="%{text}",
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Heatmap(
            z=errors,
            x=DIGITS[:n],
            y=DIGITS[:n],
            zmin=0,
            zmax=max_err,
            text=text,
            texttemplate="%{text}",
            colorscale=[[0, "#1b1e26"], [0.15, "#5c2a2a"], [1, "#ff4b4b"]],
            hoverinfo="skip",
            colorbar=dict(title=dict(text="mistakes"), thickness=12),
        )
    )
    ys, xs = np.divmod(np.arange(n * n), n)
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers",
            name="cells",
            showlegend=False,
            marker=dict(symbol="square", size=30, color="rgba(255,255,255,0.01)"),
            selected=dict(marker=dict(color="rgba(255,255,255,0.25)")),
            unselected=dict(marker=dict(opacity=1)),
            customdata=counts.flatten(),
            hovertemplate="true %{y}, predicted %{x}: %{customdata} images<extra></extra>",
        )
    )
    true, pred = selected
    if true is not None or pred is not None:
        x0, x1 = (pred - 0.5, pred + 0.5) if pred is not None else (-0.5, n - 0.5)
        y0, y1 = (true - 0.5, true + 0.5) if true is not None else (-0.5, n - 0.5)
        fig.add_shape(type="rect", x0=x0, x1=x1, y0=y0, y1=y1, line=dict(color=ACCENT, width=3))
    _layout(fig, height, None)
    fig.update_layout(hovermode="closest", clickmode="event+select", dragmode=False, margin=dict(t=10, b=10))
    fig.update_xaxes(
        title_text="predicted digit",
        dtick=1,
        side="top",
        showgrid=False,
        zeroline=False,
        range=[-0.5, n - 0.5],
        fixedrange=True,
        constrain="domain",
    )
    fig.update_yaxes(
        title_text="true digit",
        dtick=1,
        range=[n - 0.5, -0.5],  # digit 0 at the top
        showgrid=False,
        zeroline=False,
        scaleanchor="x",
        fixedrange=True,
        constrain="domain",
    )
    return fig


# --- a drawing --------------------------------------------------------------------------------


def probabilities_figure(probabilities, threshold: float | None = None, height: int = 240) -> go.Figure:
    """Ten bars, the top digit highlighted; a dashed line at the confidence threshold.

    Built in one constructor call from plain dicts: Sketch draws it after every stroke, and plotly's
    update_layout / add_hline path validation made the same figure cost ~14 ms instead of ~1.5 ms.
    """
    probs = [100 * float(p) for p in probabilities]
    top = int(np.argmax(probs)) if probs else -1
    bar = go.Bar(
        x=DIGITS[: len(probs)],
        y=probs,
        marker_color=[ACCENT if i == top else MUTED for i in range(len(probs))],
        text=[f"{p:.0f}%" if p >= 1 else "" for p in probs],
        textposition="outside",
        cliponaxis=False,
        hovertemplate="%{x}: %{y:.2f}%<extra></extra>",
    )
    shapes = []
    if threshold is not None:  # what fig.add_hline(y=threshold) adds
        y = threshold * 100
        line = dict(color=MUTED, dash="dash", width=1)
        shapes.append(dict(type="line", xref="x domain", x0=0, x1=1, yref="y", y0=y, y1=y, line=line))
    layout = dict(
        height=height,
        margin=dict(l=10, r=10, t=20, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1),
        hovermode="closest",
        shapes=shapes,
        yaxis=dict(range=[0, 108], title_text="probability %", fixedrange=True),
        xaxis=dict(dtick=1, fixedrange=True),
    )
    return go.Figure(data=[bar], layout=layout)
