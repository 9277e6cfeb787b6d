"""Load test: many concurrent browser sessions drive the real app on localhost for a bounded time.

One headless Chromium (Debian's, through Playwright's async API) opens --sessions browser contexts,
each its own Streamlit session, all driven at once:

  every session  loads Sketch (/), then until --seconds have passed: draws a digit (one stroke, one of
                 a few shapes), waits for "Prediction: D (P%)", clears the canvas; now and then opens
                 Train or Explore (and its mistakes tab) through the sidebar, or reloads the app
  --trainers     of them first start a small run on Train (the first --train-images images, 1 epoch)
                 and watch it to the end; with the default pool of one training slot the others
                 wait in the queue, whose positions are recorded; then they sketch like the rest

Errors (the run fails, exit code 1, unless there are none): timeouts, Playwright errors, a Streamlit
exception box or an error alert on a page, a failed training run, a run that does not finish, an
uncaught JavaScript exception, an HTTP 5xx answer, a traceback in the server's log.

Latencies: page loads (click or navigation to the page's content being visible), stroke end to the
prediction shown, Clear to the empty canvas, training queue wait and total time. The server's
resident memory (python -m streamlit) is sampled from /proc every 0.5 s; its VmHWM is read at the end.
The server gets a temporary MNIST_RUNS_DIR; without the bundled model it is seeded with a stand-in
(benchlib.checkpoint_path). Everything (server, browser) is stopped on exit, also on errors and Ctrl-C.

  python bench/load.py [--sessions 20] [--trainers 3] [--seconds 75] [--train-images 2000]
                       [--action-timeout 60] [--grace 150] [--server-option NAME=VALUE ...] [--quick]

--server-option runs the server with other Streamlit settings (as STREAMLIT_* variables, which win over
.streamlit/config.toml), e.g. server.fileWatcherType=none, to compare configurations. The machine's
load matters: the browser and the server share its cores, and the report says how much CPU each used
and how busy the machine was with other work.

Traffic goes to 127.0.0.1 only. Kept in bench/results/: load.json, the server's log (load-server.log)
and a screenshot of the page at each error (load-errors/).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from playwright.async_api import async_playwright

from bench import benchlib
from bench.harness import launch_chromium, run_app

VIEWPORT = {"width": 1280, "height": 900}
MIN_SESSIONS = 20  # the requirement: at least this many concurrent sessions
RSS_INTERVAL = 0.5  # seconds between samples of the server's memory
SERVER_LOG = benchlib.RESULTS_DIR / "load-server.log"
SCREENSHOTS = benchlib.RESULTS_DIR / "load-errors"  # the page at each error, emptied at the start
MAX_SCREENSHOTS = 20
PROBLEMS = '[data-testid="stException"], [data-testid="stAlertContentError"]'
PREDICTION = ".st-key-prediction"
PREDICTION_RE = re.compile(r"Prediction: (\d) \((\d+(?:\.\d+)?)%\)")
QUEUED_RE = re.compile(r"Queued: position (\d+) in line")
# What a session does between its drawings (weights); the rest of the time it draws.
DETOURS = {"train": 1, "explore": 1, "reload": 1}
DETOUR_PROBABILITY = 0.25

# One stroke per drawing, in canvas fractions (0..1); the canvas is 280 x 280 px. Nothing above y = 0.2:
# the canvas's toolbar sits, invisible (opacity 0) until the mouse is over the canvas, on its top right
# corner, where a press would hit a toolbar button instead of drawing.
SHAPES: dict[str, list[tuple[float, float]]] = {
    "one": [(0.50, 0.20), (0.50, 0.85)],
    "seven": [(0.25, 0.22), (0.75, 0.22), (0.45, 0.85)],
    "zero": [
        (0.5 + 0.22 * math.sin(a / 16 * 2 * math.pi), 0.53 - 0.30 * math.cos(a / 16 * 2 * math.pi)) for a in range(17)
    ],
    "two": [(0.28, 0.32), (0.45, 0.20), (0.68, 0.27), (0.68, 0.44), (0.28, 0.84), (0.75, 0.84)],
    "l-shape": [(0.35, 0.20), (0.35, 0.80), (0.72, 0.80)],
}
JITTER = 0.05  # each drawing is shifted by up to this much in x and y
STEPS_PER_SEGMENT = 6  # mouse moves between two points of a shape
# Whether every point is on the canvas's drawing layer (inside the component's shadow DOM).
ON_CANVAS_JS = """points => points.every(([x, y]) => {
    let element = document.elementFromPoint(x, y);
    while (element && element.shadowRoot) {
        const inner = element.shadowRoot.elementFromPoint(x, y);
        if (!inner || inner === element) break;
        element = inner;
    }
    return !!element && element.classList.contains("upper-canvas");
})"""


# ---------------------------------------------------------------------------------------------
# Figures collected by every session


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    actions: Counter = field(default_factory=Counter)
    errors: list[dict] = field(default_factory=list)
    predictions: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    queue_positions: list[int] = field(default_factory=list)
    trainings: list[dict] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    wall_seconds: float | None = None

    def record(self, kind: str, seconds: float | None = None, *, action: bool = True) -> None:
        if action:
            self.actions[kind] += 1
        if seconds is not None:
            self.latencies[kind].append(seconds)

    def error(self, session: int | str, kind: str, message: str) -> None:
        message = " ".join(str(message).split())[:400]
        at = time.perf_counter() - self.started
        self.errors.append({"session": session, "action": kind, "at_s": round(at, 1), "message": message})
        print(f"  ERROR [{at:6.1f}s] session {session} {kind}: {message}", flush=True)


class RssSampler(threading.Thread):
    """VmRSS of one process every `interval` seconds, until stopped."""

    def __init__(self, pid: int, interval: float = RSS_INTERVAL):
        super().__init__(daemon=True, name="rss-sampler")
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, float]] = []  # (seconds since start, MB)
        self._stop_event = threading.Event()
        self._t0 = time.perf_counter()

    def read(self) -> float | None:
        value = proc_status_mb(self.pid, "VmRSS")
        if value is not None:
            self.samples.append((round(time.perf_counter() - self._t0, 2), round(value, 1)))
        return value

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.read()
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)
        self.read()

    @property
    def peak_mb(self) -> float | None:
        return max((mb for _, mb in self.samples), default=None)


def proc_status_mb(pid: int, key: str) -> float | None:
    """A kB field of /proc/<pid>/status (VmRSS, VmHWM, ...) in MB; None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return None


