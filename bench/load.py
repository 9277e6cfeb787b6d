"""Load test without a browser: many Streamlit sessions speak the app's own websocket protocol on localhost.

Why no browser: the old version ran 20 Chromium contexts on the same 2 cores as the server and so
measured its own browser. Here each session is one websocket to `/_stcore/stream` sending the
protobuf BackMsgs a real Chromium sent (recorded by `--record`, stored in bench/recorded/) and
reading the server's ForwardMsgs, so the generator costs a few percent of one core.

Why plain asyncio + `websockets` and not Locust: a Locust user is a gevent greenlet built around
request/response timing, while here one user is a long-lived socket whose answer to a message is a
stream of ForwardMsgs, timed from the send to one particular delta (the prediction heading) and to
`script_finished`. Locust would add its runner, stats and monkey-patching (gevent plus a sync
websocket client) on the core the generator must leave to the server; one asyncio loop with
`websockets` (already a Streamlit dependency) keeps 50-100 sockets on one core with no extra
machinery, and the timing code is ours either way.

What the sessions do (every message is a recorded one; widget ids are taken from the session's
latest render, so a new canvas key after Clear, or a reordered page, still works):

  sketchers  (--sessions)  open the app (Sketch); then, every --stroke-interval seconds on average
                           (uniform in 0.5x..1.5x), send the next stroke of a recorded digit; after a
                           digit's last stroke, Clear. The images of each prediction (/media/...) are
                           fetched like a browser does. Now and then (--revisit) a session leaves and
                           a new one arrives, so first-page times are also measured under load.
  trainers   (--trainers)  open Train, press "Start training" (the fast preset with --train-images
                           images for --train-epochs epochs), follow the page's 1 s auto-refresh like
                           a browser (AutoRerun ForwardMsg -> fragment rerun BackMsg) until the run
                           finishes, and start the next one: a training job runs during the whole test.

Figures, per step and for the run:
  stroke -> prediction  from sending the stroke's BackMsg to receiving the Delta whose markdown is
                        the "### Prediction: D (P%)" heading inside the container keyed `prediction`
                        (its block's id ends in "-prediction"; the heading is a child of its path)
  first page            from opening the socket to script_finished of the session's first run
  errors                an exception element or st.error on a page, a compile error, page-not-found,
                        a disconnect, a timeout, a run that never finishes, a media fetch that fails,
                        a failed or stopped training job, a prediction whose digit differs from the
                        recorded browser's, a traceback in the server's log
  generator CPU         this process's CPU seconds / wall seconds (cores); over 0.5 -> INVALID
  server                CPU cores (its CPU seconds / wall), peak RSS (VmHWM) and sampled RSS
  other processes       machine busy cores minus the server's and the generator's (others share it)

Each session is closed-loop, like a user who waits for the prediction: its next message goes out only
when the previous run has finished. Below the knee replies come well within the 2 s between strokes,
so this changes nothing; past it, strokes go out late, each timed from its real send, and the achieved
stroke rate falls below the offered one (both reported): figures past the knee are lower bounds.

Default run: a ramp of steps (--ramp 10,20,35,50,75,100 sessions, each --step-seconds long, fresh
sessions per step, the trainers running throughout). The headline figures are those of the step
with --sessions sessions (50); the knee is the first step whose stroke p99 passes 1 s (the ramp
stops after it, once the --sessions step is done). --no-ramp runs the --sessions step only.

  python bench/load.py [--sessions 50] [--trainers 1] [--ramp 10,20,...] [--step-seconds 40] [--json]
  python bench/load.py --quick [--json]      # CI smoke run: 4 sessions + 1 trainer, about 25 s
  python bench/load.py --record              # re-record bench/recorded/ from a real Chromium session
  python bench/load.py --browser             # correctness: 5 Chromium sessions draw digits
  python bench/load.py --url http://127.0.0.1:PORT --server-pid PID   # drive a server already running

--json: the output ends with ONE JSON line (sessions, trainers, errors, stroke_p50_ms, stroke_p99_ms,
first_page_p50_ms, generator_cpu_cores, server_peak_rss_mb, knee_sessions and more). Exit code 1 when
there were errors. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import random
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from google.protobuf import json_format
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from bench import benchlib
from bench.processes import read_system_busy_seconds, read_tree_cpu_seconds, read_tree_rss_mb
from bench.procfs import read_tree_status_mb
from studio import serve

RECORDING = benchlib.BENCH_DIR / "recorded" / "sketch_session.json"
RECORDING_FORMAT = 1
RECORDED_DIGITS = (7, 1, 4, 3)  # drawn by bench.harness.draw_digit: one- and two-stroke digits
RECORDED_FORM = {"Epochs": 1, "Training images (0 = all)": 2000}  # so Start sends these fields (overridable)
SERVER_LOG = benchlib.RESULTS_DIR / "load-server.log"

# Targets (issue 10) on the 2-core machine, generator included.
TARGET_SESSIONS = 50
STROKE_P50_TARGET_MS = 150.0
STROKE_P99_TARGET_MS = 1000.0
FIRST_PAGE_P50_TARGET_MS = 1000.0
KNEE_P99_MS = STROKE_P99_TARGET_MS  # the knee: the first step whose stroke p99 passes this
MAX_GENERATOR_CORES = 0.5  # above this the generator disturbs the server: the run is INVALID
DEFAULT_RAMP = (10, 20, 35, 50, 75, 100)
MAX_RAMP_STEPS = 10
QUICK_STEP_SECONDS = 15.0

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

# Pacing and bounds (seconds unless named otherwise).
STROKE_JITTER = 0.5  # an interval is uniform in mean * (1 -/+ this)
SESSION_ARRIVALS_PER_S = 10.0  # the sessions of a step arrive over sessions / this seconds
REVISIT_PROBABILITY = 0.1  # after a digit, a sketcher leaves and a new session arrives
PAUSE_BETWEEN_STEPS = 3.0
TRAIN_RESTART_PAUSE = 1.0  # a trainer looks at the finished run this long before the next
RSS_SAMPLE_INTERVAL = 0.5
HTTP_TIMEOUT = 10.0
ERROR_PAUSE = 1.0  # a session that failed to open waits this long before trying again
CLOSE_TIMEOUT = 5.0

Message = dict  # a BackMsg as protobuf JSON (json_format.MessageToDict), as stored in the recording


# ---------------------------------------------------------------------------------------------
# The recording


@dataclass(frozen=True)
class Stroke:
    message: Message
    heading: str  # the prediction heading the recording's server answered with


@dataclass(frozen=True)
class Drawing:
    digit: int
    strokes: tuple[Stroke, ...]
    browser_heading: str  # what Chromium showed after the last stroke


@dataclass(frozen=True)
class Recording:
    messages: dict[str, Message]  # page_load, clear, open_train, train_start, auto_rerun
    drawings: tuple[Drawing, ...]
    widgets: dict[str, str]  # recorded widget id -> selector (see widget_selector)
    meta: dict


MESSAGE_NAMES = ("page_load", "clear", "open_train", "train_start", "auto_rerun")


def load_recording(path: Path = RECORDING) -> Recording:
    data = json.loads(path.read_text())
    if data.get("format") != RECORDING_FORMAT:
        raise ValueError(f"{path}: recording format {data.get('format')!r}, expected {RECORDING_FORMAT}: re-record")
    missing = [name for name in MESSAGE_NAMES if name not in data["messages"]]
    if missing or not data["drawings"]:
        raise ValueError(f"{path}: the recording lacks {missing or 'drawings'}: re-record with --record")
    drawings = tuple(
        Drawing(d["digit"], tuple(Stroke(s["message"], s["heading"]) for s in d["strokes"]), d["browser_heading"])
        for d in data["drawings"]
    )
    return Recording(data["messages"], drawings, data["widgets"], data.get("meta", {}))


def widget_selector(element_type: str, label: str, widget_id: str) -> str:
    """A widget's identity across sessions and Clears: element type, user key, label.

    The id is "$$ID-<hash>-<user key>" ("None" without a key). Trailing digits of the key become "#":
    Clear bumps the canvas key (canvas_0, canvas_1, ...), and the next stroke goes to the new one.
    """
    key = widget_id.split("-", 2)[2] if widget_id.count("-") >= 2 else widget_id
    return f"{element_type}|{re.sub(r'[0-9]+$', '#', key)}|{label}"


def user_key(widget_id: str) -> str:
    return widget_id.split("-", 2)[2] if widget_id.count("-") >= 2 else widget_id


# ---------------------------------------------------------------------------------------------
# Building BackMsgs from the recording


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
                raise ProtocolDrift(f"the page has no widget {selector!r}: re-record with `bench/load.py --record`")
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


# ---------------------------------------------------------------------------------------------
# Reading ForwardMsgs: what a session's page shows


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


# ---------------------------------------------------------------------------------------------
# Figures


def latency_summary(seconds: list[float]) -> dict:
    """n, p50, p90, p99 and max in ms (None when there are no samples)."""
    if not seconds:
        return {"n": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    ms = [s * 1000 for s in seconds]
    p50, p90, p99 = (round(float(p), 1) for p in np.percentile(ms, [50, 90, 99]))
    return {
        "n": len(ms),
        "p50_ms": p50,
        "p90_ms": p90,
        "p99_ms": p99,
        "max_ms": round(max(ms), 1),
    }


def find_knee(steps: list[tuple[int, float | None]], limit_ms: float = KNEE_P99_MS) -> int | None:
    """The fewest sessions whose stroke p99 (ms) passed the limit; None when no step did.

    A step without a p99 (no stroke came back) counts as past the limit: nothing came back in time.
    """
    for sessions, p99 in sorted(steps):
        if p99 is None or p99 > limit_ms:
            return sessions
    return None


def ramp_should_stop(done: list[tuple[int, float | None]], target_sessions: int) -> bool:
    """Stop after a step past the knee, once the target step has been measured."""
    measured_target = any(sessions >= target_sessions for sessions, _ in done)
    return measured_target and find_knee(done) is not None


def ramp_steps(ramp: list[int], target: int) -> list[int]:
    """The ramp's steps in order, with the target step in it; at most MAX_RAMP_STEPS."""
    steps = sorted(set(ramp) | {target})
    return steps[:MAX_RAMP_STEPS]


