"""Start the real app on a free localhost port and find Chromium: shared by the browser tests and bench/."""

from __future__ import annotations

import base64
import collections
import contextlib
import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench import procfs, ps

REPO = Path(__file__).resolve().parents[1]  # the checkout (the project installs editable: pip install -e .)
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
# Without the background-networking flags Chromium keeps dialling out on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    started: float  # time.perf_counter() when `streamlit run` was launched
    ready: float  # when /_stcore/health first answered

    def rss_mb(self) -> float | None:
        """Resident memory of the server process in MB; None once it has exited."""
        return ps.read_rss_mb(self.process.pid)

    def peak_rss_mb(self) -> float | None:
        """Peak resident memory (VmHWM) of the server process in MB; None once it has exited."""
        return procfs.read_peak_rss_mb(self.process.pid)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_health(url: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {process.returncode} before answering")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        time.sleep(0.1)
    raise TimeoutError(f"{url}/_stcore/health did not answer within {timeout:.0f}s")


def stop_process(process: subprocess.Popen, timeout_s: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within timeout_s; waited for either way."""
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def run_app(
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
    log_path: Path | None = None,
    processes: int = 1,
    preexec_fn=None,
) -> Iterator[Server]:
    """`streamlit run streamlit_app.py` on a free port; stopped (and waited for) on exit.

    processes > 1: `python -m studio.serve` instead, that many Streamlit processes behind nginx (the
    process is the launcher; its children are the backends and nginx). preexec_fn runs in the child
    before it starts (bench/memory.py puts it into a memory cgroup there).
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
        "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
    ]  # fmt: skip
    if processes > 1:
        command = [
            sys.executable, "-m", "studio.serve", "--processes", str(processes), "--port", str(port),
            "--address", "127.0.0.1", "--backend-port", str(free_port()),
        ]  # fmt: skip
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115 - closed below
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=REPO, env={**os.environ, **(env or {})}, stdout=log, stderr=log, preexec_fn=preexec_fn
    )
    try:
        wait_for_health(url, process, timeout)
        yield Server(url, process, started, time.perf_counter())
    finally:
        stop_process(process, timeout_s=10)
        if log_path:
            log.close()


def launch_chromium(playwright):
    """Debian's Chromium through Playwright (Playwright's own browser download fails offline)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


# --- drawing on the Sketch canvas -------------------------------------------------------------

# What a browser that refuses cookies looks like to the page (a third-party iframe may): writes vanish,
# reads find nothing. The app then keeps the visitor's token in the address (?visitor=).
REFUSE_COOKIES_JS = """Object.defineProperty(Document.prototype, "cookie", {
  configurable: true, get() { return ""; }, set(value) {},
});"""
CANVAS_SELECTOR = "canvas.dc-canvas.upper-canvas"  # fabric.js's top layer: the one that takes the mouse
PREDICTION_SELECTOR = ".st-key-prediction"


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, n: int) -> list[tuple[float, float]]:
    """Points on an elliptic arc, angles in degrees (0 = right, 90 = down: screen coordinates)."""
    return [
        (cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
        for a in (start + (end - start) * i / (n - 1) for i in range(n))
    ]


# Handwriting-like strokes for each digit on the 280x280 canvas: a list of strokes, each a list of
# (x, y) points joined by mouse moves with the button held down.
DIGIT_STROKES: dict[int, list[list[tuple[float, float]]]] = {
    0: [_arc(140, 140, 58, 92, -100, 265, 48)],  # an upright ellipse, closed with a small overlap
    1: [[(152, 42), (147, 100), (141, 160), (135, 236)]],  # a vertical bar with a slight slant
    2: [_arc(140, 95, 55, 50, 200, 380, 20) + [(160, 140), (120, 185), (82, 228), (140, 226), (205, 224)]],
    3: [  # two arcs bulging to the right, meeting in the middle
        _arc(132, 92, 58, 48, -150, 95, 22),
        _arc(132, 180, 64, 52, -95, 155, 24),
    ],
    4: [  # the open four: a down-stroke then the bar, and the long vertical
        [(98, 42), (92, 90), (86, 150), (150, 150), (212, 148)],
        [(178, 60), (176, 140), (174, 240)],
    ],
    5: [[(200, 48), (100, 48), (94, 125)] + _arc(138, 172, 60, 55, -120, 150, 22)],
    6: [[(185, 45), (140, 80), (105, 130)] + _arc(140, 185, 55, 50, 180, 540, 30)],
    7: [[(72, 55), (140, 55), (208, 55), (170, 120), (135, 180), (112, 240)]],  # top bar, then the diagonal
    8: [_arc(140, 95, 45, 48, 90, -270, 28) + _arc(140, 188, 55, 47, -90, 270, 30)],
    9: [_arc(140, 95, 52, 50, 0, 360, 30) + [(190, 140), (182, 190), (172, 240)]],
}


def press_and_trace(page, points: list[tuple[float, float]], steps: int = 3) -> None:
    """The first part of a stroke: press at the first point and move through the rest, button held."""
    box = page.locator(CANVAS_SELECTOR).bounding_box()
    x0, y0 = box["x"], box["y"]
    page.mouse.move(x0 + points[0][0], y0 + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(x0 + x, y0 + y, steps=steps)


def release(page) -> None:
    """End the stroke: the canvas sends the drawing to the server after this."""
    watcher = _RUN_WATCHERS.get(page)
    if watcher is not None:
        watcher.mark_release()
    page.mouse.up()


def draw_stroke(page, points: list[tuple[float, float]], steps: int = 3) -> None:
    """One mouse stroke on the canvas: press at the first point, move through the rest, release."""
    press_and_trace(page, points, steps)
    release(page)


class ScriptRunWatcher:
    """What the server sends one page, read from its websocket frames through the DevTools protocol.

    Counts finished script runs and the elements sent per root container (0 main, 1 sidebar). Needed
    because the page's data-test-script-state attribute misses short runs: a fragment run over in a few
    ms is rendered "running" and "notRunning" in one React update, so the DOM never shows it running.
    Works on a page that is already open (the protocol reports frames of existing websockets too).
    """

    def __init__(self, page) -> None:
        self.finished: list[int] = []  # ForwardMsg.ScriptFinishedStatus of every run, in order
        self.deltas: collections.Counter[int] = collections.Counter()  # root container -> elements sent
        self.finished_at_release = 0
        self._session = page.context.new_cdp_session(page)
        self._session.on("Network.webSocketFrameReceived", self._on_frame)
        self._session.send("Network.enable")

    def _on_frame(self, event: dict) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        response = event["response"]
        if response["opcode"] != WEBSOCKET_BINARY_OPCODE:
            return
        message = ForwardMsg()
        message.ParseFromString(base64.b64decode(response["payloadData"]))
        kind = message.WhichOneof("type")
        if kind == "script_finished":
            self.finished.append(message.script_finished)
        elif kind == "delta" and message.metadata.delta_path:
            self.deltas[message.metadata.delta_path[0]] += 1

    def mark_release(self) -> None:
        self.finished_at_release = len(self.finished)

    def finished_since_release(self) -> list[int]:
        return self.finished[self.finished_at_release :]


WEBSOCKET_BINARY_OPCODE = 2
_RUN_WATCHERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # page -> its ScriptRunWatcher


def script_runs(page) -> ScriptRunWatcher:
    """The page's ScriptRunWatcher, started on first use."""
    if page not in _RUN_WATCHERS:
        _RUN_WATCHERS[page] = ScriptRunWatcher(page)
    return _RUN_WATCHERS[page]


