"""Resident memory: each measurement in a fresh process, read from /proc/PID/status.

In-process measurements (a fresh interpreter each):
baseline    python + torch + the mnist package imported, nothing loaded (for context)
predict     load the data set and the bundled model, predict 200 canvases, evaluate the test set
            (what a Sketch/Explore session holds); peak RSS (VmHWM) must stay under 1 GB
train_fast  train the fast preset (the default config) for one epoch on all 60,000 images
train       train the largest preset ("best": its model, augmentation and batch) for --epochs
            (default 1: memory peaks in the first steps and the test evaluation), optionally only
            --max-steps steps (the evaluation still runs); peak RSS must stay under 2 GB

The app server (`streamlit run streamlit_app.py`, one fresh process each; peak RSS = VmHWM, peak
RssAnon = the highest of samples every RSS_SAMPLE_SECONDS; bench/load.py's sessions drive it):
idle              started, health answered, no visitor
first_prediction  one visitor opens Sketch and draws (the first predictions of the process)
train_sketch      one visitor trains the fast preset (all images, 1 epoch) while another sketches
cgroup_1gib       the same inside a cgroup v1 memory group limited to 1 GiB (no swap): survived or not,
                  the group's peak usage, its failcnt and OOM kills (Linux, root, cgroup v1 only)
load50            50 sketching sessions plus one trainer, as bench/load.py's headline step; peak RSS
                  per backend must stay under 1 GB (--skip-load: not run)

  python -m bench.memory [--epochs 1] [--max-steps N] [--checkpoint PATH] [--quick] [--skip-load]
                         [--only SCENARIO,...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench import benchlib, harness, procfs, ps
from bench.benchlib import Figure

TARGET_PREDICT_MB = 1024.0
TARGET_TRAIN_MB = 2048.0
TARGET_BACKEND_MB = 1024.0  # issue 22: peak RSS of one backend under 50 sessions plus training
CGROUP_LIMIT_BYTES = 1024**3  # issue 22: one process must survive this (Streamlit Community Cloud: 0.7-2.7 GB)
CANVAS_SEED = 0  # which digits are drawn where on the predicted canvases
MIB = 1024 * 1024

CGROUP_V1_MEMORY = Path("/sys/fs/cgroup/memory")
CGROUP_NAME = "mnist-bench-memory"
RSS_SAMPLE_SECONDS = 0.05  # RssAnon has no kernel-kept peak: sampled this often
IDLE_SECONDS = 5.0  # after the health check: imports and the first page's caches settle
SERVER_START_TIMEOUT = 180.0  # seconds; a cold start imports torch and streamlit
SKETCH_SECONDS = 10.0  # the first_prediction visitor draws this long (about 5 strokes)
TRAIN_SKETCH_SECONDS = 20.0  # the sketcher's step while the fast preset trains; the run then finishes
LOAD_SECONDS = 40.0  # bench/load.py's default step
LOAD_SESSIONS = 50
LOAD_TRAIN_IMAGES = 5000  # bench/load.py's default trainer: the fast preset on the first 5,000 images
STOP_SECONDS = 10.0
RUN_SAVED_TIMEOUT = 300.0  # seconds for the server's training run to finish after the sketchers stop


def memory_now() -> dict[str, float]:
    """Current and peak (VmHWM) resident set size of this process, in MiB."""
    return {"rss_mb": ps.read_rss_mb("self"), "peak_mb": procfs.read_peak_rss_mb("self")}


# ---------------------------------------------------------------------------------------------
# Children: each prints one JSON line as its last line.


def child_baseline(_args) -> dict:
    import torch  # noqa: F401

    import mnist.predict  # noqa: F401
    import mnist.train  # noqa: F401

    return {"stages": [{"stage": "imported torch + mnist", **memory_now()}]}


def child_predict(args) -> dict:
    import numpy as np

    from mnist.checkpoint import load_checkpoint
    from mnist.predict import predict_canvas
    from mnist.train import evaluate

    benchlib.setup_threads()
    stages = [{"stage": "imported", **memory_now()}]
    data = benchlib.load_data()
    stages.append({"stage": "data set loaded", **memory_now()})
    path, description = benchlib.checkpoint_path(args.checkpoint)
    ckpt = load_checkpoint(path)
    stages.append({"stage": "model loaded", **memory_now()})
    rng = np.random.default_rng(CANVAS_SEED)
    digits = data.test_images.numpy()
    for i in range(200):
        predict_canvas(ckpt.model, benchlib.mnist_canvas(digits[i], rng))
    stages.append({"stage": "200 canvases predicted", **memory_now()})
    evaluate(ckpt.model, data.test_images, data.test_labels)
    stages.append({"stage": "test set evaluated", **memory_now()})
    return {"stages": stages, "model": description, "arch": ckpt.arch}


def child_train(args) -> dict:
    from mnist.config import PRESETS
    from mnist.train import DoneEvent, EpochEvent, StepEvent, train

    benchlib.setup_threads()
    stages = [{"stage": "imported", **memory_now()}]
    data = benchlib.load_data()
    stages.append({"stage": "data set loaded", **memory_now()})
    config = PRESETS["best"].replace(epochs=args.epochs, device="cpu")
    stop = threading.Event()
    trace = []  # (moment, peak so far): shows when the peak is reached
    done_steps = 0
    t0 = time.perf_counter()
    for event in train(config, data, stop):
        if isinstance(event, StepEvent):
            trace.append((f"step {event.step}", memory_now()["peak_mb"]))
            if args.max_steps and event.step >= args.max_steps:
                stop.set()
            if event.step == config.log_every:
                stages.append({"stage": f"training, step {event.step}", **memory_now()})
        elif isinstance(event, EpochEvent):
            stages.append({"stage": f"epoch {event.epoch} trained + evaluated", **memory_now()})
            trace.append((f"epoch {event.epoch} evaluation", stages[-1]["peak_mb"]))
        elif isinstance(event, DoneEvent):
            done_steps = event.steps_done
            stages.append({"stage": f"done ({event.steps_done} steps, final evaluation)", **memory_now()})
            trace.append(("final evaluation", stages[-1]["peak_mb"]))
    final_peak = stages[-1]["peak_mb"]
    reached = next(moment for moment, peak in trace if peak >= 0.99 * final_peak)
    return {
        "stages": stages,
        "config": config.to_dict(),
        "peak_trace": trace,
        "peak_reached_at": reached,
        "steps_done": done_steps,
        "seconds": time.perf_counter() - t0,
    }


def child_train_fast(_args) -> dict:
    from mnist.config import PRESETS
    from mnist.train import DoneEvent, EpochEvent, train

    benchlib.setup_threads()
    stages = [{"stage": "imported", **memory_now()}]
    data = benchlib.load_data()
    stages.append({"stage": "data set loaded", **memory_now()})
    config = PRESETS["fast"].replace(device="cpu")
    t0 = time.perf_counter()
    accuracy = None
    for event in train(config, data):
        if isinstance(event, EpochEvent):
            stages.append({"stage": f"epoch {event.epoch} trained + evaluated", **memory_now()})
        elif isinstance(event, DoneEvent):
            accuracy = event.test_accuracy
            stages.append({"stage": f"done ({event.steps_done} steps)", **memory_now()})
    return {
        "stages": stages,
        "config": config.to_dict(),
        "test_accuracy": accuracy,
        "seconds": time.perf_counter() - t0,
    }


CHILDREN = {"baseline": child_baseline, "predict": child_predict, "train_fast": child_train_fast, "train": child_train}


def run_child(kind: str, extra: list[str]) -> dict:
    """Run this script as `--child kind` in a fresh interpreter; its JSON result."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"memory child {kind!r} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = time.perf_counter() - t0
    return result