def cores_used(cpu_seconds: float | None, wall_seconds: float) -> float | None:
    return None if cpu_seconds is None or wall_seconds <= 0 else cpu_seconds / wall_seconds


@dataclass
class StepStats:
    sessions: int
    stroke_interval: float = 2.0  # mean seconds between a session's strokes: the offered rate
    strokes: list[float] = field(default_factory=list)  # send -> heading, seconds
    stroke_runs: list[float] = field(default_factory=list)  # send -> script_finished
    first_pages: list[float] = field(default_factory=list)
    clears: list[float] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    predictions: Counter = field(default_factory=Counter)  # digit -> count
    actions: Counter = field(default_factory=Counter)
    started: float = field(default_factory=time.perf_counter)

    def error(self, who: str, action: str, message: str) -> None:
        at = round(time.perf_counter() - self.started, 1)
        self.errors.append({"session": who, "action": action, "at_s": at, "message": " ".join(message.split())[:300]})
        print(f"  ERROR [{at:6.1f}s] {who} {action}: {message[:300]}", flush=True)


@dataclass
class Usage:
    """CPU of the generator, the server and the whole machine between two moments."""

    wall: float
    generator_cpu: float
    server_cpu: float | None
    system_busy: float | None  # CPU seconds of every process

    @classmethod
    def now(cls, server_pid: int | None) -> Usage:
        return cls(
            wall=time.perf_counter(),
            generator_cpu=time.process_time(),
            server_cpu=read_tree_cpu_seconds(server_pid) if server_pid else None,
            system_busy=read_system_busy_seconds(),
        )

    def until(self, end: Usage) -> dict:
        wall = end.wall - self.wall
        generator = end.generator_cpu - self.generator_cpu
        server = None if None in (self.server_cpu, end.server_cpu) else end.server_cpu - self.server_cpu
        others = None
        if None not in (self.system_busy, end.system_busy):
            others = max(0.0, end.system_busy - self.system_busy - generator - (server or 0.0))
        return {
            "wall_s": round(wall, 1),
            "generator_cpu_cores": round(cores_used(generator, wall), 3),
            "server_cpu_cores": None if server is None else round(cores_used(server, wall), 2),
            "other_busy_cores": None if others is None else round(cores_used(others, wall), 2),
        }


# ---------------------------------------------------------------------------------------------
# One session over the websocket


@dataclass
class Waiter:
    """The run a sent message started: its heading and its end."""

    sent: float
    done: asyncio.Future
    run_id: str | None = None
    heading: tuple[float, str] | None = None  # (perf_counter, text)


@dataclass
class Target:
    base_url: str  # http://127.0.0.1:PORT
    recording: Recording
    args: argparse.Namespace

    @property
    def ws_url(self) -> str:
        return "ws" + self.base_url.removeprefix("http") + STREAM_PATH


