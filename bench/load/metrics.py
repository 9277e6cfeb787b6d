"""The load test's figures: latency percentiles, the knee, CPU of the generator, the server and the rest, RSS."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from bench import benchlib
from bench.ps import read_system_busy_seconds, read_tree_cpu_seconds, read_tree_rss_mb

# Targets (issue 10) on the 2-core machine, generator included.
TARGET_SESSIONS = 50
STROKE_P50_TARGET_MS = 150.0
STROKE_P99_TARGET_MS = 1000.0
FIRST_PAGE_P50_TARGET_MS = 1000.0
KNEE_P99_MS = STROKE_P99_TARGET_MS  # the knee: the first step whose stroke p99 passes this
MAX_GENERATOR_CORES = 0.5  # above this the generator disturbs the server: the run is INVALID
MAX_RAMP_STEPS = 10
RSS_SAMPLE_INTERVAL = 0.5


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


@dataclass
class TrainingLog:
    jobs: list[dict] = field(default_factory=list)  # {job, state, clicked, started, ended} (perf_counter)


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