# ---------------------------------------------------------------------------------------------
# The app server: `streamlit run` in a fresh process per scenario, driven by bench/load.py's sessions.


@dataclass(frozen=True)
class Scenario:
    name: str
    label: str
    sessions: int = 0  # sketching sessions (0: nobody visits)
    trainers: int = 0
    seconds: float = 0.0  # how long the sketchers draw
    train_images: int = 0  # the trainers' runs: the fast preset on the first N images (0 = all)
    cgroup: bool = False  # inside a CGROUP_LIMIT_BYTES memory cgroup


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("idle", "app server started, no visitor"),
        Scenario("first_prediction", "one visitor sketches (first predictions)", 1, 0, SKETCH_SECONDS),
        Scenario("train_sketch", "one trains the fast preset, one sketches", 1, 1, TRAIN_SKETCH_SECONDS),
        Scenario("cgroup_1gib", "the same in a 1 GiB cgroup", 1, 1, TRAIN_SKETCH_SECONDS, cgroup=True),
        Scenario("load50", "50 sessions + 1 trainer (5,000 images)", LOAD_SESSIONS, 1, LOAD_SECONDS, LOAD_TRAIN_IMAGES),
    )
}


class MemorySampler:
    """Peak VmRSS and RssAnon of a process, sampled on a thread every RSS_SAMPLE_SECONDS."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak = {"VmRSS": 0.0, "RssAnon": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(RSS_SAMPLE_SECONDS)

    def sample(self) -> None:
        for field in self.peak:
            value = procfs.read_status_mb(self.pid, field)
            if value is not None:
                self.peak[field] = max(self.peak[field], value)


def cgroup_available() -> bool:
    return (CGROUP_V1_MEMORY / "memory.limit_in_bytes").is_file() and os.access(CGROUP_V1_MEMORY, os.W_OK)


@contextlib.contextmanager
def memory_cgroup(limit_bytes: int):
    """A fresh cgroup v1 memory group limited to limit_bytes of RAM and of RAM + swap; removed on exit."""
    path = CGROUP_V1_MEMORY / f"{CGROUP_NAME}-{os.getpid()}"
    path.mkdir()
    try:
        (path / "memory.limit_in_bytes").write_text(str(limit_bytes))
        memsw = path / "memory.memsw.limit_in_bytes"
        if memsw.exists():  # swap would let the process outlive a limit it does not fit in
            memsw.write_text(str(limit_bytes))
        yield path
    finally:
        for _ in range(50):  # the killed or stopped server may take a moment to leave the group
            try:
                path.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def read_cgroup(path: Path) -> dict:
    """Peak usage (MiB), failcnt and OOM kills of a cgroup v1 memory group."""
    oom = dict(line.split() for line in (path / "memory.oom_control").read_text().splitlines())
    return {
        "limit_mb": int((path / "memory.limit_in_bytes").read_text()) / MIB,
        "max_usage_mb": int((path / "memory.max_usage_in_bytes").read_text()) / MIB,
        "failcnt": int((path / "memory.failcnt").read_text()),
        "oom_kills": int(oom.get("oom_kill", 0)),
    }


def join_cgroup(path: Path):
    """A preexec_fn: the child writes its own pid into the group before it execs streamlit."""
    procs = str(path / "cgroup.procs")

    def join() -> None:
        with open(procs, "w") as f:  # noqa: PTH123 - between fork and exec: the plainest call
            f.write(str(os.getpid()))

    return join


def wait_for_saved_run(runs: Path, before: set[str], process: subprocess.Popen, timeout: float) -> bool:
    """Until a new run folder appears in runs (a training run finished and was saved); False on timeout or death."""
    give_up = time.perf_counter() + timeout
    while time.perf_counter() < give_up and process.poll() is None:
        if {p.name for p in runs.iterdir() if p.is_dir()} - before:
            return True
        time.sleep(0.5)
    return False


def stop_server(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after STOP_SECONDS (a server stopping mid-training waits for the run's step)."""
    harness.stop_process(process, timeout_s=STOP_SECONDS)