# ---------------------------------------------------------------------------------------------
# One browser session


class ActionError(Exception):
    """A problem the page showed (as opposed to a timeout or a Playwright error)."""


@dataclass
class Session:
    index: int
    url: str
    stats: Stats
    args: argparse.Namespace
    deadline: float  # time.perf_counter() after which no new action starts
    trainer: bool = False
    rng: random.Random = field(default_factory=random.Random)
    page: object = None
    drawings: int = 0

    @property
    def timeout_ms(self) -> float:
        return self.args.action_timeout * 1000

    # --- building blocks -----------------------------------------------------------------------

    async def check_page(self) -> None:
        """An exception box or error alert on the page is an error."""
        problems = self.page.locator(PROBLEMS)
        if await problems.count():
            texts = await problems.all_inner_texts()
            raise ActionError("the page shows an error: " + " | ".join(t.strip() for t in texts))

    async def visible(self, locator) -> None:
        await locator.first.wait_for(state="visible", timeout=self.timeout_ms)

    async def sketch_ready(self) -> None:
        """Sketch's content: its title, the canvas and the blank prediction panel."""
        page = self.page
        await self.visible(page.get_by_role("heading", name="Sketch a digit"))
        await self.visible(page.locator("canvas.dc-canvas"))
        await self.visible(page.locator(PREDICTION).filter(has_text="Draw a digit"))

    async def sidebar_link(self, name: str) -> None:
        await self.page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=name).click()

    async def run(self, kind: str, action, limit: float | None = -1) -> bool:
        """Run one action; any failure becomes an error, followed by a fresh load of the app.

        `limit`: seconds for the whole action (default: twice the action timeout; None: no limit).
        """
        limit = self.args.action_timeout * 2 if limit == -1 else limit
        try:
            await asyncio.wait_for(action(), timeout=limit)
            await self.check_page()
            return True
        except TimeoutError:  # asyncio's; Playwright's own TimeoutError is one of its Errors
            self.stats.error(self.index, kind, f"timed out: the whole action took over {limit:.0f} s")
        except Exception as exc:  # noqa: BLE001 - Playwright errors, ActionError: all count
            message = str(exc).split("Call log:")[0]
            is_timeout = type(exc).__name__ == "TimeoutError"
            self.stats.error(self.index, kind, ("timed out: " if is_timeout else "") + message)
        await self.screenshot(kind)
        await self.recover()
        return False

    async def screenshot(self, kind: str) -> None:
        """The page as it was at an error, in bench/results/load-errors/ (the first MAX_SCREENSHOTS)."""
        if len(self.stats.errors) > MAX_SCREENSHOTS:
            return
        slug = re.sub(r"\W+", "_", kind)
        path = SCREENSHOTS / f"{len(self.stats.errors):02d}-session{self.index}-{slug}.png"
        with contextlib.suppress(Exception):
            path.parent.mkdir(parents=True, exist_ok=True)
            await self.page.screenshot(path=path, full_page=True, timeout=10_000)
            self.stats.errors[-1]["screenshot"] = str(path.relative_to(benchlib.REPO))

    async def recover(self) -> None:
        with contextlib.suppress(Exception):
            await self.page.goto(self.url + "/", timeout=self.timeout_ms)
            await self.sketch_ready()

    async def think(self) -> None:
        low, high = self.args.think
        await asyncio.sleep(self.rng.uniform(low, high))

    # --- actions -------------------------------------------------------------------------------

    async def load_app(self) -> None:
        t0 = time.perf_counter()
        await self.page.goto(self.url + "/", timeout=self.timeout_ms)
        await self.sketch_ready()
        self.stats.record("load /", time.perf_counter() - t0)

    async def draw(self) -> None:
        page = self.page
        name = self.rng.choice(list(SHAPES))
        jitter = self.rng.uniform(-JITTER, JITTER), self.rng.uniform(-JITTER, JITTER)
        shape = [(x + jitter[0], y + jitter[1]) for x, y in SHAPES[name]]
        points = await self.canvas_points(shape)
        await page.mouse.move(*points[0])
        await page.mouse.down()
        for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
            for step in range(1, STEPS_PER_SEGMENT + 1):
                f = step / STEPS_PER_SEGMENT
                await page.mouse.move(x0 + (x1 - x0) * f, y0 + (y1 - y0) * f)
        await page.mouse.up()
        t0 = time.perf_counter()
        panel = page.locator(PREDICTION).filter(has_text="Prediction:")
        await self.visible(panel)
        elapsed = time.perf_counter() - t0
        match = PREDICTION_RE.search(await panel.first.inner_text())
        if match is None:
            raise ActionError(f"unexpected prediction text: {await panel.first.inner_text()!r}")
        self.stats.record("stroke -> prediction", elapsed)
        self.stats.predictions[name][match.group(1)] += 1
        self.drawings += 1

    async def canvas_points(self, shape: list[tuple[float, float]]) -> list[tuple[float, float]]:
        """Page coordinates of a shape on the canvas, once the canvas is ready and in place.

        The canvas is drawn by Fabric.js, whose upper canvas (the one taking the mouse) exists once it
        is set up. Right after Clear or a page load the canvas is being remounted and the slider below
        it briefly moves up into its place, so the points are used only when the canvas has stopped
        moving and every one of them is on it.
        """
        canvas = self.page.locator("canvas.dc-canvas.upper-canvas")
        give_up = time.perf_counter() + self.args.action_timeout
        while True:
            await self.visible(canvas)
            box = await canvas.last.bounding_box()
            await asyncio.sleep(0.1)
            points = []
            if box is not None and box == await canvas.last.bounding_box():
                points = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in shape]
                on_canvas = await self.page.evaluate(ON_CANVAS_JS, points)
                if on_canvas:
                    return points
                await self.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            if time.perf_counter() > give_up:
                boxes = [await c.bounding_box() for c in await canvas.all()]
                raise ActionError(
                    f"the canvas did not settle within {self.args.action_timeout:.0f} s (canvases at {boxes}, "
                    f"points {[(round(x), round(y)) for x, y in points]})"
                )
            await asyncio.sleep(0.2)

    async def clear(self) -> None:
        t0 = time.perf_counter()
        await self.page.get_by_role("button", name="Clear").click(timeout=self.timeout_ms)
        await self.visible(self.page.locator(PREDICTION).filter(has_text="Draw a digit"))
        self.stats.record("clear", time.perf_counter() - t0)

    async def open_train(self) -> None:
        page = self.page
        t0 = time.perf_counter()
        await self.sidebar_link("Train")
        await self.visible(page.get_by_role("heading", name="Train a model"))
        await self.visible(page.get_by_role("button", name="Start training"))
        await self.visible(page.get_by_role("heading", name="Saved runs"))
        self.stats.record("page Train", time.perf_counter() - t0)

    async def open_explore(self) -> None:
        page = self.page
        t0 = time.perf_counter()
        await self.sidebar_link("Explore")
        await self.visible(page.get_by_role("heading", name="Explore"))
        await self.visible(page.get_by_text("Mean training image per digit"))
        await self.visible(page.locator('[data-testid="stImage"]'))
        self.stats.record("page Explore", time.perf_counter() - t0)
        if self.rng.random() < 0.5:
            t0 = time.perf_counter()
            await page.get_by_role("tab", name="The model's mistakes").click(timeout=self.timeout_ms)
            await self.visible(page.get_by_text("misclassified test images"))
            self.stats.record("tab mistakes", time.perf_counter() - t0)

    async def open_sketch(self) -> None:
        t0 = time.perf_counter()
        await self.sidebar_link("Sketch")
        await self.sketch_ready()
        self.stats.record("page Sketch", time.perf_counter() - t0)

    async def reload(self) -> None:
        t0 = time.perf_counter()
        await self.page.reload(timeout=self.timeout_ms)
        await self.sketch_ready()
        self.stats.record("reload /", time.perf_counter() - t0)

    async def set_number(self, label: str, value: int) -> None:
        field_ = self.page.get_by_label(label, exact=True)
        await field_.fill(str(value), timeout=self.timeout_ms)
        await field_.press("Enter")  # no waiting for the rerun it starts: a quick user does not wait either

    async def train(self) -> None:
        """Start a small run and watch it until it ends (queued, then training, then finished)."""
        page, args = self.page, self.args
        await self.open_train()
        await self.set_number("Epochs", 1)
        await self.set_number("Training images (0 = all)", args.train_images)
        await self.check_page()
        clicked = time.perf_counter()
        await page.get_by_role("button", name="Start training").click(timeout=self.timeout_ms)
        await self.visible(page.get_by_text(re.compile(r"^job-\d+ · ")))
        state_re = re.compile(rf"· 1 epoch · batch \d+ · first {args.train_images:,} images · (\w+)")
        text = await page.locator('[data-testid="stMain"]').inner_text()
        if not state_re.search(text):
            title = re.search(r"job-\d+ · .*", text)
            wanted = f"1 epoch, first {args.train_images:,} images"
            raise ActionError(f"the run started without the form's values ({wanted}): {title and title.group(0)}")
        self.stats.record("train: submit", time.perf_counter() - clicked)
        info = {"session": self.index, "positions": [], "queue_wait_s": None, "state": None}
        self.stats.trainings.append(info)
        give_up = self.deadline + args.grace
        started = None
        while True:
            if time.perf_counter() > give_up:
                info["state"] = "unfinished"
                raise ActionError(f"the training run did not finish within {args.seconds + args.grace:.0f} s")
            await self.check_page()
            text = await page.locator('[data-testid="stMain"]').inner_text(timeout=self.timeout_ms)
            if "Training failed" in text:
                info["state"] = "failed"
                raise ActionError("training failed: " + text.split("Training failed", 1)[1][:300])
            state = state_re.search(text)
            queued = QUEUED_RE.search(text)
            if queued:
                position = int(queued.group(1))
                if not info["positions"] or info["positions"][-1] != position:
                    info["positions"].append(position)
                    self.stats.queue_positions.append(position)
            if started is None and state and state.group(1) != "queued":
                started = time.perf_counter()
                info["queue_wait_s"] = round(started - clicked, 2)
                self.stats.record("train: queue wait", started - clicked, action=False)
            if "Finished: test accuracy" in text:
                accuracy = re.search(r"Finished: test accuracy (\d+(?:\.\d+)?)%", text)
                info["state"] = "finished"
                info["accuracy_pct"] = float(accuracy.group(1)) if accuracy else None
                break
            if "Stopped after" in text or "Cancelled before it started" in text:
                info["state"] = "stopped"
                raise ActionError("the training run was stopped, though nobody stopped it")
            await asyncio.sleep(0.5)
        total = time.perf_counter() - clicked
        info["total_s"] = round(total, 2)
        self.stats.record("train: click -> finished", total)
        await self.open_sketch()

    # --- the session ---------------------------------------------------------------------------

    async def main(self, browser) -> None:
        context = await browser.new_context(viewport=VIEWPORT)
        try:
            self.page = page = await context.new_page()
            page.set_default_timeout(self.timeout_ms)
            page.on("pageerror", lambda exc: self.stats.error(self.index, "javascript", exc))
            page.on(
                "response",
                lambda r: r.status >= 500 and self.stats.error(self.index, "http", f"{r.status} {r.url}"),
            )
            await self.run("load /", self.load_app)
            if self.trainer:
                await self.run("train", self.train, limit=None)
            while time.perf_counter() < self.deadline:
                await self.think()
                if time.perf_counter() >= self.deadline:
                    break
                if self.drawings and self.rng.random() < DETOUR_PROBABILITY:
                    detour = self.rng.choices(list(DETOURS), weights=list(DETOURS.values()))[0]
                    if detour == "reload":
                        await self.run("reload /", self.reload)
                    else:
                        opener = self.open_train if detour == "train" else self.open_explore
                        if await self.run(f"page {detour}", opener):
                            await self.think()
                            await self.run("page Sketch", self.open_sketch)
                    continue
                if await self.run("draw", self.draw):
                    await self.run("clear", self.clear)
        finally:
            with contextlib.suppress(Exception):
                await context.close()


