"""The run's headline figures and summary table, from its steps."""

from __future__ import annotations

import argparse

from bench import benchlib
from bench.load.metrics import (
    FIRST_PAGE_P50_TARGET_MS,
    MAX_GENERATOR_CORES,
    STROKE_P50_TARGET_MS,
    STROKE_P99_TARGET_MS,
    TARGET_SESSIONS,
    TrainingLog,
    find_knee,
)


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


def training_jobs(log: TrainingLog) -> list[dict]:
    """The trainers' jobs with times in seconds from the first click (for the results file)."""
    if not log.jobs:
        return []
    t0 = log.jobs[0]["clicked"]

    def rel(t: float | None) -> float | None:
        return None if t is None else round(t - t0, 1)

    return [{**j, **{k: rel(j[k]) for k in ("clicked", "started", "ended")}} for j in log.jobs]
