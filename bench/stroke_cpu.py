"""Server CPU per Sketch stroke: what one stroke costs the Streamlit process, measured in CPU time.

The app runs as `streamlit run` (bench.harness.run_app) with an empty runs folder, so the Sketch page
is the one a first-time visitor sees (bundled model, defaults). One headless Chromium page draws
--digits digits stroke by stroke with real mouse strokes (bench.harness.DIGIT_STROKES), clearing the
canvas after each digit. For every stroke the server's CPU time (utime + stime of the whole process,
from /proc/<pid>/stat) is read with the app idle, just before the mouse button goes up (the canvas
sends nothing before), and again once that stroke's script run has finished and the prediction
heading is there; the server's idle CPU rate, measured over a quiet interval before the strokes,
times the stroke's wall time is subtracted.

CPU time, not wall time: other work on the machine slows the stroke down but does not add to the
server's own CPU seconds, so the figure holds on a shared machine. /proc reports clock ticks (10 ms):
each sample is within +-1 tick, the median over many strokes much closer.

    python bench/stroke_cpu.py [--digits 20] [--idle-seconds 5] [--quick] [--inside | --compare]

--inside opens Sketch with every "Inside the model" view on (?inside=on: feature maps, filters, digit map,
neighbours, fool the model), waits until the background digit map and neighbour index are ready (the
latter computes the 60,000 training images' features once: ~2 min), then measures the same strokes
against the views' target (INSIDE_TARGET_MEDIAN_MS); results go to stroke_cpu_inside.

--compare measures the Sketch page's "Compare with" against the same page without it, in one run of one
server: the runs folder gets a copy of the bundled model as a saved run (COMPARE_RUN: the worst case, a
second 4-member ensemble, calibrated at once), and each digit is drawn twice, first with the comparison off,
then on (the picker switched between digits, outside the measured strokes). It prints both medians and
their ratio against COMPARE_TARGET_RATIO; results go to stroke_cpu_compare.

To measure another checkout (e.g. the code before a change, from `git worktree add /tmp/old HEAD`),
run this file from there with that checkout first on the path: PYTHONPATH=/tmp/old python
/tmp/old/bench/stroke_cpu.py. Needs Chromium (CHROMIUM_PATH, default /usr/bin/chromium), the
playwright package and the bundled model.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from bench import benchlib, harness
from bench.benchlib import Figure
from bench.ps import read_cpu_seconds
from mnist.checkpoint import BUNDLED_DIR

TARGET_MEDIAN_MS = 40.0  # issue 10: median server CPU per stroke
INSIDE_TARGET_MEDIAN_MS = 70.0  # issue 12: the same with every "Inside the model" view open
COMPARE_TARGET_RATIO = 1.6  # issue 25: server CPU per stroke with a second model compared, over without
COMPARE_RUN = "second"  # the saved run the comparison reads with: a copy of the bundled model
COMPARE_PICKER = "Compare with another model"  # studio.compare.PICKER_LABEL
COMPARE_OFF = "Off"
INSIDE_QUERY = "?inside=on"  # studio.inside_views.QUERY_PARAM
INSIDE_READY_SELECTOR = ".st-key-neighbours img"  # the last background result to arrive
INSIDE_READY_TIMEOUT_MS = 900_000  # the neighbour index: ~110 s of one core, longer on a busy machine
DEFAULT_DIGITS = 20
QUICK_DIGITS = 3
DEFAULT_IDLE_SECONDS = 5.0
SETTLE_SECONDS = 0.15  # after the run ends: Streamlit's event loop finishes sending the run's messages
VIEWPORT = {"width": 1400, "height": 1000}  # the e2e tests' window: the whole Sketch page in view
TIMEOUT_MS = 120_000
SIDEBAR_ROOT = 1  # the first index of a sidebar element's delta path (0 is the main area)
FRAGMENT_RUN = ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY  # a run of one st.fragment, not the page


def app_env(runs_dir: Path) -> dict[str, str]:
    return {"MNIST_DATA_DIR": str(benchlib.data_dir()), "MNIST_RUNS_DIR": str(runs_dir)}


def idle_cpu_rate(pid: int, seconds: float) -> float:
    """The server's CPU seconds per wall second while nobody interacts (websocket keep-alives and such)."""
    cpu0, t0 = read_cpu_seconds(pid), time.perf_counter()
    time.sleep(seconds)
    return (read_cpu_seconds(pid) - cpu0) / (time.perf_counter() - t0)


def open_sketch(page, url: str) -> None:
    page.goto(url, timeout=TIMEOUT_MS)
    page.locator(harness.CANVAS_SELECTOR).wait_for(state="visible", timeout=TIMEOUT_MS)
    page.locator(harness.PREDICTION_SELECTOR).get_by_text("Draw a digit").wait_for(timeout=TIMEOUT_MS)
    harness.wait_for_canvas(page, TIMEOUT_MS)