def load_args(scenario: Scenario, url: str, pid: int) -> list[str]:
    return [
        "--url", url, "--server-pid", str(pid), "--no-ramp", "--sessions", str(scenario.sessions),
        "--trainers", str(scenario.trainers), "--train-images", str(scenario.train_images),
        "--train-epochs", "1", "--step-seconds", str(scenario.seconds), "--revisit", "0",
    ]  # fmt: skip


def drive_server(scenario: Scenario, url: str, pid: int) -> dict:
    """bench/load.py's sessions against the server, in this process; its headline figures."""
    from bench import load

    args = load.parse_args(load_args(scenario, url, pid))
    with contextlib.redirect_stdout(sys.stderr):  # its per-step lines: progress, not this script's output
        result = load.run_load(args, url, pid)
    return load.headline(args, result, procfs.read_peak_rss_mb(pid), [], {})


def measure_server(scenario: Scenario) -> dict:
    """Start the app for one scenario, drive it, and read its memory; the scenario's figures."""
    from bench import harness, load

    with contextlib.ExitStack() as stack:
        runs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mnist-memory-runs-")))
        log_path = runs.parent / f"{runs.name}.log"
        env = load.server_env(runs)
        group = stack.enter_context(memory_cgroup(CGROUP_LIMIT_BYTES)) if scenario.cgroup else None
        before = {p.name for p in runs.iterdir()}
        server = stack.enter_context(
            harness.run_app(
                env, timeout=SERVER_START_TIMEOUT, log_path=log_path, preexec_fn=group and join_cgroup(group)
            )
        )
        pid = server.process.pid
        with MemorySampler(pid) as sampler:
            time.sleep(IDLE_SECONDS)
            figures = {"load": None, "run_saved": None}
            if scenario.sessions:
                try:
                    figures["load"] = drive_server(scenario, server.url, pid)
                except Exception as exc:  # noqa: BLE001 - a killed server breaks the sessions: reported below
                    figures["load_error"] = f"{type(exc).__name__}: {exc}"
            if scenario.trainers:
                figures["run_saved"] = wait_for_saved_run(runs, before, server.process, RUN_SAVED_TIMEOUT)
            sampler.sample()
        alive = server.process.poll() is None
        figures.update(
            alive=alive,
            exit_code=server.process.returncode,
            peak_rss_mb=procfs.read_peak_rss_mb(pid) if alive else None,
            rss_mb=ps.read_rss_mb(pid) if alive else None,
            rss_anon_mb=procfs.read_status_mb(pid, "RssAnon") if alive else None,
            sampled_peak_rss_mb=sampler.peak["VmRSS"],
            sampled_peak_anon_mb=sampler.peak["RssAnon"],
        )
        if group is not None:
            figures["cgroup"] = read_cgroup(group)
        stop_server(server.process)  # before the group is removed
        figures["log_errors"] = load.server_log_errors(log_path.read_text(errors="replace"))
        log_path.unlink(missing_ok=True)
    errors = (figures["load"] or {}).get("errors", 0)
    survived = figures["alive"] and not (figures.get("cgroup") or {}).get("oom_kills") and "load_error" not in figures
    figures["survived"] = bool(survived and (figures["run_saved"] is not False))
    figures["errors"] = errors
    return figures


