"""Browser figures, measured in headless Chromium against the real app (the end-to-end harness).

1. Stroke to prediction: from the mouse-up that ends a stroke on the Sketch canvas to the new
   `Prediction: D (P%)` heading appearing in the page. Both instants are taken inside the browser
   (a capture-phase mouseup listener and a MutationObserver, both on performance.now()), so Python's
   polling adds nothing. Each sample is the first stroke on a cleared canvas, cycling through the ten
   digits' strokes; the model is warmed up by one stroke first (that first one is reported apart).
   Part of it is fixed: streamlit-drawable-canvas waits 200 ms after a stroke (a debounce) before it
   sends the drawing to the server.
   Also reported: mouse-up to the end of the whole script run (probabilities chart and saliency map).
2. Cold start: from launching `streamlit run` to the Sketch page showing its canvas in a new browser
   (Chromium is launched before the server, so its own start-up is not counted; it is shown apart).

    python bench/browser.py [--strokes 24] [--cold-starts 3] [--quick]

Needs Chromium (CHROMIUM_PATH, default /usr/bin/chromium), the playwright package and the bundled model.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import benchlib, harness
from bench.benchlib import Figure

TARGET_STROKE_P50_MS = 500.0
TARGET_COLD_START_S = 10.0
VIEWPORT = {"width": 1400, "height": 1000}
TIMEOUT_MS = 120_000


def app_env(runs_dir: Path) -> dict[str, str]:
    return {"MNIST_DATA_DIR": str(benchlib.data_dir()), "MNIST_RUNS_DIR": str(runs_dir)}


def wait_for_canvas_visible(page) -> None:
    page.locator(harness.CANVAS_SELECTOR).wait_for(state="visible", timeout=TIMEOUT_MS)


def cold_starts(playwright, runs_dir: Path, repetitions: int) -> list[dict]:
    """Each repetition: a fresh Chromium, then a fresh server, then the page until the canvas shows."""
    samples = []
    for i in range(repetitions):
        t_browser = time.perf_counter()
        browser = harness.launch_chromium(playwright)
        browser_s = time.perf_counter() - t_browser
        try:
            page = browser.new_page(viewport=VIEWPORT)
            with harness.run_app(app_env(runs_dir), timeout=TIMEOUT_MS / 1000) as server:
                health_s = server.ready - server.started
                page.goto(server.url, timeout=TIMEOUT_MS)
                wait_for_canvas_visible(page)
                total_s = time.perf_counter() - server.started
                rss = server.rss_mb()
        finally:
            browser.close()
        sample = {"total_s": total_s, "health_s": health_s, "page_s": total_s - health_s, "browser_launch_s": browser_s}
        sample["server_rss_mb"] = rss
        samples.append(sample)
        print(
            f"cold start {i + 1}/{repetitions}: {total_s:.2f} s to the canvas "
            f"(server answering after {health_s:.2f} s, page {total_s - health_s:.2f} s; "
            f"Chromium launch {browser_s:.2f} s not counted)",
            flush=True,
        )
    return samples


def clear(page) -> None:
    page.get_by_role("button", name="Clear").click()
    prediction = page.locator(harness.PREDICTION_SELECTOR)
    prediction.get_by_text("Draw a digit").wait_for(timeout=TIMEOUT_MS)
    harness.wait_for_canvas(page, TIMEOUT_MS)  # idle, and the remounted canvas in place


def measure_stroke(page, points, digit: int) -> dict:
    """Draw one stroke on a cleared canvas; mouse-up -> prediction heading, and -> end of the script run."""
    harness.install_watchers(page)
    page.evaluate(f"() => {{ window.__prediction = ({harness.WATCH_PREDICTION_JS})(null); }}")
    harness.draw_stroke(page, points)
    harness.wait_for_ink(page, 0, digit)  # fails at once if the stroke was lost, rather than waiting forever
    shown_at, text = page.evaluate("() => window.__prediction")
    harness.wait_for_run_after_stroke(page, TIMEOUT_MS)
    state = page.evaluate("() => window.__e2e")
    return {
        "prediction_ms": shown_at - state["lastUp"],
        "run_ms": state["settledAt"] - state["lastUp"],
        "text": text,
    }


def stroke_latencies(playwright, runs_dir: Path, strokes: int) -> tuple[dict, list[dict]]:
    """(the warm-up stroke, the measured strokes) on one server and one page."""
    browser = harness.launch_chromium(playwright)
    try:
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(TIMEOUT_MS)
        with harness.run_app(app_env(runs_dir), timeout=TIMEOUT_MS / 1000) as server:
            page.goto(server.url, timeout=TIMEOUT_MS)
            wait_for_canvas_visible(page)
            page.locator(harness.PREDICTION_SELECTOR).get_by_text("Draw a digit").wait_for()
            harness.wait_for_canvas(page, TIMEOUT_MS)
            first = measure_stroke(page, harness.DIGIT_STROKES[8][0], 8)  # loads the model: reported apart
            print(f"first stroke (loads the model): {first['prediction_ms']:.0f} ms to {first['text']!r}", flush=True)
            clear(page)
            samples = []
            for i in range(strokes):
                digit = i % 10
                sample = measure_stroke(page, harness.DIGIT_STROKES[digit][0], digit)
                sample["digit"] = digit
                samples.append(sample)
                print(
                    f"stroke {i + 1:2d}/{strokes} (first stroke of a {digit}): {sample['prediction_ms']:6.0f} ms "
                    f"to {sample['text']!r}, run done after {sample['run_ms']:.0f} ms",
                    flush=True,
                )
                clear(page)
            first["server_rss_mb"] = server.rss_mb()
    finally:
        browser.close()
    return first, samples


def browser_figures(stroke: dict, run: dict, first: dict, cold: list[dict]) -> list[Figure]:
    """Stroke latencies (latency_stats of the samples) and the cold starts' median, against the targets."""
    cold_total = statistics.median(s["total_s"] for s in cold)
    cold_health = statistics.median(s["health_s"] for s in cold)
    return [
        Figure(
            "stroke_to_prediction_p50_ms",
            stroke["p50_ms"],
            "ms",
            f"browser: stroke -> prediction p50 ({stroke['n']} strokes)",
            note=f"(p90 {stroke['p90_ms']:.0f}, max {stroke['max_ms']:.0f})",
            spec=".0f",
            target=f"< {TARGET_STROKE_P50_MS:g} ms",
            passed=stroke["p50_ms"] < TARGET_STROKE_P50_MS,
        ),
        Figure(
            "stroke_to_run_done_p50_ms",
            run["p50_ms"],
            "ms",
            f"browser: stroke -> script run done p50 ({run['n']} strokes)",
            note=f"(p90 {run['p90_ms']:.0f}, max {run['max_ms']:.0f})",
            spec=".0f",
        ),
        Figure(
            "first_stroke_ms",
            first["prediction_ms"],
            "ms",
            "browser: first stroke after the page loads (loads the model)",
            spec=".0f",
        ),
        Figure(
            "cold_start_s",
            cold_total,
            "s",
            f"browser: cold start to the Sketch canvas (median of {len(cold)})",
            note=f"(server up after {cold_health:.2f} s, max {max(s['total_s'] for s in cold):.2f} s)",
            spec=".2f",
            target=f"< {TARGET_COLD_START_S:g} s",
            passed=cold_total < TARGET_COLD_START_S,
        ),
        Figure("cold_start_health_s", cold_health, "s"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strokes", type=int, default=24, help="measured strokes (default 24, at least 20)")
    parser.add_argument("--cold-starts", type=int, default=3, help="cold-start repetitions (default 3)")
    parser.add_argument("--quick", action="store_true", help="3 strokes and 1 cold start: checks that it runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.strokes, args.cold_starts = min(args.strokes, 3), min(args.cold_starts, 1)

    from mnist.checkpoint import BUNDLED_DIR, WEIGHTS_FILE

    reason = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "the playwright package is not installed"
    if not harness.CHROMIUM.is_file():
        reason = f"Chromium not found at {harness.CHROMIUM}"
    if not (BUNDLED_DIR / WEIGHTS_FILE).is_file():
        reason = f"the bundled model is missing ({BUNDLED_DIR})"
    if reason:
        print(f"browser benchmark cannot run: {reason}", file=sys.stderr)
        return 2

    machine = benchlib.start("browser", threads=1)  # this process only drives the browser
    machine["chromium"] = str(harness.CHROMIUM)
    with tempfile.TemporaryDirectory(prefix="bench-browser-") as tmp, sync_playwright() as playwright:
        runs_dir = Path(tmp) / "runs"
        cold = cold_starts(playwright, runs_dir, args.cold_starts)
        first, samples = stroke_latencies(playwright, runs_dir, args.strokes)

    wrong = [s for s in samples if not s["text"].startswith("Prediction:")]
    if wrong:
        print(f"WARNING: {len(wrong)} strokes showed no prediction text")
    stroke = benchlib.latency_stats([s["prediction_ms"] / 1000 for s in samples])
    run = benchlib.latency_stats([s["run_ms"] / 1000 for s in samples])
    benchlib.report(
        "browser",
        machine,
        browser_figures(stroke, run, first, cold),
        quick=args.quick,
        seeds={},  # the strokes are fixed (harness.DIGIT_STROKES)
        stroke_to_prediction=stroke,
        stroke_to_run_done=run,
        cold_starts=cold,
        strokes=samples,
        cpu_count=os.cpu_count(),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
