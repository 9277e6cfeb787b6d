"""The Train form's widgets, generated from TrainConfig's field specs (mnist.config.FIELD_SPECS).

Numbers are text inputs parsed here against their spec. st.number_input would clamp a value to its range,
drop letters, truncate 2.5 to 2, or keep the last valid value without a word; a text input keeps what was
typed, and a value that is not allowed is refused with a message naming the field and its range.
"""

from __future__ import annotations

import re

import streamlit as st

from mnist.config import CHECKS, FIELD_SPECS, FieldSpec, range_text
from mnist.errors import ConfigError
from studio.explain import field_text

FORM_FIELDS = tuple(name for name, spec in FIELD_SPECS.items() if spec.in_form)
NUMBER_WORDS = {"int": "a whole number", "float": "a number"}  # the number kinds, as a message names them
THOUSANDS_RE = re.compile(r"[+-]?\d{1,3}(,\d{3})+")  # "60,000", as range_text writes a range's ends


def value_text(spec: FieldSpec, value) -> str:
    """A number field's text for a value, lossless: "256", "0.005", "1e-05", "0"."""
    if spec.kind == "int":
        return str(value)
    return repr(float(value)).removesuffix(".0")


def form_state(spec: FieldSpec, value) -> object:
    """What the field's widget holds for a config value: the text of a number, the value itself otherwise."""
    return value_text(spec, value) if spec.kind in NUMBER_WORDS else value


def parse_number(spec: FieldSpec, text: str) -> int | float:
    """The number a field's text says; ValueError when it says none of its kind."""
    text = text.strip()
    if spec.kind == "int":
        return int(text.replace(",", "") if THOUSANDS_RE.fullmatch(text) else text)
    return float(text)


def parse_field(spec: FieldSpec, raw) -> tuple[object, str | None]:
    """The field's value from its widget, checked against the spec; or None and why it is refused.

    Choices and switches can only hold allowed values: they are returned as they are.
    """
    if spec.kind not in NUMBER_WORDS:
        return raw, None
    text = "" if raw is None else str(raw).strip()
    try:
        value = parse_number(spec, text)
        CHECKS[spec.kind](spec, value)
    except (ValueError, ConfigError):  # ConfigError is a ValueError too; named for the reader
        typed = f"“{text}”" if text else "empty"
        return None, f"{spec.label} must be {NUMBER_WORDS[spec.kind]} {range_text(spec)}, not {typed}."
    return value, None


def form_values(prefix: str) -> dict[str, object]:
    """What the form's widgets hold by field name (a number's text), from the session state keys prefix + name."""
    return {name: st.session_state.get(prefix + name) for name in FIELD_SPECS}


def fields_shown(names, prefix: str) -> list[str]:
    """Those of the fields that get a widget with the form's other values (momentum only for SGD, ...)."""
    values = form_values(prefix)
    return [name for name in names if FIELD_SPECS[name].applies(values)]


def fields_left_out(placed) -> list[str]:
    """The form fields a layout does not place, in spec order: a new field shows without a layout edit."""
    return [name for name in FORM_FIELDS if name not in placed]


def field_help(spec: FieldSpec) -> str:
    """A field's tooltip: what it does in plain words (studio.explain), then its exact meaning and range."""
    exact = (
        f"{spec.help}: {NUMBER_WORDS[spec.kind]} {range_text(spec)}." if spec.kind in NUMBER_WORDS else f"{spec.help}."
    )
    plain = field_text(spec.name)
    return f"{plain}\n\n{exact}" if plain else exact


def render_field(spec: FieldSpec, container, prefix: str, *, options=None, format_func=None, **widget_args):
    """Draw the field's widget in container under the key prefix + name, and return what it holds.

    A field that does not apply to the other values (momentum with Adam, ...) gets no widget and returns None.
    options and format_func override a choice's values and labels (the devices of this machine, ...).
    """
    if not spec.applies(form_values(prefix)):
        return None
    args = {"key": prefix + spec.name, "help": field_help(spec), **widget_args}
    if spec.kind == "choice":
        labels = format_func or spec.choices.get
        return container.selectbox(spec.label, options or list(spec.choices), format_func=labels, **args)
    if spec.kind == "bool":
        widget = container.toggle if spec.toggle else container.checkbox
        return widget(spec.label, **args)
    return container.text_input(spec.label, **args)