class Session:
    """One browser tab's worth of protocol: a websocket, the page it shows, the runs it waits for."""

    def __init__(self, name: str, target: Target, stats_of):
        self.name, self.target, self.stats_of = name, target, stats_of
        self.view = PageView()
        self.ws = None
        self.reader: asyncio.Task | None = None
        self.waiter: Waiter | None = None
        self.run_finished = asyncio.Event()  # set at every script_finished (trainers poll the job state)
        self.auto_reruns: dict[str, asyncio.Task] = {}
        self.running_since: float | None = None
        self.closing = False
        self.broken: str | None = None  # why the websocket closed under us
        self.broken_reported = False
        self.query_string = ""  # the page address's query, as the app sets it (PageInfo), sent back in reruns
        # Each session is another visitor: its own client address, which `python -m studio.serve`'s nginx
        # routes by (all sessions come from 127.0.0.1 here; a real proxy in front sends this header).
        self.headers = {"X-Forwarded-For": client_address(name)}

    @property
    def stats(self) -> StepStats:
        return self.stats_of()

    @property
    def timeout(self) -> float:
        return self.target.args.action_timeout

    # --- connection --------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and load the app (Sketch): the first complete page."""
        from websockets.asyncio.client import connect

        started = time.perf_counter()
        self.ws = await asyncio.wait_for(
            connect(
                self.target.ws_url,
                subprotocols=SUBPROTOCOLS,
                additional_headers=self.headers,
                max_size=MAX_FRAME_BYTES,
                ping_interval=None,  # a browser sends no websocket pings
                open_timeout=self.timeout,
                close_timeout=CLOSE_TIMEOUT,
            ),
            self.timeout,
        )
        self.reader = asyncio.create_task(self.read(), name=f"read-{self.name}")
        await self.act("page_load")
        self.stats.first_pages.append(time.perf_counter() - started)

    async def close(self) -> None:
        self.closing = True
        self.stop_auto_reruns()
        if self.broken and not self.broken_reported:
            self.stats.error(self.name, "socket", self.broken)
        if self.running_since is not None and time.perf_counter() - self.running_since > self.timeout:
            self.stats.error(self.name, "run", f"a script run started {self.timeout:.0f}+ s ago never finished")
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), CLOSE_TIMEOUT)
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(BaseException):
                await self.reader

    async def read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        reason = "the server closed the websocket"
        try:
            async for data in self.ws:
                self.take(ForwardMsg.FromString(data), time.perf_counter())
        except ConnectionClosed as exc:
            reason = str(exc)
        except Exception as exc:  # noqa: BLE001 - a message this client cannot read ends the session
            reason = f"unreadable ForwardMsg ({type(exc).__name__}: {exc})"
            await self.ws.close()
        if not self.closing:
            self.broken = f"disconnected: {reason}"
            self.stop_auto_reruns()
            if self.waiter is not None and not self.waiter.done.done():
                self.waiter.done.set_exception(ConnectionError(self.broken))
                self.broken_reported = True  # the waiting action reports it
            self.run_finished.set()  # wakes a trainer, which then finds the socket broken

    def check_connection(self) -> None:
        if self.broken:
            self.broken_reported = True
            raise ConnectionError(self.broken)

    # --- ForwardMsgs -------------------------------------------------------------------------

    def take(self, msg: ForwardMsg, now: float) -> None:
        kind = msg.WhichOneof("type")
        if kind == "new_session":
            self.start_run(msg.metadata.run, now)
        elif kind == "delta":
            heading = self.view.apply_delta(tuple(msg.metadata.delta_path), msg.delta)
            waiter = self.waiter
            if heading is not None and waiter and waiter.run_id and waiter.heading is None:
                waiter.heading = (now, heading)
        elif kind == "script_finished":
            self.finish_run(msg, now)
        elif kind == "auto_rerun":
            self.start_auto_rerun(msg.auto_rerun.fragment_id, msg.auto_rerun.interval)
        elif kind == "stop_auto_rerun":
            for fragment_id in msg.stop_auto_rerun.fragment_ids:
                self.stop_auto_rerun(fragment_id)
        elif kind == "page_info_changed":
            self.query_string = msg.page_info_changed.query_string  # the frontend puts it in the address
        elif kind == "page_not_found":
            self.stats.error(self.name, "page", f"page not found: {msg.page_not_found.page_name}")
        elif kind == "session_event" and msg.session_event.WhichOneof("type") == "script_compilation_exception":
            self.stats.error(self.name, "run", f"compile error: {msg.session_event.script_compilation_exception}")
        elif kind == "ref_hash":
            self.stats.error(self.name, "protocol", "the server referred to a cached message the client never had")

    def start_run(self, run, now: float) -> None:
        full = not run.fragment_ids
        if full:
            self.stop_auto_reruns()  # what the frontend does at a full run (App.tsx handleNewSession)
        self.view.start_run(full)
        self.running_since = now
        if self.waiter is not None and self.waiter.run_id is None:
            self.waiter.run_id = run.script_run_id

    def finish_run(self, msg: ForwardMsg, now: float) -> None:
        status = msg.script_finished
        self.running_since = None
        for problem in self.view.problems:
            self.stats.error(self.name, "page", problem)
        if status == COMPILE_ERROR:
            self.stats.error(self.name, "run", "the script finished with a compile error")
        waiter = self.waiter
        if waiter and waiter.run_id == msg.metadata.run.script_run_id:
            if status == EARLY_FOR_RERUN:  # cut short by another rerun request: wait for the one that follows
                waiter.run_id, waiter.heading = None, None
            elif not waiter.done.done():
                waiter.done.set_result(now)
        self.run_finished.set()

    # --- auto reruns (the Train page's live panel) ---------------------------------------------

    def start_auto_rerun(self, fragment_id: str, interval: float) -> None:
        self.stop_auto_rerun(fragment_id)
        task = asyncio.create_task(self.auto_rerun(fragment_id, interval), name=f"auto-{self.name}")
        self.auto_reruns[fragment_id] = task

    def stop_auto_rerun(self, fragment_id: str) -> None:
        task = self.auto_reruns.pop(fragment_id, None)
        if task is not None:
            task.cancel()

    def stop_auto_reruns(self) -> None:
        for fragment_id in list(self.auto_reruns):
            self.stop_auto_rerun(fragment_id)

    async def auto_rerun(self, fragment_id: str, interval: float) -> None:
        """Like the browser's setInterval: a fragment rerun every `interval` s, answered or not."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.send(self.message("auto_rerun", fragment_id=fragment_id))
                self.stats.actions["auto rerun"] += 1
            except Exception as exc:  # noqa: BLE001 - a failed send ends the timer, counted as an error
                if not self.broken:  # a broken socket is reported once, by the trainer
                    self.stats.error(self.name, "auto rerun", f"{type(exc).__name__}: {exc}")
                return

    # --- sending -------------------------------------------------------------------------------

    def message(self, name: str, template: Message | None = None, **options) -> BackMsg:
        recording = self.target.recording
        template = template if template is not None else recording.messages[name]
        return build_message(
            template, recording.widgets, self.view, self.target.base_url, query_string=self.query_string, **options
        )

    async def send(self, msg: BackMsg) -> None:
        await self.ws.send(msg.SerializeToString())

    async def act(self, name: str, template: Message | None = None, **options) -> Waiter:
        """Send one recorded message and wait for the run it starts to finish (bounded by the timeout)."""
        self.check_connection()
        msg = self.message(name, template, **options)
        waiter = Waiter(time.perf_counter(), asyncio.get_running_loop().create_future())
        self.waiter = waiter
        try:
            await self.send(msg)
            await asyncio.wait_for(asyncio.shield(waiter.done), self.timeout)
        except TimeoutError:
            raise TimeoutError(f"{name}: no finished run within {self.timeout:.0f} s") from None
        finally:
            self.waiter = None
        self.stats.actions[name] += 1
        return waiter

    # --- what a sketcher does ------------------------------------------------------------------

    async def stroke(self, stroke: Stroke) -> None:
        waiter = await self.act("stroke", stroke.message)
        finished = waiter.done.result()
        self.stats.stroke_runs.append(finished - waiter.sent)
        if waiter.heading is None:
            raise AssertionError(f"the stroke's run finished without a prediction heading (page: {self.view.headings})")
        at, heading = waiter.heading
        verdict = verdict_of(heading)
        if verdict is None:
            raise AssertionError(f"the prediction heading is not a verdict: {heading!r}")
        self.stats.strokes.append(at - waiter.sent)
        self.stats.predictions[verdict] += 1
        if verdict != verdict_of(stroke.heading):
            raise AssertionError(f"predicted {heading!r} for a stroke recorded as {stroke.heading!r}")
        await self.fetch_media(list(self.view.media))

    async def clear(self) -> None:
        waiter = await self.act("clear")
        self.stats.clears.append(waiter.done.result() - waiter.sent)
        if self.view.headings != ["Draw a digit"]:
            raise AssertionError(f"after Clear the prediction panel shows {self.view.headings}")

    async def fetch_media(self, urls: list[str]) -> None:
        """GET the run's images like the browser's <img> tags do; anything but 200 is an error."""
        for url in urls:
            status = await http_get_status(self.target.base_url, url, self.headers)
            self.stats.actions["media"] += 1
            if status != 200:
                raise ConnectionError(f"GET {url} answered {status}")

    # --- what a trainer does -------------------------------------------------------------------

    def job_overrides(self) -> dict[str, object]:
        args = self.target.args
        return {"cfg_train_limit": args.train_images, "cfg_epochs": args.train_epochs}

    async def start_job(self) -> str:
        await self.act("train_start", overrides=self.job_overrides())
        if self.view.job is None:
            raise AssertionError("Start training rendered no run")
        args = self.target.args
        epochs = f"{args.train_epochs} epoch{'' if args.train_epochs == 1 else 's'}"
        # pages/train.py job_title names the limit only when there is one (0 = all: the fast preset itself)
        wanted = (epochs, f"first {args.train_images:,} images") if args.train_images else (epochs,)
        if not all(part in self.view.job_title for part in wanted):
            raise AssertionError(f"the run did not get the form's values {wanted}: {self.view.job_title!r}")
        return self.view.job[0]

    async def wait_job(self, entry: dict, give_up: float) -> str:
        """Until the watched run leaves queued/training: its final state; entry["started"] set when it trains."""
        while True:
            self.check_connection()
            job = self.view.job
            state = job[1] if job and job[0] == entry["job"] else "queued"
            if entry["started"] is None and state == "training":
                entry["started"] = time.perf_counter()
            if state not in TRAINING_STATES:
                return state
            remaining = give_up - time.perf_counter()
            if remaining <= 0:
                return "unfinished"
            self.run_finished.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.run_finished.wait(), min(remaining, self.timeout))


def client_address(session_name: str) -> str:
    """A made-up address, one per session name (10.x.y.z): stable, so a session's requests stay together."""
    digest = hashlib.sha256(session_name.encode()).digest()
    return f"10.{digest[0]}.{digest[1]}.{digest[2]}"