# ---------------------------------------------------------------------------------------------
# The run


async def drive(url: str, args: argparse.Namespace, stats: Stats) -> None:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)  # `kill` stops the run like Ctrl-C: cleanly
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        try:
            start = time.perf_counter()
            deadline = start + args.seconds
            sessions = [
                Session(i, url, stats, args, deadline, trainer=i < args.trainers, rng=random.Random(args.seed + i))
                for i in range(args.sessions)
            ]

            async def staggered(session: Session) -> None:
                await asyncio.sleep(args.ramp * session.index / max(1, args.sessions - 1))
                await session.main(browser)

            limit = args.seconds + args.grace + 4 * args.action_timeout
            tasks = [asyncio.create_task(staggered(s)) for s in sessions]
            try:
                done, pending = await asyncio.wait(tasks, timeout=limit)
            except asyncio.CancelledError:  # Ctrl-C or SIGTERM: stop the sessions, then close the browser
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
            for t in pending:
                t.cancel()
            if pending:
                stats.error("-", "run", f"{len(pending)} sessions still busy after {limit:.0f} s: cancelled")
                await asyncio.gather(*pending, return_exceptions=True)
            for t in done:
                if t.exception() is not None:
                    stats.error("-", "session", f"{type(t.exception()).__name__}: {t.exception()}")
            stats.wall_seconds = time.perf_counter() - start
        finally:
            with contextlib.suppress(Exception):
                await browser.close()
            loop.remove_signal_handler(signal.SIGTERM)


