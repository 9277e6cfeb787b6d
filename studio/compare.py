"""Sketch's "Compare with": a second model's answer beside the active model's, for the same input.

The session's choice is kept behind `compare_model` / `set_compare_model` (per session, off by default; a model
that is no longer offered turns it off). The comparison is one keyed container, `compare`: each model's
answer side by side, whether they agree, and their ten probabilities as one small table (a table, not two
more charts: a chart per model per stroke would cost more server CPU than the second model's forward pass).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass

import streamlit as st

from mnist.compare import agreement
from mnist.records import ModelRef
from mnist.verdict import Reading
from studio import guide
from studio.sketch_state import COMPARE_KEY
from studio.views import a_digit, verdict_text

PICKER_KEY = "compare_picker"  # the picker widget's own key (its state goes when Sketch is not shown)
CONTAINER_KEY = "compare"
OFF = ""  # the picker's first option: no second model
PICKER_LABEL = "Compare with another model"
PICKER_HELP = "Shows a second model's answer for the same drawing beside the active model's."
MARKDOWN_SPECIALS = set("\\`*_[]{}()<>#+-.!|:~$")
SHADE_RGB = "255, 140, 66"  # the theme's accent: a cell's background is as strong as its probability


# --- the session's choice ---------------------------------------------------------------------


def compare_model(offered: Mapping[ModelRef, str], active: ModelRef | None) -> ModelRef | None:
    """The session's second model if it is still offered and is not the active one, else None (off)."""
    ref = st.session_state.get(COMPARE_KEY) or None
    return ref if ref in offered and ref != active else None


def set_compare_model(ref: ModelRef | None) -> None:
    st.session_state[COMPARE_KEY] = ref or OFF


def remember_picker() -> None:
    set_compare_model(st.session_state.get(PICKER_KEY) or None)


def show_picker(offered: Mapping[ModelRef, str], active: ModelRef) -> ModelRef | None:
    """The second-model menu (every offered model but the active one, and Off); the chosen model or None.

    Nothing is shown when no other model is offered."""
    others = [ref for ref in offered if ref != active]
    if not others:
        return None
    chosen = compare_model(offered, active)
    st.session_state[PICKER_KEY] = chosen or OFF  # from the session's choice: survives page switches
    st.selectbox(
        PICKER_LABEL,
        [OFF, *others],
        format_func=lambda ref: offered.get(ref, str(ref)) if ref else "Off",
        key=PICKER_KEY,
        on_change=remember_picker,
        help=PICKER_HELP,
    )
    return chosen


# --- what each model says -------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One model's answer to the input, as the comparison shows it."""

    model: str  # the model's short name (the sidebar menu's)
    text: str  # its verdict line: "Prediction: 7 (98.1%)", "Number: 17", "Not a digit: a dot"
    digits: tuple[int, ...]  # what it read, left to right; () for not a digit
    probabilities: tuple[float, ...] | None  # its ten probabilities when the input is one digit
    parts: tuple[str, ...] = ()  # a number: each digit with its probability, "1 (99%)"


def reading_answer(model: str, reading: Reading, threshold: float) -> Answer:
    parts = () if len(reading.groups) < 2 else tuple(f"{g.digit} ({g.confidence:.0%})" for g in reading.groups)
    return Answer(model, verdict_text(reading, threshold), reading.digits, reading.probabilities, parts)


def probabilities_answer(model: str, text: str, probabilities: tuple[float, ...]) -> Answer:
    digit = max(range(len(probabilities)), key=probabilities.__getitem__)
    return Answer(model, text, (digit,), probabilities)


def as_reading(answer: Answer) -> Reading:
    """Enough of a Reading for mnist.compare.agreement."""
    verdict = "digit" if answer.digits else "not_a_digit"
    digit = answer.digits[0] if len(answer.digits) == 1 else None
    return Reading(verdict, digit, answer.digits, None, answer.probabilities, None, ())


def truth_text(answer: Answer, label: int) -> str:
    if answer.digits == (label,):
        return f"✓ right: the label is {label}"
    return f"✗ wrong: the label is {label}"


def agreement_text(first: Answer, second: Answer, label: int | None) -> str:
    if label is None:
        return agreement(as_reading(first), as_reading(second)).text
    right = [a.model for a in (first, second) if a.digits == (label,)]
    if len(right) == 2:
        return f"Both models are right: it is {a_digit(label)}."
    if not right:
        return f"Both models are wrong: it is {a_digit(label)}."
    return f"Only {right[0]} is right: it is {a_digit(label)}."


def probabilities_table(answers: list[Answer]) -> str:
    """An HTML table: one row per model, one column per digit, each cell shaded by its probability."""
    head = "".join(f'<th scope="col">{d}</th>' for d in range(10))
    rows = []
    for answer in answers:
        probs = answer.probabilities
        top = max(range(10), key=probs.__getitem__)
        cells = "".join(
            f'<td style="background: rgba({SHADE_RGB}, {0.08 + 0.8 * p:.2f})">{"<b>" if d == top else ""}'
            f"{p:.0%}{'</b>' if d == top else ''}</td>"
            for d, p in enumerate(probs)
        )
        rows.append(f'<tr><th scope="row">{html.escape(answer.model)}</th>{cells}</tr>')
    caption = "Each model's probability for each digit"
    return (
        '<table class="compare-probabilities">'
        f"<caption>{caption}</caption><thead><tr><th scope='col'>model</th>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def plain(text: str) -> str:
    """A model's name as literal text in Markdown (run names may hold _ and such)."""
    return "".join(f"\\{c}" if c in MARKDOWN_SPECIALS else c for c in text)


def answer_markdown(answer: Answer, label: int | None) -> str:
    """The model's name (grey), its verdict line, a number's digits, and right or wrong against the label."""
    lines = [f":gray[{plain(answer.model)}]", answer.text]
    if answer.parts:
        lines.append(f":gray[{' · '.join(answer.parts)}]")
    if label is not None:
        lines.append(truth_text(answer, label))
    return "  \n".join(lines)


def show_comparison(first: Answer, second: Answer, label: int | None = None) -> None:
    """Both answers side by side in the `compare` container, whether they agree, and their probabilities."""
    guide.mark_done(guide.Step.COMPARE)
    with st.container(key=CONTAINER_KEY):
        st.markdown(f"**{agreement_text(first, second, label)}**")
        for column, answer in zip(st.columns(2), (first, second), strict=True):
            column.markdown(answer_markdown(answer, label))  # one element each: compact on a phone
        answers = [a for a in (first, second) if a.probabilities is not None]
        if len(answers) == 2:
            st.markdown(probabilities_table(answers), unsafe_allow_html=True)