async def http_get_status(base_url: str, path: str, headers: dict[str, str]) -> int | None:
    """The status code of GET path (HTTP/1.1, body read and dropped); None on a broken answer."""
    parts = urlsplit(base_url)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port), HTTP_TIMEOUT)
    try:
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n{extra}Connection: close\r\n\r\n"
        writer.write(request.encode())
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), HTTP_TIMEOUT)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    status_line = answer.split(b"\r\n", 1)[0].split()
    return int(status_line[1]) if len(status_line) >= 2 and status_line[1].isdigit() else None


# ---------------------------------------------------------------------------------------------
# The users


def think(rng: random.Random, mean: float) -> float:
    """Seconds until the next stroke: uniform around the mean."""
    return rng.uniform(mean * (1 - STROKE_JITTER), mean * (1 + STROKE_JITTER))


async def guarded(session: Session, action: str, coroutine) -> bool:
    """Run one action; any failure is an error of the current step (and False)."""
    try:
        await coroutine
        return True
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure of an action counts
        session.stats.error(session.name, action, f"{type(exc).__name__}: {exc}")
        return False


async def sketcher(name: str, target: Target, stats_of, deadline: float, rng: random.Random) -> None:
    """Visit Sketch and draw recorded digits until the deadline; sometimes leave and come back as new."""
    args = target.args
    visit, again = 0, True
    while again and time.perf_counter() < deadline:
        visit += 1
        session = Session(f"{name}.{visit}", target, stats_of)
        try:
            if not await guarded(session, "first page", session.open()):
                await asyncio.sleep(ERROR_PAUSE)  # do not hammer a server that refused
                continue
            again = await draw_until(session, target.recording, deadline, rng, args.stroke_interval)
        finally:
            await session.close()


async def draw_until(session: Session, recording: Recording, deadline: float, rng, mean_interval: float) -> bool:
    """Draw recorded digits, Clear after each; True when the user leaves and comes back, False at the deadline.

    Strokes keep their own pace (one every `mean_interval` s on average, whatever else happens); Clear
    comes between a digit's last stroke and the next digit's first, halfway from the prediction.
    """
    next_at = time.perf_counter() + think(rng, mean_interval)
    drawing_index = rng.randrange(len(recording.drawings))
    while True:
        drawing = recording.drawings[drawing_index % len(recording.drawings)]
        drawing_index += 1
        for stroke in drawing.strokes:
            if not await paced(next_at, deadline):
                return False
            next_at = time.perf_counter() + think(rng, mean_interval)
            if not await guarded(session, "stroke", session.stroke(stroke)):
                return True  # a new visit starts clean
        if not await paced((time.perf_counter() + next_at) / 2, deadline):
            return False
        if not await guarded(session, "clear", session.clear()):
            return True
        if rng.random() < session.target.args.revisit:
            return True


async def paced(at: float, deadline: float) -> bool:
    """Sleep until `at`; False when that is past the deadline."""
    if at >= deadline:
        return False
    await asyncio.sleep(max(0.0, at - time.perf_counter()))
    return True


@dataclass
class TrainingLog:
    jobs: list[dict] = field(default_factory=list)  # {job, state, clicked, started, ended} (perf_counter)