def seed_runs_dir(runs: Path) -> str:
    """A model for Sketch: the bundled one when present, else a stand-in copied into the runs folder."""
    path, description = benchlib.checkpoint_path()
    if path is not None:
        shutil.copytree(path, runs / path.name)
    return description


def server_log_errors(text: str) -> list[str]:
    """Tracebacks and errors the server logged (first line of each)."""
    found = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback") or " ERROR " in line or line.startswith("Exception"):
            found.append(" ".join(lines[i : i + 1] + [ln for ln in lines[i + 1 : i + 40] if ln and ln[0] != " "][:1]))
    return found


def leftover_processes(server_pid: int) -> list[str]:
    """What is left of the run: the server if still alive, and any process descending from this one."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True).stdout
    children: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for line in out.splitlines():
        pid, ppid, *command = line.split(None, 2)
        children[int(ppid)].append((int(pid), (command or [""])[0]))
    left, todo = [], [os.getpid()]
    while todo:
        for pid, command in children.get(todo.pop(), []):
            if not command.startswith("ps "):
                left.append(f"{pid} {command[:120]}")
            todo.append(pid)
    if Path(f"/proc/{server_pid}").exists():
        left.append(f"{server_pid} (the server)")
    return left


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=MIN_SESSIONS, help="concurrent browser sessions")
    p.add_argument("--trainers", type=int, default=3, help="sessions that first start a training run")
    p.add_argument("--seconds", type=float, default=75.0, help="how long sessions keep starting actions")
    p.add_argument("--ramp", type=float, default=10.0, help="seconds over which the sessions start")
    p.add_argument("--train-images", type=int, default=2000, help="training runs use the first N images")
    p.add_argument("--action-timeout", type=float, default=60.0, help="seconds for one page load or prediction")
    p.add_argument("--grace", type=float, default=150.0, help="seconds after --seconds for training to finish")
    p.add_argument("--think", type=float, nargs=2, default=(0.3, 1.5), metavar=("MIN", "MAX"))
    p.add_argument("--max-training-runs", type=int, help="the app's MNIST_MAX_TRAINING_RUNS (default: its own)")
    p.add_argument(
        "--server-option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a Streamlit option for the server, e.g. server.fileWatcherType=none (repeatable; set as STREAMLIT_* "
        "variables, which override .streamlit/config.toml)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="a smoke test: 4 sessions, 1 trainer, 20 s")
    args = p.parse_args()
    if args.quick:
        args.sessions, args.trainers, args.seconds, args.ramp = 4, 1, 20.0, 1.0
    args.trainers = min(args.trainers, args.sessions)
    return args


def main() -> int:
    args = parse_args()
    machine = benchlib.start("load")
    meter = benchlib.ContentionMeter()  # for the RESULT line; benchlib.finish measures the same for machine
    stats = Stats()
    server_info: dict = {}  # memory and CPU of the server, CPU of the browser
    sampler = None
    server_pid = None
    print(
        f"{args.sessions} sessions ({args.trainers} training on the first {args.train_images:,} images for 1 epoch) "
        f"for {args.seconds:.0f} s, action timeout {args.action_timeout:.0f} s",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="mnist-load-runs-") as runs:
        model = seed_runs_dir(Path(runs))
        print(f"model for Sketch: {model}", flush=True)
        if args.server_option:
            print(f"server options: {' '.join(args.server_option)}", flush=True)
        env = {"MNIST_DATA_DIR": str(benchlib.data_dir()), "MNIST_RUNS_DIR": runs}
        if args.max_training_runs:
            env["MNIST_MAX_TRAINING_RUNS"] = str(args.max_training_runs)
        env.update(streamlit_env(args.server_option))
        SERVER_LOG.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(SCREENSHOTS, ignore_errors=True)
        children_cpu_before = children_cpu_seconds()
        with run_app(env, timeout=120, log_path=SERVER_LOG) as server:
            server_pid = server.process.pid
            print(f"server {server.url} (pid {server_pid}) ready in {server.ready - server.started:.1f} s", flush=True)
            server_info["idle_rss_mb"] = proc_status_mb(server_pid, "VmRSS")
            server_cpu_before = process_cpu_seconds(server_pid)
            sampler = RssSampler(server_pid)
            sampler.start()
            stats.started = time.perf_counter()
            try:
                asyncio.run(drive(server.url, args, stats))
            except (KeyboardInterrupt, asyncio.CancelledError):
                stats.error("-", "run", "interrupted")
            finally:
                sampler.stop()
                server_info["end_rss_mb"] = proc_status_mb(server_pid, "VmRSS")
                server_info["vmhwm_mb"] = proc_status_mb(server_pid, "VmHWM")
                server_cpu = process_cpu_seconds(server_pid)
                if server.process.poll() is not None:
                    stats.error("-", "server", f"the server exited with code {server.process.returncode}")
    # Reaped children: the server and Playwright's driver with its Chromium.
    children_cpu = children_cpu_seconds() - children_cpu_before
    if server_cpu is not None and server_cpu_before is not None:
        server_info["server_cpu_s"] = round(server_cpu - server_cpu_before, 1)
        server_info["browser_cpu_s"] = round(children_cpu - server_cpu, 1)
    for message in server_log_errors(SERVER_LOG.read_text(errors="replace")):
        stats.error("-", "server log", message)
    left = leftover_processes(server_pid) if server_pid else []
    if left:
        stats.error("-", "cleanup", "processes left behind: " + "; ".join(left))
    others = meter.other_busy_cores()
    contended = machine.get("contended") or (others or 0) > benchlib.CONTENTION_BUSY_CORES
    return report(args, machine, stats, sampler, server_info, model, contended)


def streamlit_env(options: list[str]) -> dict[str, str]:
    """['server.fileWatcherType=none'] -> {'STREAMLIT_SERVER_FILE_WATCHER_TYPE': 'none'}."""
    env = {}
    for option in options:
        name, sep, value = option.partition("=")
        if not sep or "." not in name:
            raise SystemExit(f"--server-option wants SECTION.NAME=VALUE, got {option!r}")
        snake = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.replace(".", "_"))
        env["STREAMLIT_" + snake.upper()] = value
    return env


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a live process, from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def children_cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def report(args, machine, stats: Stats, sampler, server_info: dict, model, contended: bool) -> int:
    kinds = sorted(stats.latencies, key=lambda k: (-len(stats.latencies[k]), k))
    table = []
    for kind in kinds:
        s = benchlib.latency_stats(stats.latencies[kind])
        table.append([kind, s["n"], *(f"{s[k]:.0f}" for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms"))])
    print()
    print(benchlib.format_table(["action", "n", "p50 ms", "p90 ms", "p99 ms", "max ms"], table))

    peak_sampled = sampler.peak_mb if sampler else None
    rss_idle, vmhwm = server_info.get("idle_rss_mb"), server_info.get("vmhwm_mb")
    peak = max((v for v in (peak_sampled, vmhwm) if v is not None), default=None)
    trainings_ok = sum(t.get("state") == "finished" for t in stats.trainings)
    errors = len(stats.errors)
    print()
    print(f"actions: {sum(stats.actions.values())} = " + ", ".join(f"{k} {n}" for k, n in stats.actions.most_common()))
    print(
        f"training: {trainings_ok}/{args.trainers} finished; queue positions seen: "
        f"{sorted(set(stats.queue_positions)) or 'none'}"
    )
    for shape, digits in sorted(stats.predictions.items()):
        print(f"  shape {shape:8s} predicted as " + ", ".join(f"{d} x{n}" for d, n in digits.most_common()))
    print(
        f"server memory: {benchlib.fmt(rss_idle, '.0f')} MB before the sessions, peak "
        f"{benchlib.fmt(peak_sampled, '.0f')} MB sampled every {RSS_INTERVAL} s, VmHWM {benchlib.fmt(vmhwm, '.0f')} "
        f"MB, {benchlib.fmt(server_info.get('end_rss_mb'), '.0f')} MB at the end"
    )
    wall = stats.wall_seconds
    print(
        f"CPU over {benchlib.fmt(wall, '.0f')} s: server {benchlib.fmt(server_info.get('server_cpu_s'), '.0f')} s, "
        f"browser {benchlib.fmt(server_info.get('browser_cpu_s'), '.0f')} s "
        f"(the load generator shares the machine's {machine.get('cores')} cores with the server)"
    )
    print(f"errors: {errors}")
    for e in stats.errors[:50]:
        print(f"  [{e['at_s']}s] session {e['session']} {e['action']}: {e['message']}")
    if errors > 50:
        print(f"  ... and {errors - 50} more (see bench/results/load.json)")

    def lat(kind: str, key: str) -> float | None:
        values = stats.latencies.get(kind)
        return benchlib.latency_stats(values)[key] if values else None

    def whole(value: float | None) -> int | None:
        return None if value is None else round(value)

    page_kinds = ("load /", "reload /", "page Sketch", "page Train", "page Explore")
    page_loads = [v for k in page_kinds for v in stats.latencies.get(k, [])]
    page_stats = benchlib.latency_stats(page_loads) if page_loads else {}
    figures = {
        "sessions": args.sessions,
        "errors": errors,
        "seconds": args.seconds,
        "actions": sum(stats.actions.values()),
        "predictions": len(stats.latencies.get("stroke -> prediction", [])),
        "page_loads": len(page_loads),
        **{f"predict_{q}_ms": whole(lat("stroke -> prediction", f"{q}_ms")) for q in ("p50", "p90", "p99", "max")},
        **{f"page_{q}_ms": whole(page_stats.get(f"{q}_ms")) for q in ("p50", "p90", "p99", "max")},
        "trainings_finished": trainings_ok,
        "trainers": args.trainers,
        "max_queue_position": max(stats.queue_positions, default=0),
        "peak_rss_mb": whole(peak),
        "server_cpu_s": server_info.get("server_cpu_s"),
        "browser_cpu_s": server_info.get("browser_cpu_s"),
        "contended": contended,
        "server_options": ",".join(args.server_option) or "app_config",
    }

    def ms(kind_stats: dict | None, key: str) -> str:
        return benchlib.fmt(kind_stats.get(key) if kind_stats else None, ".0f", " ms")

    predict_stats = benchlib.latency_stats(stats.latencies["stroke -> prediction"]) if figures["predictions"] else None
    rows = [
        benchlib.row(
            "load: concurrent browser sessions",
            str(args.sessions),
            target=f">= {MIN_SESSIONS}",
            result=benchlib.status(None if args.quick else args.sessions >= MIN_SESSIONS),
        ),
        benchlib.row("load: errors", str(errors), target="0", result=benchlib.status(errors == 0)),
        benchlib.row(
            "load: stroke -> prediction p50 / p99",
            f"{ms(predict_stats, 'p50_ms')} / {ms(predict_stats, 'p99_ms')} (n={figures['predictions']})",
        ),
        benchlib.row(
            "load: page load p50 / p99",
            f"{ms(page_stats, 'p50_ms')} / {ms(page_stats, 'p99_ms')} (n={figures['page_loads']})",
        ),
        benchlib.row(
            "load: training runs finished",
            f"{trainings_ok}/{args.trainers}, queue positions up to {figures['max_queue_position']}",
        ),
        benchlib.row("load: server peak RSS", benchlib.fmt(peak, ".0f", " MB")),
    ]
    benchlib.finish(
        "load",
        machine,
        figures,
        rows,
        config={k: v for k, v in vars(args).items()},
        model=model,
        wall_seconds=getattr(stats, "wall_seconds", None),
        actions=dict(stats.actions),
        latency={kind: benchlib.latency_stats(v) for kind, v in stats.latencies.items()},
        errors=stats.errors,
        trainings=stats.trainings,
        predictions={shape: dict(c) for shape, c in stats.predictions.items()},
        memory={**server_info, "peak_sampled_rss_mb": peak_sampled, "samples": sampler.samples if sampler else []},
    )
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