def clear(page) -> None:
    page.get_by_role("button", name="Clear").click()
    page.locator(harness.PREDICTION_SELECTOR).get_by_text("Draw a digit").wait_for(timeout=TIMEOUT_MS)
    harness.wait_for_canvas(page, TIMEOUT_MS)  # idle, and the remounted canvas in place


def measure_stroke(page, pid: int, points, digit: int, idle_rate: float) -> dict:
    """One stroke: the server's CPU ms from its release to its script run's end, idle CPU subtracted.

    The server sees nothing until the mouse goes up (the canvas sends the drawing then), so the window
    starts at the release: about 0.5 s instead of the whole drawing (1-3 s), which keeps the subtracted
    idle CPU, and its noise, small.
    """
    harness.wait_for_canvas(page, TIMEOUT_MS)  # idle: the run that ends next is this stroke's
    harness.install_watchers(page)
    runs = harness.script_runs(page)
    ink, sidebar = harness.canvas_ink(page), runs.deltas[SIDEBAR_ROOT]
    harness.press_and_trace(page, points)
    cpu0, t0 = read_cpu_seconds(pid), time.perf_counter()
    harness.release(page)
    harness.wait_for_ink(page, ink, digit)
    harness.wait_for_run_after_stroke(page, TIMEOUT_MS)
    heading = harness.prediction_heading(page)
    time.sleep(SETTLE_SECONDS)
    cpu1, t1 = read_cpu_seconds(pid), time.perf_counter()
    return {
        "digit": digit,
        "cpu_ms": ((cpu1 - cpu0) - idle_rate * (t1 - t0)) * 1000,
        "wall_ms": (t1 - t0) * 1000,
        "heading": heading,
        "runs": len(runs.finished_since_release()),
        "fragment_runs": runs.finished_since_release().count(FRAGMENT_RUN),
        "sidebar_elements": runs.deltas[SIDEBAR_ROOT] - sidebar,
    }


def draw_digits(page, pid: int, digits: int, idle_rate: float) -> list[dict]:
    """Every stroke of `digits` digits (0, 1, ..., 9, 0, ...), clearing the canvas after each digit."""
    samples = []
    for i in range(digits):
        digit = i % 10
        for points in harness.DIGIT_STROKES[digit]:
            sample = measure_stroke(page, pid, points, digit, idle_rate)
            samples.append(sample)
            print(
                f"digit {i + 1:2d}/{digits} ({digit}), stroke {len(samples):3d}: {sample['cpu_ms']:6.1f} ms CPU "
                f"in {sample['wall_ms']:5.0f} ms, {sample['runs']} run(s) -> {sample['heading']!r}",
                flush=True,
            )
        clear(page)
    return samples


def choose_compare(page, option: str) -> None:
    """Pick the second model (or Off) in Sketch's menu and wait for the fragment's rerun to end."""
    harness.wait_for_canvas(page, TIMEOUT_MS)
    menu = page.get_by_role("combobox", name=COMPARE_PICKER)
    menu.click()
    menu.fill(option)  # the select box filters its options by what is typed
    page.keyboard.press("Enter")
    harness.wait_until_idle(page, TIMEOUT_MS)


def add_compare_run(runs_dir: Path) -> None:
    """The bundled model, copied as a saved run with its stored calibration (it matches the same weights)."""
    shutil.copytree(BUNDLED_DIR, runs_dir / COMPARE_RUN)


def measure_compare(playwright, runs_dir: Path, digits: int, idle_seconds: float) -> dict:
    """Each digit drawn with the comparison off, then on; warm-up as in measure()."""
    add_compare_run(runs_dir)
    browser = harness.launch_chromium(playwright)
    samples: dict[str, list[dict]] = {"off": [], "on": []}
    try:
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(TIMEOUT_MS)
        with harness.run_app(app_env(runs_dir), timeout=TIMEOUT_MS / 1000) as server:
            pid = server.process.pid
            open_sketch(page, server.url)
            for option in (COMPARE_RUN, COMPARE_OFF):  # loads both models, warms both code paths: not counted
                choose_compare(page, option)
                harness.draw_digit(page, 8, TIMEOUT_MS)
                clear(page)
            idle_rate = idle_cpu_rate(pid, idle_seconds)
            print(f"server idle CPU: {idle_rate * 1000:.1f} ms per second (subtracted from each stroke)", flush=True)
            for i in range(digits):
                for mode, option in (("off", COMPARE_OFF), ("on", COMPARE_RUN)):
                    choose_compare(page, option)
                    for points in harness.DIGIT_STROKES[i % 10]:
                        sample = measure_stroke(page, pid, points, i % 10, idle_rate)
                        samples[mode].append(sample)
                        print(f"digit {i + 1:2d}/{digits} ({i % 10}), compare {mode:3s}: "
                              f"{sample['cpu_ms']:6.1f} ms CPU -> {sample['heading']!r}", flush=True)  # fmt: skip
                    clear(page)
            rss = server.rss_mb()
    finally:
        browser.close()
    return {"samples": samples, "idle_ms_per_s": idle_rate * 1000, "rss_mb": rss}