# Browser-side bookkeeping: the time of the last mouse-up on the page, and whether a script run has
# started (data-test-script-state="running") and then finished since then.
INSTALL_WATCHERS_JS = """() => {
  if (window.__e2e) return;
  const state = {lastUp: null, sawRunning: false, settled: false, settledAt: null};
  window.__e2e = state;
  window.addEventListener('mouseup', () => {
    state.lastUp = performance.now(); state.sawRunning = false; state.settled = false; state.settledAt = null;
  }, true);
  const check = () => {
    const app = document.querySelector('[data-testid="stApp"]');
    const running = app && app.getAttribute('data-test-script-state') === 'running';
    if (running) state.sawRunning = true;
    else if (state.sawRunning && !state.settled) { state.settled = true; state.settledAt = performance.now(); }
  };
  new MutationObserver(check).observe(
    document.body, {subtree: true, attributes: true, attributeFilter: ['data-test-script-state']});
}"""

# Resolves with performance.now() when the prediction container first shows a 'Prediction:' heading whose
# text differs from `previous` (checked on every DOM change, so no polling delay).
WATCH_PREDICTION_JS = """(previous) => new Promise((resolve) => {
  const heading = () => {
    const box = document.querySelector('.st-key-prediction');
    const h = box && box.querySelector('h3');
    return h ? h.innerText.trim() : null;
  };
  const done = () => {
    const text = heading();
    if (text && text.startsWith('Prediction:') && text !== previous) {
      observer.disconnect(); resolve([performance.now(), text]); return true;
    }
    return false;
  };
  const observer = new MutationObserver(done);
  observer.observe(document.body, {subtree: true, childList: true, characterData: true});
  done();
})"""


def install_watchers(page) -> None:
    page.evaluate(INSTALL_WATCHERS_JS)
    script_runs(page)


# Marks the run as settled for a run that the DOM watcher missed (see ScriptRunWatcher); settledAt is
# then when the server's script_finished had reached the page and been rendered, a frame late at most.
SETTLE_FROM_WEBSOCKET_JS = """() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => {
  const state = window.__e2e;
  if (!state.settled) { state.settled = true; state.settledAt = performance.now(); }
  resolve();
})))"""
POLL_MS = 20


def wait_for_run_after_stroke(page, timeout_ms: float) -> None:
    """Wait until the script run that the last stroke triggered has finished and the page has shown it."""
    watcher = script_runs(page)
    deadline = time.perf_counter() + timeout_ms / 1000
    while not watcher.finished_since_release():
        if page.evaluate("() => window.__e2e && window.__e2e.settled === true"):
            return
        if time.perf_counter() > deadline:
            raise TimeoutError(f"no script run finished within {timeout_ms / 1000:.0f} s of the stroke")
        page.wait_for_timeout(POLL_MS)  # lets Playwright deliver the websocket events
    wait_until_idle(page, timeout_ms)
    page.evaluate(SETTLE_FROM_WEBSOCKET_JS)