def server_row(name: str, figures: dict) -> list[str]:
    def mb(value) -> str:
        return "-" if value is None else f"{value:.0f}"

    group = figures.get("cgroup") or {}
    return [
        name,
        SCENARIOS[name].label,
        mb(figures["peak_rss_mb"] or figures["sampled_peak_rss_mb"]),
        mb(figures["sampled_peak_anon_mb"]),
        mb(group.get("max_usage_mb")),
        "yes" if figures["survived"] else "NO",
        str(figures["errors"]),
    ]


def process_figures(results: dict, args) -> list[Figure]:
    """Peak RSS of each in-process measurement (its last stage's VmHWM) against the targets."""
    figures = []
    if "predict" in results:
        predict = results["predict"]
        peak = predict["stages"][-1]["peak_mb"]
        figures.append(
            Figure(
                "predict_peak_mb",
                peak,
                "MiB",
                f"peak RSS: data set + model + predict ({predict['arch']})",
                target=f"< {TARGET_PREDICT_MB / 1024:g} GiB",
                passed=peak < TARGET_PREDICT_MB,
            )
        )
    if "train_fast" in results:
        fast = results["train_fast"]
        figures.append(
            Figure(
                "train_fast_peak_mb",
                fast["stages"][-1]["peak_mb"],
                "MiB",
                f"peak RSS: training the fast preset ({fast['seconds']:.0f} s, accuracy {fast['test_accuracy']:.4f})",
            )
        )
    if "train" in results:
        train = results["train"]
        peak = train["stages"][-1]["peak_mb"]
        figures += [
            Figure(
                "train_peak_mb",
                peak,
                "MiB",
                f"peak RSS: training the best preset ({train['config']['arch']}, {train['steps_done']} steps"
                " + test evaluation)",
                target=f"< {TARGET_TRAIN_MB / 1024:g} GiB",
                passed=peak < TARGET_TRAIN_MB,
            ),
            Figure(
                "train_peak_reached_at", train["peak_reached_at"], label="training: peak RSS reached (within 1%) at"
            ),
            Figure("train_epochs", args.epochs),
            Figure("train_max_steps", args.max_steps),
        ]
    if "baseline" in results:
        figures.append(
            Figure(
                "baseline_mb",
                results["baseline"]["stages"][-1]["peak_mb"],
                "MiB",
                "RSS of python + torch + mnist imported (context)",
            )
        )
    return figures


def server_figures(servers: dict) -> list[Figure]:
    """Each server scenario's peak RSS and RssAnon; the cgroup's survival; the load's per-backend target."""
    figures = []
    for name, result in servers.items():
        peak = result["peak_rss_mb"] or result["sampled_peak_rss_mb"]
        target = {}
        if name == "load50":
            target = {"target": f"<= {TARGET_BACKEND_MB / 1024:g} GiB", "passed": peak <= TARGET_BACKEND_MB}
        figures.append(
            Figure(f"{name}_peak_rss_mb", peak, "MiB", f"server peak RSS: {SCENARIOS[name].label}", **target)
        )
        figures.append(
            Figure(f"{name}_peak_anon_mb", result["sampled_peak_anon_mb"], "MiB", f"server peak RssAnon: {name}")
        )
    if "cgroup_1gib" in servers:
        result = servers["cgroup_1gib"]
        group = result.get("cgroup") or {}
        figures += [
            Figure(
                "cgroup_1gib_survived",
                result["survived"],
                label="one process, 1 GiB cgroup: trains the fast preset while one sketches",
                target="survives",
                passed=result["survived"],
            ),
            Figure("cgroup_1gib_max_usage_mb", group.get("max_usage_mb"), "MiB", "the cgroup's peak usage"),
            Figure("cgroup_1gib_failcnt", group.get("failcnt"), label="times the cgroup hit its limit (reclaim)"),
        ]
    return figures