def compare_figures(off: dict, on: dict, digits: int, idle_ms_per_s: float) -> list[Figure]:
    """Both medians and their ratio against the target."""
    ratio = on["p50_ms"] / off["p50_ms"]
    return [
        Figure("cpu_p50_ms_off", off["p50_ms"], "ms", "server CPU per stroke, comparison off, median",
               note=f"(p90 {off['p90_ms']:.1f}, mean {off['mean_ms']:.1f}, {off['n']} strokes)", spec=".1f"),
        Figure("cpu_p50_ms_on", on["p50_ms"], "ms", "server CPU per stroke, comparison on, median",
               note=f"(p90 {on['p90_ms']:.1f}, mean {on['mean_ms']:.1f}, {on['n']} strokes)", spec=".1f"),
        Figure("ratio", ratio, "", "on / off, medians", spec=".2f", target=f"<= {COMPARE_TARGET_RATIO:g}",
               passed=ratio <= COMPARE_TARGET_RATIO),
        Figure("mean_ratio", on["mean_ms"] / off["mean_ms"], "", "on / off, means", spec=".2f"),
        Figure("digits", digits),
        Figure("idle_ms_per_s", idle_ms_per_s, "ms"),
    ]  # fmt: skip


def run_compare(args, machine: dict) -> int:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="bench-stroke-cpu-") as tmp, sync_playwright() as playwright:
        run = measure_compare(playwright, Path(tmp) / "runs", args.digits, args.idle_seconds)
    stats = {mode: benchlib.latency_stats([s["cpu_ms"] / 1000 for s in run["samples"][mode]]) for mode in ("off", "on")}
    print()
    print(
        benchlib.format_table(
            ("server CPU per stroke (ms)", "p50", "p90", "mean", "max", "n"),
            [table_row(f"comparison {mode}", stats[mode], ".1f") for mode in ("off", "on")],
        )
    )
    benchlib.report(
        "stroke_cpu_compare",
        machine,
        compare_figures(stats["off"], stats["on"], args.digits, run["idle_ms_per_s"]),
        quick=args.quick,
        seeds={},
        cpu_ms=stats,
        strokes=run["samples"],
        server_rss_mb=run["rss_mb"],
    )
    return 0


def wait_for_inside(page) -> None:
    """Draw until the background results are there (a stroke reruns the views), so none computes meanwhile."""
    deadline = time.perf_counter() + INSIDE_READY_TIMEOUT_MS / 1000
    while page.locator(INSIDE_READY_SELECTOR).count() == 0:
        if time.perf_counter() > deadline:
            raise TimeoutError("the Inside views' background results did not arrive")
        time.sleep(5)
    print("inside views ready: digit map and neighbour index computed", flush=True)


def measure(playwright, runs_dir: Path, digits: int, idle_seconds: float, inside: bool = False) -> dict:
    """Warm up with one digit, measure the idle rate, then every stroke of `digits` digits."""
    browser = harness.launch_chromium(playwright)
    try:
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(TIMEOUT_MS)
        with harness.run_app(app_env(runs_dir), timeout=TIMEOUT_MS / 1000) as server:
            pid = server.process.pid
            open_sketch(page, server.url + (INSIDE_QUERY if inside else ""))
            harness.draw_digit(page, 8, TIMEOUT_MS)  # loads the model and warms every code path: not counted
            if inside:
                wait_for_inside(page)  # the page's poller reruns it once the results are in
                harness.draw_digit(page, 8, TIMEOUT_MS)  # warms the views' code paths with the results
            clear(page)
            idle_rate = idle_cpu_rate(pid, idle_seconds)
            print(f"server idle CPU: {idle_rate * 1000:.1f} ms per second (subtracted from each stroke)", flush=True)
            cpu0 = read_cpu_seconds(pid)
            samples = draw_digits(page, pid, digits, idle_rate)
            server_cpu_s = read_cpu_seconds(pid) - cpu0
            rss = server.rss_mb()
    finally:
        browser.close()
    return {"samples": samples, "idle_ms_per_s": idle_rate * 1000, "server_cpu_s": server_cpu_s, "rss_mb": rss}


