"""The Streamlit websocket protocol as the load test speaks it: BackMsgs built from the recording, ForwardMsgs read.

A rerun BackMsg the recording holds is sent with this session's widget and fragment ids (from its latest
render, see PageView) and its address; what the server sends back updates the session's PageView.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from google.protobuf import json_format
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

# The protocol (streamlit/web/server/starlette/starlette_websocket.py): the first subprotocol is
# selected, the second carries the XSRF token (the browser sends this placeholder without a cookie).
STREAM_PATH = "/_stcore/stream"
SUBPROTOCOLS = ["streamlit", "PLACEHOLDER_AUTH_TOKEN"]
MAX_FRAME_BYTES = 64 * 1024 * 1024  # a ForwardMsg can hold a whole data frame (Explore)
PREDICTION_BLOCK_SUFFIX = "-prediction"  # st.container(key="prediction") -> block id "$$ID-<hash>-prediction"
HEADING_PREFIX = "### "
PREDICTION_RE = re.compile(r"^Prediction: (\d) \(")
# The Sketch page's one verdict per drawing: "Prediction: 7 (95.0%)", "Number: 17", "Not a digit: a line".
# A partial digit (the first stroke of a 4) is often "Not a digit": a verdict like any other.
VERDICT_RES = (PREDICTION_RE, re.compile(r"^Number: (\d+)"), re.compile(r"^(Not a digit: [^.]+)"))
JOB_TITLE_RE = re.compile(r"^\*\*(job-\d+) · .*\*\* · (\w+)$")  # pages/train.py render_job
TRAINING_STATES = ("queued", "training")
EARLY_FOR_RERUN = ForwardMsg.ScriptFinishedStatus.Value("FINISHED_EARLY_FOR_RERUN")
COMPILE_ERROR = ForwardMsg.ScriptFinishedStatus.Value("FINISHED_WITH_COMPILE_ERROR")
ERROR_ALERT = 1  # Alert.Format.ERROR: st.error
NUMBER_FLOAT = 1  # NumberInput.DataType.FLOAT (INT = 0)
Message = dict  # a BackMsg as protobuf JSON (json_format.MessageToDict), as stored in the recording


def widget_selector(element_type: str, label: str, widget_id: str) -> str:
    """A widget's identity across sessions and Clears: element type, user key, label.

    The id is "$$ID-<hash>-<user key>" ("None" without a key). Trailing digits of the key become "#":
    Clear bumps the canvas key (canvas_0, canvas_1, ...), and the next stroke goes to the new one.
    """
    key = widget_id.split("-", 2)[2] if widget_id.count("-") >= 2 else widget_id
    return f"{element_type}|{re.sub(r'[0-9]+$', '#', key)}|{label}"


def user_key(widget_id: str) -> str:
    return widget_id.split("-", 2)[2] if widget_id.count("-") >= 2 else widget_id


class ProtocolDrift(Exception):
    """The page no longer has a widget the recording sends: the app or Streamlit changed; re-record."""


# A number field's widget type is not its identity: an st.number_input (int_value or double_value) and an
# st.text_input (string_value, the number's text) hold the same number (the Train form has used both).
NUMBER_WIDGETS = ("number_input", "text_input")
VALUE_FIELDS = {"int": "int_value", "float": "double_value", "text": "string_value"}


def number_text(value) -> str:
    """A number as a person types it: "2000", "0.02", "0"."""
    return str(value) if isinstance(value, int) else repr(float(value)).removesuffix(".0")


def convert_value(value, kind: str):
    """A widget value as the kind of value ("int", "float", "text") the widget now holds."""
    if kind == "text":
        return value if isinstance(value, str) else number_text(value)
    number = float(value)
    return int(number) if kind == "int" else number


def set_widget_value(widget, value, kind: str | None = None) -> None:
    """Set a WidgetState's value as `kind`, else as the value type it already has (int_value stays int)."""
    field_name = VALUE_FIELDS.get(kind) if kind else widget.WhichOneof("value")
    if field_name is None:
        raise ValueError(f"widget {widget.id} has no value to set")
    kind = {v: k for k, v in VALUE_FIELDS.items()}.get(field_name)
    setattr(widget, field_name, convert_value(value, kind) if kind else value)


def same_field_selectors(selector: str) -> list[str]:
    """The selector, then the same number field under the other number widget type."""
    element_type, rest = selector.split("|", 1)
    if element_type not in NUMBER_WIDGETS:
        return [selector]
    return [selector] + [f"{other}|{rest}" for other in NUMBER_WIDGETS if other != element_type]