def wait_until_idle(page, timeout_ms: float) -> None:
    """Until no script run is in progress."""
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=timeout_ms)


def wait_for_canvas(page, timeout_ms: float = 60_000, settle_ms: float = 300) -> None:
    """Until no script run is in progress and the canvas has stayed in place for `settle_ms`.

    Clear gives the canvas a new key, so the component is mounted anew after the rerun; for a moment the
    canvas moves, and a stroke drawn then is lost (the drag selects the page's text instead).
    """
    deadline = time.perf_counter() + timeout_ms / 1000
    wait_until_idle(page, timeout_ms)
    canvas = page.locator(CANVAS_SELECTOR)
    box, since = None, time.perf_counter()
    while True:
        current = canvas.bounding_box(timeout=timeout_ms)
        now = time.perf_counter()
        if current != box:
            box, since = current, now
        elif (now - since) * 1000 >= settle_ms:
            return
        if now > deadline:
            raise TimeoutError(f"the canvas did not settle within {timeout_ms / 1000:.0f} s")
        time.sleep(0.05)


CANVAS_INK_JS = """c => {
  const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let ink = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i] > 128) ink++;
  return ink;
}"""


def canvas_ink(page) -> int:
    """How many bright pixels the drawing layer holds (0 on a cleared canvas)."""
    return page.locator("canvas.dc-canvas.lower-canvas").evaluate(CANVAS_INK_JS)


def wait_for_ink(page, before: int, digit: int, timeout_s: float = 5.0) -> int:
    """Until the drawing layer holds more ink than `before` (fabric.js paints on the next frame)."""
    deadline = time.perf_counter() + timeout_s
    while True:
        ink = canvas_ink(page)
        if ink > before:
            return ink
        if time.perf_counter() > deadline:
            raise AssertionError(f"a stroke of the {digit} left no ink on the canvas ({before} -> {ink} pixels)")
        time.sleep(0.05)


def placed(points: list[tuple[float, float]], centre_x: float, scale: float) -> list[tuple[float, float]]:
    """A digit's stroke moved so that its centre (140, 140) lands at (centre_x, 140), scaled about it."""
    return [(centre_x + (x - 140) * scale, 140 + (y - 140) * scale) for x, y in points]


def draw_digit(page, digit: int, timeout_ms: float = 60_000, centre_x: float | None = None, scale: float = 1.0) -> None:
    """Draw a digit stroke by stroke, letting the app finish its rerun after each stroke.

    centre_x and scale (canvas pixels, a factor) place a smaller digit elsewhere, e.g. two side by side.
    """
    install_watchers(page)
    for points in DIGIT_STROKES[digit]:
        if centre_x is not None:
            points = placed(points, centre_x, scale)
        wait_for_canvas(page, timeout_ms)  # idle, so that the run that ends next is this stroke's
        before = canvas_ink(page)
        draw_stroke(page, points)
        wait_for_ink(page, before, digit)
        wait_for_run_after_stroke(page, timeout_ms)


def prediction_heading(page) -> str:
    """The heading inside the prediction container ('Prediction: 7 (99.1%)' or 'Draw a digit')."""
    return page.locator(f"{PREDICTION_SELECTOR} h3").first.inner_text().strip()


# --- the canvas on a touch screen -------------------------------------------------------------


def touch_stroke(page, points: list[tuple[float, float]]) -> None:
    """One finger stroke on the canvas through the DevTools protocol (Playwright's touchscreen only taps).

    Needs a context with has_touch=True. The points are canvas pixels, as in DIGIT_STROKES.
    """
    box = page.locator(CANVAS_SELECTOR).bounding_box()
    session = page.context.new_cdp_session(page)
    try:
        for kind, (x, y) in [("touchStart", points[0])] + [("touchMove", point) for point in points[1:]]:
            touch_point = {"x": box["x"] + x, "y": box["y"] + y}
            session.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [touch_point]})
        session.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    finally:
        session.detach()


def tap_canvas(page, x: float, y: float) -> None:
    """A tap at canvas pixel (x, y)."""
    box = page.locator(CANVAS_SELECTOR).bounding_box()
    page.touchscreen.tap(box["x"] + x, box["y"] + y)


def toolbar_button(page, name: str):
    """A button of the canvas's own toolbar ('Undo', 'Redo'), inside the component's shadow root."""
    return page.locator(f'.dc-toolbar button[aria-label="{name}"]')


# The toolbar's opacity as rendered: Playwright counts an element with opacity 0 as visible.
TOOLBAR_OPACITY_JS = "button => Number(getComputedStyle(button.closest('.dc-toolbar')).opacity)"


def toolbar_opacity(page) -> float:
    return toolbar_button(page, "Undo").evaluate(TOOLBAR_OPACITY_JS)
