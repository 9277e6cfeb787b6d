"""What the sessions do: sketchers draw recorded digits, trainers keep a run going, steps of a ramp."""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from bench.load.client import CLOSE_TIMEOUT, Session, Target
from bench.load.metrics import (
    RssSampler,
    StepStats,
    TrainingLog,
    Usage,
    print_step,
    ramp_should_stop,
    ramp_steps,
    step_figures,
    training_busy_fraction,
)
from bench.load.recording import Recording, load_recording

# Pacing and bounds (seconds unless named otherwise).
STROKE_JITTER = 0.5  # an interval is uniform in mean * (1 -/+ this)
SESSION_ARRIVALS_PER_S = 10.0  # the sessions of a step arrive over sessions / this seconds
REVISIT_PROBABILITY = 0.1  # after a digit, a sketcher leaves and a new session arrives
PAUSE_BETWEEN_STEPS = 3.0
TRAIN_RESTART_PAUSE = 1.0  # a trainer looks at the finished run this long before the next
ERROR_PAUSE = 1.0  # a session that failed to open waits this long before trying again


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


def run_load(args: argparse.Namespace, base_url: str, server_pid: int | None) -> dict:
    recording = load_recording(args.recording)
    steps = [args.sessions] if args.no_ramp else ramp_steps(args.ramp, args.sessions)
    print(
        f"steps {steps} sessions x {args.step_seconds:.0f} s, a stroke every {args.stroke_interval} s on average, "
        f"{args.trainers} trainer(s) ({args.train_epochs} epoch(s) on {args.train_images:,} images, repeated)",
        flush=True,
    )
    return asyncio.run(drive(Target(base_url, recording, args), steps, server_pid))
