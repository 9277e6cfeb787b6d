"""The Train form's widgets, generated from TrainConfig's field specs (mnist.config.FIELD_SPECS)."""

from __future__ import annotations

import streamlit as st

from mnist.config import FIELD_SPECS, FieldSpec

FORM_FIELDS = tuple(name for name, spec in FIELD_SPECS.items() if spec.in_form)


def widget_min(spec: FieldSpec) -> float:
    """The number input's minimum: the spec's low, or the form's own for an open bound (a minimum is allowed)."""
    return spec.form_low if spec.low_open else spec.low


def form_values(prefix: str) -> dict[str, object]:
    """The form's current values by field name, from the session state keys prefix + name."""
    return {name: st.session_state.get(prefix + name) for name in FIELD_SPECS}


def fields_left_out(placed) -> list[str]:
    """The form fields a layout does not place, in spec order: a new field shows without a layout edit."""
    return [name for name in FORM_FIELDS if name not in placed]


def render_field(spec: FieldSpec, container, prefix: str, *, options=None, format_func=None, **widget_args):
    """Draw the field's widget in container under the key prefix + name, and return its value.

    A field that does not apply to the other values (momentum with Adam, ...) gets no widget and returns None.
    options and format_func override a choice's values and labels (the devices of this machine, ...).
    """
    if not spec.applies(form_values(prefix)):
        return None
    args = {"key": prefix + spec.name, "help": f"{spec.help}.", **widget_args}
    if spec.kind == "choice":
        labels = format_func or spec.choices.get
        return container.selectbox(spec.label, options or list(spec.choices), format_func=labels, **args)
    if spec.kind == "bool":
        widget = container.toggle if spec.toggle else container.checkbox
        return widget(spec.label, **args)
    if spec.kind == "int":
        return container.number_input(spec.label, int(spec.low), int(spec.high), step=int(spec.step), **args)
    low, high, step = float(widget_min(spec)), float(spec.high), float(spec.step)
    return container.number_input(spec.label, low, high, step=step, format="%g", **args)
