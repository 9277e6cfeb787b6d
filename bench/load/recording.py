"""The recorded messages the sessions replay: their format, reading them, and recording them in Chromium (--record)."""

from __future__ import annotations

import argparse
import base64
import json
import re
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from google.protobuf import json_format
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from bench import benchlib
from bench.load.protocol import STREAM_PATH, Message, PageView
from bench.load.server import server_env

RECORDING = benchlib.BENCH_DIR / "recorded" / "sketch_session.json"
RECORDING_FORMAT = 1
RECORDED_DIGITS = (7, 1, 4, 3)  # drawn by bench.harness.draw_digit: one- and two-stroke digits
RECORDED_FORM = {"Epochs": 1, "Training images (0 = all)": 2000}  # so Start sends these fields (overridable)


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
            "by": "python -m bench.load --record (Chromium through Playwright, bench.harness.draw_digit)",
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