async def trainer(name: str, target: Target, stats_of, log: TrainingLog) -> None:
    """Open Train and keep a small training run going, one after the other, until cancelled."""
    session = Session(name, target, stats_of)
    try:
        if not await guarded(session, "first page", session.open()):
            return
        if not await guarded(session, "open train", session.act("open_train")):
            return
        while True:
            entry = {"job": None, "state": "queued", "clicked": time.perf_counter(), "started": None, "ended": None}
            if not await guarded(session, "start training", start_and_watch(session, entry, log)):
                return
            await asyncio.sleep(TRAIN_RESTART_PAUSE)
    finally:
        await session.close()


async def start_and_watch(session: Session, entry: dict, log: TrainingLog) -> None:
    entry["job"] = await session.start_job()
    log.jobs.append(entry)
    entry["state"] = await session.wait_job(entry, entry["clicked"] + session.target.args.job_timeout)
    entry["ended"] = time.perf_counter()
    if entry["state"] != "finished":
        limit = session.target.args.job_timeout
        raise AssertionError(f"{entry['job']} ended {entry['state']} (job timeout {limit:.0f} s)")


def training_busy_fraction(log: TrainingLog, start: float, end: float) -> float | None:
    """The part of [start, end] during which a watched job was training (a job still training counts to end)."""
    intervals = sorted((j["started"], j["ended"] or end) for j in log.jobs if j["started"] is not None)
    if end <= start:
        return None
    covered, cursor = 0.0, start
    for a, b in intervals:
        a, b = max(a, cursor), min(b, end)
        if b > a:
            covered += b - a
            cursor = b
    return round(covered / (end - start), 2)


# ---------------------------------------------------------------------------------------------
# Steps and the run


class RssSampler:
    """The server's VmRSS every RSS_SAMPLE_INTERVAL seconds, on the event loop (no thread)."""

    def __init__(self, pid: int | None):
        self.pid = pid
        self.peak_mb: float | None = None
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        if self.pid:
            self.task = asyncio.create_task(self.run(), name="rss")

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(RSS_SAMPLE_INTERVAL)

    def sample(self) -> None:
        rss = read_tree_rss_mb(self.pid)
        if rss is not None:
            self.peak_mb = max(rss, self.peak_mb or 0.0)

    def reset(self) -> float | None:
        peak, self.peak_mb = self.peak_mb, None
        return peak

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task


async def run_step(
    sessions: int, seconds: float, target: Target, holder: dict, server_pid: int | None, sampler: RssSampler, seed: int
) -> dict:
    """`sessions` fresh sketchers for `seconds` (arriving at SESSION_ARRIVALS_PER_S); the step's figures."""
    stats = StepStats(sessions, target.args.stroke_interval)
    holder["stats"] = stats
    sampler.reset()
    before = Usage.now(server_pid)
    deadline = time.perf_counter() + seconds
    arrival = 1.0 / SESSION_ARRIVALS_PER_S

    async def arrive(i: int) -> None:
        await asyncio.sleep(i * arrival)
        await sketcher(f"s{sessions}-{i}", target, lambda: stats, deadline, random.Random(seed * 1000 + i))

    tasks = [asyncio.create_task(arrive(i)) for i in range(sessions)]
    limit = seconds + sessions * arrival + 2 * target.args.action_timeout + CLOSE_TIMEOUT
    done, pending = await asyncio.wait(tasks, timeout=limit)
    for task in pending:
        task.cancel()
    if pending:
        stats.error("-", "step", f"{len(pending)} sessions still busy {limit:.0f} s after the step began: cancelled")
        await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        if task.exception() is not None:
            stats.error("-", "session", f"{type(task.exception()).__name__}: {task.exception()}")
    usage = before.until(Usage.now(server_pid))
    sampler.sample()
    return step_figures(stats, usage, sampler.reset())


def step_figures(stats: StepStats, usage: dict, rss_peak_mb: float | None) -> dict:
    strokes, first = latency_summary(stats.strokes), latency_summary(stats.first_pages)
    figures = {
        "sessions": stats.sessions,
        "errors": len(stats.errors),
        "strokes": strokes["n"],
        "stroke_p50_ms": strokes["p50_ms"],
        "stroke_p90_ms": strokes["p90_ms"],
        "stroke_p99_ms": strokes["p99_ms"],
        "stroke_max_ms": strokes["max_ms"],
        "stroke_run_p50_ms": latency_summary(stats.stroke_runs)["p50_ms"],
        "strokes_per_s": round(strokes["n"] / usage["wall_s"], 1) if usage["wall_s"] else None,
        "offered_strokes_per_s": round(stats.sessions / stats.stroke_interval, 1),
        "first_pages": first["n"],
        "first_page_p50_ms": first["p50_ms"],
        "first_page_p99_ms": first["p99_ms"],
        "clear_p50_ms": latency_summary(stats.clears)["p50_ms"],
        **usage,
        "server_rss_peak_sampled_mb": None if rss_peak_mb is None else round(rss_peak_mb),
        "predictions": dict(sorted(stats.predictions.items())),
        "actions": dict(stats.actions),
        "error_messages": stats.errors[:50],
    }
    figures["valid"] = figures["generator_cpu_cores"] <= MAX_GENERATOR_CORES
    return figures


def print_step(step: dict) -> None:
    def f(key: str, spec: str = ".0f") -> str:
        return benchlib.fmt(step.get(key), spec)

    flag = "" if step["valid"] else "  INVALID: the generator used more than 0.5 core"
    print(
        f"  {step['sessions']:3d} sessions: {step['strokes']} strokes ({f('strokes_per_s', '.1f')}/s of "
        f"{f('offered_strokes_per_s', '.1f')}/s offered), "
        f"stroke->prediction p50 {f('stroke_p50_ms')} / p99 {f('stroke_p99_ms')} ms, "
        f"first page p50 {f('first_page_p50_ms')} ms (n={step['first_pages']}), errors {step['errors']}; "
        f"cores: generator {f('generator_cpu_cores', '.2f')}, server {f('server_cpu_cores', '.2f')}, "
        f"others {f('other_busy_cores', '.2f')}; training {f('training_busy_fraction', '.0%')} of the time{flag}",
        flush=True,
    )


async def drive(target: Target, steps: list[int], server_pid: int | None) -> dict:
    """The trainers for the whole run, and the steps one after the other (the ramp)."""
    args = target.args
    warmup = StepStats(0)  # errors before the first step (the trainers' start)
    holder: dict = {"stats": warmup}
    sampler = RssSampler(server_pid)
    sampler.start()
    log = TrainingLog()
    trainers = [
        asyncio.create_task(trainer(f"t{i}", target, lambda: holder["stats"], log)) for i in range(args.trainers)
    ]
    run_start = Usage.now(server_pid)
    results: list[dict] = []
    try:
        if trainers:
            await wait_for_training(log, holder, args.action_timeout * 2)
        for i, sessions in enumerate(steps):
            step_start = time.perf_counter()
            step = await run_step(sessions, args.step_seconds, target, holder, server_pid, sampler, args.seed + i)
            step["training_busy_fraction"] = training_busy_fraction(log, step_start, time.perf_counter())
            results.append(step)
            print_step(step)
            done = [(s["sessions"], s["stroke_p99_ms"]) for s in results]
            if ramp_should_stop(done, args.sessions):
                break
            await asyncio.sleep(PAUSE_BETWEEN_STEPS)
    finally:
        for task in trainers:
            task.cancel()
        await asyncio.gather(*trainers, return_exceptions=True)
        await sampler.stop()
    whole = run_start.until(Usage.now(server_pid))
    return {"steps": results, "whole": whole, "training": log, "warmup_errors": warmup.errors}