def table_row(name: str, stats: dict, spec: str) -> list:
    return [name, *(f"{stats[k]:{spec}}" for k in ("p50_ms", "p90_ms", "mean_ms", "max_ms")), stats["n"]]


def print_strokes(samples: list[dict], cpu: dict, wall: dict) -> None:
    """Per-stroke table, and what the server ran for the strokes."""
    print()
    print(
        benchlib.format_table(
            ("per stroke", "p50", "p90", "mean", "max", "n"),
            [table_row("server CPU (ms)", cpu, ".1f"), table_row("wall, mouse-up to run end (ms)", wall, ".0f")],
        )
    )
    runs = sum(s["runs"] for s in samples)
    fragment_runs = sum(s["fragment_runs"] for s in samples)
    sidebar = sum(s["sidebar_elements"] for s in samples)
    print(f"script runs: {runs} for {len(samples)} strokes, {fragment_runs} of them fragment runs; "
          f"sidebar elements sent: {sidebar}")  # fmt: skip
    missing = [s for s in samples if not s["heading"].startswith("Prediction:")]
    if missing:
        print(f"WARNING: {len(missing)} strokes ended without a 'Prediction:' heading")


def stroke_figures(
    samples: list[dict], cpu: dict, digits: int, idle_ms_per_s: float, target_ms: float = TARGET_MEDIAN_MS
) -> list[Figure]:
    """The median CPU per stroke against the target; p90, mean and what ran, for the RESULT line."""
    return [
        Figure(
            "cpu_p50_ms",
            cpu["p50_ms"],
            "ms",
            f"server CPU per Sketch stroke, median ({cpu['n']} strokes of {digits} digits)",
            note=f"(p90 {cpu['p90_ms']:.1f}, mean {cpu['mean_ms']:.1f})",
            spec=".1f",
            target=f"<= {target_ms:g} ms",
            passed=cpu["p50_ms"] <= target_ms,
        ),
        Figure("cpu_p90_ms", cpu["p90_ms"], "ms"),
        Figure("cpu_mean_ms", cpu["mean_ms"], "ms"),
        Figure("strokes", cpu["n"]),
        Figure("digits", digits),
        Figure("idle_ms_per_s", idle_ms_per_s, "ms"),
        Figure("no_prediction", sum(not s["heading"].startswith("Prediction:") for s in samples)),
        Figure("runs", sum(s["runs"] for s in samples)),
        Figure("fragment_runs", sum(s["fragment_runs"] for s in samples)),
        Figure("sidebar_elements", sum(s["sidebar_elements"] for s in samples)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--digits", type=int, default=DEFAULT_DIGITS, help=f"digits drawn (default {DEFAULT_DIGITS})")
    parser.add_argument("--idle-seconds", type=float, default=DEFAULT_IDLE_SECONDS, help="quiet interval (s)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_DIGITS} digits, 2 s idle interval")
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--inside", action="store_true", help="every 'Inside the model' view on (see above)")
    modes.add_argument("--compare", action="store_true", help="comparison with a second model off vs on")
    args = parser.parse_args(argv)
    if args.quick:
        args.digits, args.idle_seconds = min(args.digits, QUICK_DIGITS), min(args.idle_seconds, 2.0)

    from playwright.sync_api import sync_playwright

    machine = benchlib.start("stroke_cpu: server CPU per Sketch stroke", threads=1)  # this process drives only
    machine["chromium"] = str(harness.CHROMIUM)
    machine["app"] = str(harness.REPO)
    if args.compare:
        return run_compare(args, machine)
    with tempfile.TemporaryDirectory(prefix="bench-stroke-cpu-") as tmp, sync_playwright() as playwright:
        run = measure(playwright, Path(tmp) / "runs", args.digits, args.idle_seconds, args.inside)

    samples = run["samples"]
    cpu = benchlib.latency_stats([s["cpu_ms"] / 1000 for s in samples])
    wall = benchlib.latency_stats([s["wall_ms"] / 1000 for s in samples])
    print_strokes(samples, cpu, wall)
    target = INSIDE_TARGET_MEDIAN_MS if args.inside else TARGET_MEDIAN_MS
    benchlib.report(
        "stroke_cpu_inside" if args.inside else "stroke_cpu",
        machine,
        stroke_figures(samples, cpu, args.digits, run["idle_ms_per_s"], target),
        quick=args.quick,
        seeds={},  # the strokes are fixed (harness.DIGIT_STROKES)
        cpu_ms=cpu,
        wall_ms=wall,
        strokes=samples,
        server_cpu_s_while_drawing=run["server_cpu_s"],
        server_rss_mb=run["rss_mb"],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