def run_servers(names: list[str]) -> dict:
    results = {}
    for name in names:
        if SCENARIOS[name].cgroup and not cgroup_available():
            print(f"skipping {name}: no writable cgroup v1 memory controller at {CGROUP_V1_MEMORY}", flush=True)
            continue
        print(f"running the server scenario {name} ({SCENARIOS[name].label}) ...", flush=True)
        results[name] = measure_server(SCENARIOS[name])
    return results


def print_tables(results: dict, servers: dict) -> None:
    table = []
    for kind, result in results.items():
        for stage in result["stages"]:
            table.append([kind, stage["stage"], f"{stage['rss_mb']:.0f}", f"{stage['peak_mb']:.0f}"])
    if table:
        print()
        print(benchlib.format_table(("process", "after", "RSS MiB", "peak RSS MiB"), table))
    if servers:
        print()
        rows = [server_row(name, figures) for name, figures in servers.items()]
        header = ("server", "scenario", "peak RSS MiB", "peak RssAnon MiB", "cgroup peak MiB", "survived", "errors")
        print(benchlib.format_table(header, rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1, help="epochs of the best preset to train (default 1)")
    parser.add_argument("--max-steps", type=int, default=0, help="stop training after N steps (0 = the epochs)")
    parser.add_argument("--checkpoint", help="model for the predict process (default: the bundled model)")
    parser.add_argument("--quick", action="store_true", help="train 100 steps only")
    parser.add_argument("--skip-load", action="store_true", help="leave out the 50-session load scenario")
    parser.add_argument("--only", help="comma-separated measurements to run (default: all)")
    parser.add_argument(
        "--eval-batch", type=int, default=0, help="experiment: override mnist.train.EVAL_BATCH in the processes"
    )
    parser.add_argument("--child", choices=tuple(CHILDREN), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.max_steps = args.max_steps or 100

    if args.child:
        if args.eval_batch:
            import mnist.train

            mnist.train.EVAL_BATCH = args.eval_batch
        print(json.dumps(CHILDREN[args.child](args)))
        return 0

    chosen = args.only.split(",") if args.only else [*CHILDREN, *SCENARIOS]
    unknown = set(chosen) - set(CHILDREN) - set(SCENARIOS)
    if unknown:
        parser.error(
            f"unknown measurement(s) {', '.join(sorted(unknown))}; choose from {', '.join([*CHILDREN, *SCENARIOS])}"
        )
    if args.skip_load:
        chosen = [name for name in chosen if name != "load50"]
    machine = benchlib.start("memory: resident set size, one fresh process per measurement")
    extra = ["--epochs", str(args.epochs), "--max-steps", str(args.max_steps), "--eval-batch", str(args.eval_batch)]
    if args.eval_batch:
        print(f"EXPERIMENT: mnist.train.EVAL_BATCH set to {args.eval_batch} in the measured processes")
    if args.checkpoint:
        extra += ["--checkpoint", args.checkpoint]
    results = {}
    for kind in (k for k in CHILDREN if k in chosen):
        print(f"running the {kind} process ...", flush=True)
        results[kind] = run_child(kind, extra)
    servers = run_servers([name for name in SCENARIOS if name in chosen])
    print_tables(results, servers)

    experiment = bool(args.eval_batch) or bool(args.only)
    figures = process_figures(results, args) + server_figures(servers)
    benchlib.report(
        "memory",
        machine,
        figures,
        file_stem="memory-experiment" if experiment else None,  # never replaces the real figures
        quick=args.quick,
        seeds={"canvases": CANVAS_SEED, "best preset": results.get("train", {}).get("config", {}).get("seed")},
        eval_batch=args.eval_batch or None,
        processes=results,
        servers=servers,
    )
    git = benchlib.read_git_state()
    summary = {"commit": git["commit"], "dirty": git["dirty"], "cpu": machine["cpu"], "cores": machine["cores"]}
    print(json.dumps({**summary, **benchlib.collect_values(figures)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