def build_message(
    template: Message,
    recorded_widgets: dict[str, str],
    view: PageView,
    base_url: str,
    *,
    overrides: dict[str, object] | None = None,
    fragment_id: str | None = None,
    query_string: str = "",
) -> BackMsg:
    """A recorded rerun BackMsg for this session: widget and fragment ids from its latest render, its URL.

    `recorded_widgets`: recorded widget id -> selector. `overrides`: user key -> value (e.g.
    {"cfg_train_limit": 5000}); each must be a widget the template sends. A recorded fragment id becomes
    the fragment the template's widgets are rendered in now. `query_string` is this session's page
    address query, as the app last set it (the recording's would make every session the recording
    browser's visitor). No cached-message hashes are claimed, so the server sends every ForwardMsg in
    full (as to a browser with an empty cache).
    """
    msg = json_format.ParseDict(template, BackMsg())
    state = msg.rerun_script
    overridden = set()
    fragments = []
    for widget in state.widget_states.widgets:
        selector = recorded_widgets.get(widget.id)
        kind = None
        if selector is not None:
            current = next((s for s in same_field_selectors(selector) if s in view.widgets), None)
            if current is None:
                raise ProtocolDrift(f"the page has no widget {selector!r}: re-record (`python -m bench.load --record`)")
            widget.id = view.widgets[current]
            fragments.append(view.fragments.get(current))
            if current != selector:  # the number field's widget type changed: send its value as that one holds it
                kind = view.value_kinds[current]
                set_widget_value(widget, getattr(widget, widget.WhichOneof("value")), kind)
        key = user_key(widget.id)
        if overrides and key in overrides:
            set_widget_value(widget, overrides[key], kind)
            overridden.add(key)
    if overrides and set(overrides) - overridden:
        raise ProtocolDrift(f"the recorded message sends no {sorted(set(overrides) - overridden)}: re-record")
    del state.cached_message_hashes[:]
    state.query_string = query_string
    if state.context_info.url:
        query = f"?{query_string}" if query_string else ""
        state.context_info.url = base_url + urlsplit(state.context_info.url).path + query
    if fragment_id is not None:
        state.fragment_id = fragment_id
    elif state.fragment_id:  # a fragment rerun: of the fragment holding these widgets now (none: a full rerun)
        state.fragment_id = next((f for f in fragments if f), "")
    return msg


def element_identity(element) -> tuple[str, str, str] | None:
    """(element type, widget id, label) of a widget element; None for elements without an id."""
    kind = element.WhichOneof("type")
    if kind is None:
        return None
    sub = getattr(element, kind)
    fields = sub.DESCRIPTOR.fields_by_name
    widget_id = sub.id if "id" in fields else ""
    if not widget_id:
        return None
    return kind, widget_id, sub.label if "label" in fields else ""


@dataclass
class PageView:
    """The parts of a session's page the load test needs, updated Delta by Delta.

    A full run replaces the page (reset); a fragment run only replaces its own elements (no reset).
    """

    widgets: dict[str, str] = field(default_factory=dict)  # selector -> widget id
    fragments: dict[str, str] = field(default_factory=dict)  # selector -> id of the fragment it is in
    value_kinds: dict[str, str] = field(default_factory=dict)  # number field selector -> "int" | "float" | "text"
    prediction_path: tuple[int, ...] | None = None
    headings: list[str] = field(default_factory=list)  # prediction headings of the current run
    media: list[str] = field(default_factory=list)  # image URLs of the current run
    problems: list[str] = field(default_factory=list)  # exceptions and st.error texts, current run
    job: tuple[str, str] | None = None  # (job id, state label) of the Train page's watched run
    job_title: str = ""  # its title: "job-3 · cnn-bn-fast · 1 epoch · batch 256 · first 2,000 images"

    def start_run(self, full: bool) -> None:
        if full:
            self.widgets.clear()
            self.fragments.clear()
            self.value_kinds.clear()
            self.prediction_path = None
            self.job = None
        self.headings.clear()
        self.media.clear()
        self.problems.clear()

    def apply_delta(self, path: tuple[int, ...], delta) -> str | None:
        """Take in one Delta; returns the prediction heading's text when this Delta is that heading."""
        kind = delta.WhichOneof("type")
        if kind == "add_block":
            if delta.add_block.id.endswith(PREDICTION_BLOCK_SUFFIX):
                self.prediction_path = path
            return None
        if kind != "new_element":
            return None
        element = delta.new_element
        identity = element_identity(element)
        if identity is not None:
            element_type, widget_id, label = identity
            selector = widget_selector(element_type, label, widget_id)
            self.widgets[selector] = widget_id
            if delta.fragment_id:
                self.fragments[selector] = delta.fragment_id
            if element_type == "number_input":
                self.value_kinds[selector] = "float" if element.number_input.data_type == NUMBER_FLOAT else "int"
            elif element_type == "text_input":
                self.value_kinds[selector] = "text"
        element_type = element.WhichOneof("type")
        if element_type == "exception":
            self.problems.append(f"exception: {element.exception.type}: {element.exception.message}")
        elif element_type == "alert" and element.alert.format == ERROR_ALERT:
            self.problems.append(f"st.error: {element.alert.body}")
        elif element_type == "imgs":
            self.media.extend(img.url for img in element.imgs.imgs if img.url.startswith("/"))
        elif element_type == "markdown":
            return self.take_markdown(path, element.markdown.body)
        return None

    def take_markdown(self, path: tuple[int, ...], body: str) -> str | None:
        title = JOB_TITLE_RE.match(body)
        if title:
            self.job = (title.group(1), title.group(2))
            self.job_title = body
        inside = self.prediction_path is not None and path[: len(self.prediction_path)] == self.prediction_path
        if inside and body.startswith(HEADING_PREFIX):
            heading = body[len(HEADING_PREFIX) :].strip()
            self.headings.append(heading)
            return heading
        return None


def predicted_digit(heading: str | None) -> int | None:
    match = PREDICTION_RE.match(heading or "")
    return int(match.group(1)) if match else None


def verdict_of(heading: str | None) -> str | None:
    """What a heading says, without its percentages: "7", "17", "Not a digit: a line"; None if no verdict."""
    for pattern in VERDICT_RES:
        match = pattern.match(heading or "")
        if match:
            return match.group(1)
    return None