async def wait_for_training(log: TrainingLog, holder: dict, limit: float) -> None:
    """Until the trainers' first job trains (or the limit): the steps then measure under training."""
    give_up = time.perf_counter() + limit
    while time.perf_counter() < give_up and not any(j["started"] for j in log.jobs):
        await asyncio.sleep(0.2)
        if holder["stats"].errors:
            return


# ---------------------------------------------------------------------------------------------
# Recording from a real Chromium session (--record)


def frames_to_recording(frames: list[tuple[str, bytes]], headings: list[str], digits: tuple[int, ...]) -> Recording:
    """Classify the frames Chromium sent (and what it got) into the recording's messages.

    frames: ("sent" | "received", bytes) in order; headings: the prediction heading Chromium showed
    after each digit. Sent reruns are: the first one (page load), strokes (a new canvas value),
    Clear (the Clear button's trigger), the Train page's first run, Start training (its trigger),
    and the first fragment auto-rerun.
    """
    view, widgets, pages = PageView(), {}, {}
    messages: dict[str, Message] = {}
    drawings: list[list[Stroke]] = [[]]
    pending: dict | None = None  # the stroke waiting for its heading
    last_canvas = None
    for direction, data in frames:
        if direction == "received":
            msg = ForwardMsg.FromString(data)
            kind = msg.WhichOneof("type")
            if kind == "navigation":
                pages.update({p.page_name: p.page_script_hash for p in msg.navigation.app_pages})
            elif kind == "new_session":
                view.start_run(not msg.metadata.run.fragment_ids)
            elif kind == "delta":
                heading = view.apply_delta(tuple(msg.metadata.delta_path), msg.delta)
                if heading is not None and pending is not None:
                    pending["heading"] = heading
            continue
        msg = BackMsg.FromString(data)
        if msg.WhichOneof("type") != "rerun_script":
            continue
        if pending is not None:
            drawings[-1].append(Stroke(pending["message"], pending.get("heading", "")))
            pending = None
        selectors = {wid: sel for sel, wid in view.widgets.items()}
        widgets.update({w.id: selectors[w.id] for w in msg.rerun_script.widget_states.widgets if w.id in selectors})
        name, canvas = classify_sent(msg, selectors, pages, bool(messages))
        as_dict = json_format.MessageToDict(msg)
        if name == "stroke" and canvas != last_canvas:
            pending = {"message": as_dict}
            last_canvas = canvas
        elif name == "clear":
            messages.setdefault("clear", as_dict)
            drawings.append([])
            last_canvas = None
        elif name is not None and name != "stroke":
            messages.setdefault(name, as_dict)
    if pending is not None:
        drawings[-1].append(Stroke(pending["message"], pending.get("heading", "")))
    drawn = [d for d in drawings if d]
    if len(drawn) != len(digits) or len(headings) != len(digits):
        raise ValueError(f"recorded {len(drawn)} drawings and {len(headings)} headings for digits {digits}")
    return Recording(
        messages,
        tuple(Drawing(digit, tuple(s), h) for digit, s, h in zip(digits, drawn, headings, strict=True)),
        widgets,
        {},
    )


def classify_sent(msg: BackMsg, selectors: dict[str, str], pages: dict[str, str], seen_any: bool):
    """(name, canvas value) of a rerun BackMsg Chromium sent; name None for reruns the test does not replay."""
    state = msg.rerun_script
    canvas = None
    for widget in state.widget_states.widgets:
        selector = selectors.get(widget.id, "")
        if widget.WhichOneof("value") == "trigger_value" and widget.trigger_value:
            if selector.endswith("|Clear"):
                return "clear", None
            if selector.endswith("|Start training"):
                return "train_start", None
        if selector.startswith("bidi_component|canvas_"):
            canvas = widget.json_value
    if not seen_any:
        return "page_load", None
    if state.is_auto_rerun:
        return "auto_rerun", None
    on_form = any("|cfg_" in selectors.get(w.id, "") for w in state.widget_states.widgets)
    if state.page_script_hash == pages.get("Train") and not on_form:
        return "open_train", None
    if canvas is not None and state.page_script_hash == pages.get("Sketch"):
        return "stroke", canvas
    return None, None


def record(path: Path, args: argparse.Namespace) -> int:
    """Draw RECORDED_DIGITS, Clear, open Train and start a run in Chromium; keep what it sent."""
    from playwright.sync_api import sync_playwright

    from bench import harness

    frames: list[tuple[str, bytes]] = []

    def attach(ws) -> None:
        if ws.url.endswith(STREAM_PATH):
            ws.on("framesent", lambda payload: frames.append(("sent", as_bytes(payload))))
            ws.on("framereceived", lambda payload: frames.append(("received", as_bytes(payload))))

    headings = []
    with tempfile.TemporaryDirectory(prefix="mnist-load-record-") as runs:
        env = server_env(Path(runs))
        with harness.run_app(env, timeout=120) as server, sync_playwright() as playwright:
            browser = harness.launch_chromium(playwright)
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.on("websocket", attach)
            page.goto(server.url + "/")
            harness.wait_for_canvas(page)
            for digit in RECORDED_DIGITS:
                harness.draw_digit(page, digit)
                headings.append(harness.prediction_heading(page))
                print(f"  drew a {digit}: {headings[-1]}", flush=True)
                page.get_by_role("button", name="Clear").click()
                page.locator(harness.PREDICTION_SELECTOR).filter(has_text="Draw a digit").wait_for()
                harness.wait_for_canvas(page)
            page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Train").click()
            page.get_by_role("button", name="Start training").wait_for()
            for label, value in RECORDED_FORM.items():  # a small run, as the load test's trainers start
                fill_number(page, label, value)
            page.get_by_role("button", name="Start training").click()
            page.get_by_text(re.compile(r"^job-\d+ · ")).first.wait_for()
            wait_for_auto_rerun(page, frames)
            browser.close()
    recording = frames_to_recording(frames, headings, RECORDED_DIGITS)
    write_recording(path, recording)
    print(f"recorded {sum(len(d.strokes) for d in recording.drawings)} strokes -> {path.relative_to(benchlib.REPO)}")
    return 0


def fill_number(page, label: str, value: int) -> None:
    from bench import harness

    field_ = page.get_by_label(label, exact=True)
    field_.fill(str(value))
    field_.press("Enter")
    harness.wait_until_idle(page, 60_000)


def as_bytes(payload) -> bytes:
    return payload if isinstance(payload, bytes) else base64.b64decode(payload)


