"""`python -m bench.load`: the options, the server (started, or one already running), the run and its report."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path

from bench import benchlib
from bench.load.browser_check import browser_check, report_browser
from bench.load.metrics import TARGET_SESSIONS
from bench.load.recording import RECORDING, record
from bench.load.report import headline, summary_rows, training_jobs
from bench.load.scenario import REVISIT_PROBABILITY, run_load
from bench.load.server import SERVER_LOG, check_loopback, server_env, server_log_errors
from bench.procfs import read_tree_status_mb
from studio import serve

DEFAULT_RAMP = (10, 20, 35, 50, 75, 100)
QUICK_STEP_SECONDS = 15.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    summary = sys.modules[__package__].__doc__.split("\n\n")[0]  # the package docstring's first paragraph
    p = argparse.ArgumentParser(prog="python -m bench.load", description=summary)
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
    # A --quick run writes load-quick.json: load.json keeps the last real run's figures.
    benchlib.finish("load", machine, scalars, summary_rows(figures), file_stem="load-quick" if args.quick else None,
                    steps=result["steps"], whole=result["whole"],
                    training_jobs=training_jobs(result["training"]), server_log_errors=log_errors,
                    config={k: str(v) for k, v in vars(args).items()})  # fmt: skip
    if not figures["valid"]:
        print("INVALID: the load generator used more than 0.5 core; its figures measure the generator too")
    if args.json:
        print(json.dumps(figures), flush=True)
    return 1 if figures["errors"] else 0
