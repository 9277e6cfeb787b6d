"""One session over the websocket: a browser tab's worth of protocol, as a sketcher or a trainer uses it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from bench.load.metrics import StepStats
from bench.load.protocol import (
    COMPILE_ERROR,
    EARLY_FOR_RERUN,
    MAX_FRAME_BYTES,
    STREAM_PATH,
    SUBPROTOCOLS,
    TRAINING_STATES,
    Message,
    PageView,
    build_message,
    verdict_of,
)
from bench.load.recording import Recording, Stroke

HTTP_TIMEOUT = 10.0
CLOSE_TIMEOUT = 5.0


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