def wait_for_auto_rerun(page, frames: list, limit_s: float = 20.0) -> None:
    """Until Chromium has sent a fragment auto-rerun (the live panel refreshes every second)."""
    give_up = time.perf_counter() + limit_s
    while time.perf_counter() < give_up:
        for direction, data in frames:
            if direction == "sent" and BackMsg.FromString(data).rerun_script.is_auto_rerun:
                return
        page.wait_for_timeout(250)
    raise TimeoutError(f"Chromium sent no auto-rerun within {limit_s:.0f} s")


def write_recording(path: Path, recording: Recording) -> None:
    import importlib.metadata as metadata

    payload = {
        "format": RECORDING_FORMAT,
        "meta": {
            "recorded": datetime.now(UTC).isoformat(timespec="seconds"),
            "by": "python bench/load.py --record (Chromium through Playwright, bench.harness.draw_digit)",
            "streamlit": metadata.version("streamlit"),
            "streamlit_drawable_canvas": metadata.version("streamlit-drawable-canvas"),
        },
        "widgets": dict(sorted(recording.widgets.items())),
        "messages": recording.messages,
        "drawings": [
            {
                "digit": d.digit,
                "browser_heading": d.browser_heading,
                "strokes": [{"heading": s.heading, "message": s.message} for s in d.strokes],
            }
            for d in recording.drawings
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------------------------------
# Correctness in real browsers (--browser)


def browser_check(url: str, sessions: int, rounds: int) -> dict:
    """`sessions` Chromium contexts at once, each drawing digits in turn; the heading must name the digit."""
    from playwright.sync_api import sync_playwright

    from bench import harness

    drawn, wrong, errors = 0, [], []
    with sync_playwright() as playwright:
        browser = harness.launch_chromium(playwright)
        try:
            pages = []
            for _ in range(sessions):
                page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
                page.goto(url + "/")
                pages.append(page)
            for r in range(rounds):
                for i, page in enumerate(pages):
                    digit = (r * sessions + i) % 10
                    try:
                        harness.draw_digit(page, digit)
                        heading = harness.prediction_heading(page)
                        drawn += 1
                        if predicted_digit(heading) != digit:
                            wrong.append(f"session {i} drew a {digit}: {heading!r}")
                        page.get_by_role("button", name="Clear").click()
                        page.locator(harness.PREDICTION_SELECTOR).filter(has_text="Draw a digit").wait_for()
                    except Exception as exc:  # noqa: BLE001 - every failure counts
                        errors.append(f"session {i} digit {digit}: {type(exc).__name__}: {str(exc)[:200]}")
        finally:
            browser.close()
    return {"browser_sessions": sessions, "drawings": drawn, "wrong": wrong, "errors": errors}


# ---------------------------------------------------------------------------------------------
# Server, report, main


def server_env(runs: Path) -> dict[str, str]:
    """A temporary runs folder (seeded with a model when the bundled one is missing) and the data."""
    path, _description = benchlib.checkpoint_path()
    if path is not None:
        shutil.copytree(path, runs / path.name)
    return {"MNIST_DATA_DIR": str(benchlib.data_dir()), "MNIST_RUNS_DIR": str(runs)}


def server_log_errors(text: str) -> list[str]:
    """Tracebacks and errors the server logged (the line and the exception's line)."""
    found, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback") or " ERROR " in line or line.startswith("Exception"):
            tail = [ln for ln in lines[i + 1 : i + 40] if ln and not ln[0].isspace()][:1]
            found.append(" ".join([line, *tail]))
    return found


def check_loopback(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost") or not parts.port:
        raise SystemExit(f"--url must be http://127.0.0.1:PORT (loopback only), got {url!r}")
    return f"http://127.0.0.1:{parts.port}"


def headline(
    args: argparse.Namespace, result: dict, server_peak_mb: float | None, log_errors: list[str], machine: dict
) -> dict:
    """The run's figures: the --sessions step's, the knee, the whole run's CPU and errors."""
    steps = result["steps"]
    main = next((s for s in steps if s["sessions"] == args.sessions), steps[-1] if steps else None)
    knee = find_knee([(s["sessions"], s["stroke_p99_ms"]) for s in steps]) if len(steps) > 1 else None
    # The headline step's errors: a ramp step past the knee may time out by design (it is in "ramp").
    errors = (main["errors"] if main else 0) + len(log_errors) + len(result["warmup_errors"])
    log = result["training"]
    whole = result["whole"]
    valid = whole["generator_cpu_cores"] <= MAX_GENERATOR_CORES and all(s["valid"] for s in steps)
    return {
        "sessions": main["sessions"] if main else 0,
        "trainers": args.trainers,
        "server_processes": None if args.url else args.processes,  # with --url: unknown
        "errors": errors,
        "ramp_errors": sum(s["errors"] for s in steps),
        "strokes": main["strokes"] if main else 0,
        "stroke_p50_ms": main and main["stroke_p50_ms"],
        "stroke_p99_ms": main and main["stroke_p99_ms"],
        "stroke_max_ms": main and main["stroke_max_ms"],
        "first_page_p50_ms": main and main["first_page_p50_ms"],
        "first_page_p99_ms": main and main["first_page_p99_ms"],
        "predictions": main["predictions"] if main else {},
        "generator_cpu_cores": whole["generator_cpu_cores"],
        "generator_cpu_cores_max_step": max((s["generator_cpu_cores"] for s in steps), default=None),
        "valid": valid,
        "server_cpu_cores": main and main["server_cpu_cores"],
        "server_peak_rss_mb": None if server_peak_mb is None else round(server_peak_mb),
        "other_busy_cores": whole["other_busy_cores"],  # how busy the machine was with other work
        "other_busy_cores_before": machine.get("busy_cores_before_start"),
        "training_jobs_finished": sum(j["state"] == "finished" for j in log.jobs),
        "training_busy_fraction": main and main["training_busy_fraction"],
        "knee_sessions": knee,
        "knee_searched_to": max((s["sessions"] for s in steps), default=None) if len(steps) > 1 else None,
        "ramp": [{k: s[k] for k in RAMP_KEYS} for s in steps],
    }


RAMP_KEYS = (
    "sessions", "errors", "strokes", "strokes_per_s", "stroke_p50_ms", "stroke_p99_ms", "first_page_p50_ms",
    "server_cpu_cores", "other_busy_cores",
)  # fmt: skip


def summary_rows(figures: dict) -> list[dict]:
    def latency_row(label: str, key: str, limit_ms: float) -> dict:
        value = figures[key]
        passed = None if value is None else value <= limit_ms
        return benchlib.row(
            label, benchlib.fmt(value, ".0f", " ms"), target=f"<= {limit_ms:.0f} ms", result=benchlib.status(passed)
        )

    is_target = figures["sessions"] >= TARGET_SESSIONS and figures["trainers"] >= 1
    knee, searched = figures["knee_sessions"], figures["knee_searched_to"]
    knee_text = f"{knee} sessions" if knee else (f"> {searched} sessions" if searched else "not searched")
    sessions_text = f"{figures['sessions']} (+{figures['trainers']})"
    generator_text = benchlib.fmt(figures["generator_cpu_cores"], ".2f", " cores")
    return [
        benchlib.row("load: sessions (+ training)", sessions_text, target=f">= {TARGET_SESSIONS} (+1)",
                     result=benchlib.status(is_target)),
        benchlib.row("load: errors", str(figures["errors"]), target="0", result=benchlib.status(not figures["errors"])),
        latency_row("load: stroke -> prediction p50", "stroke_p50_ms", STROKE_P50_TARGET_MS),
        latency_row("load: stroke -> prediction p99", "stroke_p99_ms", STROKE_P99_TARGET_MS),
        latency_row("load: first complete page p50", "first_page_p50_ms", FIRST_PAGE_P50_TARGET_MS),
        benchlib.row("load: knee (stroke p99 > 1 s)", knee_text),
        benchlib.row("load: generator CPU", generator_text, target=f"<= {MAX_GENERATOR_CORES} cores",
                     result="PASS" if figures["valid"] else "INVALID"),
        benchlib.row("load: server peak RSS", benchlib.fmt(figures["server_peak_rss_mb"], ".0f", " MB")),
    ]  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=TARGET_SESSIONS, help="sketching sessions of the headline step")
    p.add_argument("--trainers", type=int, default=1, help="sessions that keep a training run going")
    p.add_argument("--ramp", default=",".join(map(str, DEFAULT_RAMP)), help="session counts of the ramp's steps")
    p.add_argument("--no-ramp", action="store_true", help="run the --sessions step only (no knee)")
    p.add_argument("--step-seconds", type=float, default=40.0, help="how long each step's sessions keep drawing")
    p.add_argument("--stroke-interval", type=float, default=2.0, help="mean seconds between a session's strokes")
    p.add_argument("--revisit", type=float, default=REVISIT_PROBABILITY, help="chance to leave, come back new")
    p.add_argument("--train-images", type=int, default=5000, help="training runs use the first N images (0 = all)")
    p.add_argument("--train-epochs", type=int, default=1)
    p.add_argument("--action-timeout", type=float, default=30.0, help="seconds for one message's run to finish")
    p.add_argument("--job-timeout", type=float, default=300.0, help="seconds after the end for a training run")
    p.add_argument("--url", help="drive this server (http://127.0.0.1:PORT) instead of starting one")
    p.add_argument("--server-pid", type=int, help="with --url: the server's pid, for its CPU and memory")
    p.add_argument("--recording", type=Path, default=RECORDING)
    p.add_argument("--record", action="store_true", help="re-record the messages from a real Chromium session")
    p.add_argument("--browser", action="store_true", help="correctness check: 5 Chromium sessions draw digits")
    p.add_argument("--quick", action="store_true", help="CI smoke run: 4 sessions, 1 trainer, one 20 s step")
    p.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--processes",
        type=int,
        default=serve.default_processes() if serve.nginx_available() else 1,
        help="Streamlit processes behind nginx, as `python -m studio.serve` runs them (default: one per core "
        "when nginx is installed, else 1 = plain `streamlit run`)",
    )
    args = p.parse_args(argv)
    args.ramp = [int(n) for n in args.ramp.split(",") if n.strip()]
    if args.quick:
        args.sessions, args.trainers, args.step_seconds, args.no_ramp = 4, 1, QUICK_STEP_SECONDS, True
        args.train_images = min(args.train_images, 2000)
    return args


def run_load(args: argparse.Namespace, base_url: str, server_pid: int | None) -> dict:
    recording = load_recording(args.recording)
    steps = [args.sessions] if args.no_ramp else ramp_steps(args.ramp, args.sessions)
    print(
        f"steps {steps} sessions x {args.step_seconds:.0f} s, a stroke every {args.stroke_interval} s on average, "
        f"{args.trainers} trainer(s) ({args.train_epochs} epoch(s) on {args.train_images:,} images, repeated)",
        flush=True,
    )
    return asyncio.run(drive(Target(base_url, recording, args), steps, server_pid))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.record:
        return record(args.recording, args)
    machine = benchlib.start("load")
    log_errors: list[str] = []
    with contextlib.ExitStack() as stack:
        if args.url:
            base_url, server_pid = check_loopback(args.url), args.server_pid
        else:
            from bench import harness

            runs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mnist-load-runs-")))
            SERVER_LOG.parent.mkdir(parents=True, exist_ok=True)
            server = stack.enter_context(
                harness.run_app(server_env(runs), timeout=120, log_path=SERVER_LOG, processes=args.processes)
            )
            base_url, server_pid = server.url, server.process.pid
            how = "streamlit run" if args.processes == 1 else f"studio.serve, {args.processes} processes behind nginx"
            print(f"server {base_url} (pid {server_pid}, {how}) ready in {server.ready - server.started:.1f} s")
        if args.browser:
            return report_browser(browser_check(base_url, sessions=5, rounds=2), args)
        result = run_load(args, base_url, server_pid)
        peak = read_tree_status_mb(server_pid, "VmHWM") if server_pid else None
    if not args.url:
        log_errors = server_log_errors(SERVER_LOG.read_text(errors="replace"))
        for line in log_errors:
            print(f"  ERROR server log: {line}", flush=True)
    figures = headline(args, result, peak, log_errors, machine)
    scalars = {k: v for k, v in figures.items() if not isinstance(v, dict | list)}  # the RESULT line's
    benchlib.finish("load", machine, scalars, summary_rows(figures), steps=result["steps"], whole=result["whole"],
                    training_jobs=training_jobs(result["training"]), server_log_errors=log_errors,
                    config={k: str(v) for k, v in vars(args).items()})  # fmt: skip
    if not figures["valid"]:
        print("INVALID: the load generator used more than 0.5 core; its figures measure the generator too")
    if args.json:
        print(json.dumps(figures), flush=True)
    return 1 if figures["errors"] else 0


def training_jobs(log: TrainingLog) -> list[dict]:
    """The trainers' jobs with times in seconds from the first click (for the results file)."""
    if not log.jobs:
        return []
    t0 = log.jobs[0]["clicked"]

    def rel(t: float | None) -> float | None:
        return None if t is None else round(t - t0, 1)

    return [{**j, **{k: rel(j[k]) for k in ("clicked", "started", "ended")}} for j in log.jobs]


def report_browser(result: dict, args: argparse.Namespace) -> int:
    print(f"browser check: {result['drawings']} digits drawn in {result['browser_sessions']} Chromium sessions")
    for line in result["wrong"] + result["errors"]:
        print(f"  ERROR {line}")
    if args.json:
        print(json.dumps({**result, "errors": len(result["errors"]), "wrong": len(result["wrong"])}), flush=True)
    return 1 if result["wrong"] or result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
