"""Sketch prediction latency: preprocess + forward of one 280x280 RGBA canvas, CPU, batch 1.

The canvases are real MNIST test digits enlarged 6-10x (bilinear, like anti-aliased strokes) at
random places on a black 280x280 RGBA canvas, a different digit on every call. The headline figure
is mnist.predict.predict_canvas exactly as the app calls it, with torch threads = cores. Variants
run on the same canvases, interleaved in blocks so a change in background load hits them alike:

  threads=1       torch.set_num_threads(1) around the call
  no_grad         the same code with torch.no_grad instead of torch.inference_mode
  contiguous      the model converted back to NCHW weights (loaded models are channels-last)
  compile         torch.compile(model) (its first-call cost is reported separately; --no-compile skips it)

and the two halves alone: preprocess_canvas, and the model's forward on a ready tensor.

Then the app's busy case: a training job (the fast preset) runs in the same process through
mnist.jobs.JobManager, as the app runs it (its thread at a lower OS priority, its share of the cores),
while --busy-calls canvases are predicted with the default threads and with threads=1; and again
with the same training in a plain thread at normal priority on all cores, for comparison. Before,
between and after them the same canvases are predicted with nothing training, so that a change in
the machine's background load shows in the baseline too (--no-busy skips all of it).

    python bench/predict_latency.py [--calls 1000] [--busy-calls 300] [--checkpoint PATH] [--no-compile]
                                    [--no-busy] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import threading
import time

import numpy as np
import torch

from bench import benchlib
from bench.benchlib import Figure
from mnist.checkpoint import load_checkpoint
from mnist.config import PRESETS
from mnist.ensemble import Ensemble
from mnist.jobs import JobManager
from mnist.predict import predict_canvas, single_thread
from mnist.preprocess import preprocess_canvas
from mnist.train import StepEvent, train

TARGET_P50_MS = 3.0
TARGET_P99_MS = 10.0
BLOCK = 50  # calls per variant before switching to the next one
WARMUP = 30  # calls per variant before timing
BLOCK_WARMUP = 3  # untimed calls at the start of every block
STARTUP_TIMEOUT_S = 300  # for the background training's first step
CANVAS_SEED, BUSY_SEED, FIRST_CALL_SEED = 0, 1, 1  # which digit is drawn where: idle, while training, first call

# Variant names the figures refer to, and the variants' p50 figures (key, variant).
LIBRARY = "library (predict_canvas)"
LIBRARY_THREADS1 = "library, threads=1"
COMPILED = "torch.compile model"
UNFUSED = "ensemble members one by one (not fused)"
VARIANT_FIGURES = (
    ("no_grad_p50_ms", "no_grad instead of inference_mode"),
    ("contiguous_p50_ms", "contiguous (NCHW) model"),
    ("preprocess_p50_ms", "preprocess only"),
    ("forward_p50_ms", "forward only"),
    ("forward_threads1_p50_ms", "forward only, threads=1"),
)


def predict_no_grad(model, canvas):
    """predict_canvas with torch.no_grad instead of inference_mode, the rest as the library does it (one
    thread for a small batch, the finiteness check, the probabilities as floats)."""
    image = preprocess_canvas(canvas)
    if image.empty:
        return image, None
    with torch.no_grad(), single_thread():
        probs = model(image.to_tensor()).float().softmax(1)[0]
    if not torch.isfinite(probs).all():
        raise AssertionError("NaN probabilities")
    return image, (int(probs.argmax()), tuple(float(p) for p in probs))


def make_variants(model, threads: int, with_compile: bool) -> tuple[dict, dict]:
    """name -> (threads, callable(canvas, tensor)); and setup facts (compile cost)."""
    setup = {}
    nchw_model = copy.deepcopy(model).to(memory_format=torch.contiguous_format)

    def forward(m):
        def run(_canvas, x):
            with torch.inference_mode():
                return m(x)

        return run

    variants = {
        LIBRARY: (threads, lambda c, _x: predict_canvas(model, c)),
        LIBRARY_THREADS1: (1, lambda c, _x: predict_canvas(model, c)),
        "no_grad instead of inference_mode": (threads, lambda c, _x: predict_no_grad(model, c)),
        "contiguous (NCHW) model": (threads, lambda c, _x: predict_canvas(nchw_model, c)),
        "contiguous (NCHW) model, threads=1": (1, lambda c, _x: predict_canvas(nchw_model, c)),
        "preprocess only": (threads, lambda c, _x: preprocess_canvas(c)),
        "preprocess only, threads=1": (1, lambda c, _x: preprocess_canvas(c)),
        "forward only": (threads, forward(model)),
        "forward only, threads=1": (1, forward(model)),
    }
    if isinstance(model, Ensemble):  # the fused forward (mnist.ensemble) against the members one by one
        unfused = Ensemble(model.members, fuse=False).eval()
        variants[UNFUSED] = (threads, lambda c, _x: predict_canvas(unfused, c))
        variants[UNFUSED + ", threads=1"] = (1, lambda c, _x: predict_canvas(unfused, c))
        variants["forward only, members one by one, threads=1"] = (1, forward(unfused))
    if with_compile:
        compiled = torch.compile(model)
        x = torch.zeros(1, 1, 28, 28)
        t0 = time.perf_counter()
        with torch.inference_mode():
            compiled(x)
        setup["compile_first_call_s"] = time.perf_counter() - t0
        variants[COMPILED] = (threads, lambda c, _x: predict_canvas(compiled, c))
        variants["torch.compile model, threads=1"] = (1, lambda c, _x: predict_canvas(compiled, c))
    return variants, setup


def first_call_ms(model, canvas) -> float:
    """The very first predict_canvas call of the process (lazy kernel setup included)."""
    t0 = time.perf_counter()
    predict_canvas(model, canvas)
    return (time.perf_counter() - t0) * 1000


def measure(variants: dict, digits: np.ndarray, calls: int, threads: int, seed: int) -> dict[str, list[float]]:
    """Per-call seconds of every variant over the same `calls` canvases, in interleaved blocks."""
    rng = np.random.default_rng(seed)
    names = list(variants)
    times: dict[str, list[float]] = {name: [] for name in names}
    warm = [benchlib.mnist_canvas(digits[i], rng) for i in range(WARMUP)]
    for name in names:
        n_threads, fn = variants[name]
        torch.set_num_threads(n_threads)
        for canvas in warm:
            fn(canvas, preprocess_canvas(canvas).to_tensor())
    order = rng.permutation(len(digits))
    for block_no, start in enumerate(range(0, calls, BLOCK)):
        idx = [order[i % len(order)] for i in range(start, min(start + BLOCK, calls))]
        canvases = [benchlib.mnist_canvas(digits[i], rng) for i in idx]
        tensors = [preprocess_canvas(c).to_tensor() for c in canvases]
        shift = block_no % len(names)  # rotate which variant goes first
        for name in names[shift:] + names[:shift]:
            n_threads, fn = variants[name]
            torch.set_num_threads(n_threads)
            for canvas, x in zip(canvases[:BLOCK_WARMUP], tensors[:BLOCK_WARMUP], strict=True):
                fn(canvas, x)  # untimed: the first calls after a thread-count change rebuild the thread pool
            for canvas, x in zip(canvases, tensors, strict=True):
                t0 = time.perf_counter()
                fn(canvas, x)
                times[name].append(time.perf_counter() - t0)
    torch.set_num_threads(threads)
    return times


BUSY_CONFIG = PRESETS["fast"].replace(epochs=20, device="cpu")  # far more than the measurement needs
QUIET = "nothing training"
POOL = "the fast preset training as an app job (mnist.jobs)"
NORMAL = "the same training in a plain thread at normal priority"
PHASES = (QUIET, POOL, QUIET, NORMAL, QUIET)  # a quiet phase on each side of a training one: same background load


class PoolTraining:
    """The fast preset training as the app trains it: one job of a mnist.jobs.JobManager, until stopped."""

    def __init__(self, data) -> None:
        self.runs = tempfile.TemporaryDirectory(prefix="bench-latency-runs-")  # the stopped job saves its run
        self.manager = JobManager(load_data=lambda: data, runs_dir=self.runs.name, max_workers=1)
        self.job = None

    @property
    def steps(self) -> int:
        events = [e for e in self.manager.events(self.job) if isinstance(e, StepEvent)]
        return events[-1].step if events else 0

    def __enter__(self) -> PoolTraining:
        self.job = self.manager.submit(BUSY_CONFIG, "bench")
        deadline = time.perf_counter() + STARTUP_TIMEOUT_S
        while not self.steps and not self.job.is_finished and time.perf_counter() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.manager.shutdown()
        self.runs.cleanup()


class NoTraining:
    """A phase with nothing training: the baseline between the training phases."""

    steps = 0

    def __init__(self, _data=None) -> None:
        pass

    def __enter__(self) -> NoTraining:
        return self

    def __exit__(self, *exc) -> None:
        pass


class BackgroundTraining:
    """The fast preset training in a plain thread of this process, at normal priority on all cores, until stopped."""

    def __init__(self, data) -> None:
        self.stop = threading.Event()
        self.started = threading.Event()
        self.steps = 0
        self.thread = threading.Thread(target=self._run, args=(BUSY_CONFIG, data), daemon=True)

    def _run(self, config, data) -> None:
        for event in train(config, data, self.stop):
            if isinstance(event, StepEvent):
                self.steps = event.step
                self.started.set()
        self.started.set()

    def __enter__(self) -> BackgroundTraining:
        self.thread.start()
        self.started.wait(timeout=STARTUP_TIMEOUT_S)
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=600)


def measure_busy(data, variants: dict, digits: np.ndarray, calls: int, threads: int) -> dict[str, tuple[dict, int]]:
    """phase (QUIET, POOL, NORMAL) -> (latency_stats of every variant, training steps meanwhile).

    The phases run in the order of PHASES, each on the same canvases; the quiet ones are pooled.
    """
    trainings = {QUIET: NoTraining, POOL: PoolTraining, NORMAL: BackgroundTraining}
    times = {phase: {name: [] for name in variants} for phase in trainings}
    steps = dict.fromkeys(trainings, 0)
    for phase in PHASES:
        print(f"\nwhile {phase}: {calls} calls per variant ...")
        phase_times, phase_steps = measure_while(trainings[phase](data), variants, digits, calls, threads)
        phase_stats = {name: benchlib.latency_stats(t) for name, t in phase_times.items()}
        print(stats_table(phase_stats, variants, phase_stats[LIBRARY]))
        for name, t in phase_times.items():
            times[phase][name] += t
        steps[phase] += phase_steps
    return {
        phase: ({name: benchlib.latency_stats(t) for name, t in by_name.items()}, steps[phase])
        for phase, by_name in times.items()
    }


def measure_while(training, variants: dict, digits: np.ndarray, calls: int, threads: int) -> tuple[dict, int]:
    """measure() of every variant (the same canvases in every phase) while `training` trains; its steps."""
    with training:
        before = training.steps
        times = measure(variants, digits, calls, threads, seed=BUSY_SEED)
        return times, training.steps - before


def stats_table(stats: dict, variants: dict, base: dict) -> str:
    headers = ("variant", "threads", "p50 ms", "p90 ms", "p99 ms", "max ms", "mean ms", "p50 vs library")
    table = []
    for name, s in stats.items():
        table.append(
            [
                name,
                variants[name][0],
                f"{s['p50_ms']:.3f}",
                f"{s['p90_ms']:.3f}",
                f"{s['p99_ms']:.3f}",
                f"{s['max_ms']:.2f}",
                f"{s['mean_ms']:.3f}",
                f"{s['p50_ms'] / base['p50_ms']:.2f}x",
            ]
        )
    return benchlib.format_table(headers, table)


def latency_figures(
    stats: dict,
    busy_stats: dict,
    busy_steps: int,
    setup: dict,
    first_ms: float,
    arch: str,
    calls: int,
    normal_stats: dict | None = None,
    quiet_stats: dict | None = None,
    normal_steps: int = 0,
) -> list[Figure]:
    """The headline figures (predict_canvas as the app calls it), the variants' p50s, the busy cases' figures.

    busy_stats: while a job trains as the app runs it (mnist.jobs); normal_stats: while the same training
    runs at normal priority on all cores; quiet_stats: nothing training, between those phases (the
    baseline of their ratios; without it, the first measurement).
    """
    base, one = stats[LIBRARY], stats[LIBRARY_THREADS1]
    figures = [
        Figure(
            "p50_ms",
            base["p50_ms"],
            "ms",
            f"sketch prediction p50 ({calls} canvases, {arch})",
            target=f"<= {TARGET_P50_MS:g} ms",
            passed=base["p50_ms"] <= TARGET_P50_MS,
        ),
        Figure("p90_ms", base["p90_ms"], "ms"),
        Figure(
            "p99_ms",
            base["p99_ms"],
            "ms",
            "sketch prediction p99",
            note=f"(p90 {base['p90_ms']:.2f}, max {base['max_ms']:.1f})",
            target=f"<= {TARGET_P99_MS:g} ms",
            passed=base["p99_ms"] <= TARGET_P99_MS,
        ),
        Figure("max_ms", base["max_ms"], "ms"),
        Figure("first_call_ms", first_ms, "ms", "sketch prediction: the process's first call", spec=".1f"),
        Figure(
            "threads1_p50_ms",
            one["p50_ms"],
            "ms",
            "sketch prediction with torch threads=1 (p50 / p99)",
            note=f"/ {one['p99_ms']:.2f} ms",
            ratio=one["p50_ms"] / base["p50_ms"],
            ratio_note="p50 of default",
        ),
        Figure("threads1_p99_ms", one["p99_ms"], "ms"),
    ]
    figures += [Figure(key, stats[name]["p50_ms"], "ms") for key, name in VARIANT_FIGURES if name in stats]
    if UNFUSED in stats:
        unfused = stats[UNFUSED]
        figures.append(
            Figure(
                "unfused_p50_ms",
                unfused["p50_ms"],
                "ms",
                "the same ensemble, members one by one (p50 / p99)",
                note=f"/ {unfused['p99_ms']:.2f} ms",
                ratio=base["p50_ms"] / unfused["p50_ms"],
                ratio_note="fused p50 / this p50",
            )
        )
        figures.append(Figure("unfused_p99_ms", unfused["p99_ms"], "ms"))
    compile_s = setup.get("compile_first_call_s")
    figures += [
        Figure("compile_first_call_s", compile_s, "s", "torch.compile: first call" if compile_s is not None else ""),
        Figure("compile_p50_ms", stats.get(COMPILED, {}).get("p50_ms"), "ms"),
        Figure("arch", arch),
        Figure("calls", calls),
    ]
    quiet = quiet_stats[LIBRARY] if quiet_stats else base
    if quiet_stats:
        figures += [
            Figure(
                "quiet_p50_ms",
                quiet["p50_ms"],
                "ms",
                "sketch prediction (p50 / p99), default threads, nothing training, between the training phases",
                note=f"/ {quiet['p99_ms']:.2f} ms",
            ),
            Figure("quiet_p99_ms", quiet["p99_ms"], "ms"),
        ]
    if busy_stats:
        busy, busy_one = busy_stats[LIBRARY], busy_stats[LIBRARY_THREADS1]
        during = f"while a training job runs in the app's pool ({busy_steps} steps meanwhile)"
        figures += [
            Figure(
                "busy_p50_ms",
                busy["p50_ms"],
                "ms",
                f"sketch prediction (p50 / p99), default threads, {during}",
                note=f"/ {busy['p99_ms']:.2f} ms",
                ratio=busy["p99_ms"] / quiet["p99_ms"],
                ratio_note="p99 of no training",
            ),
            Figure("busy_p99_ms", busy["p99_ms"], "ms"),
            Figure(
                "busy_threads1_p50_ms",
                busy_one["p50_ms"],
                "ms",
                f"sketch prediction (p50 / p99), threads=1, {during}",
                note=f"/ {busy_one['p99_ms']:.2f} ms",
                ratio=busy_one["p99_ms"] / busy["p99_ms"],
                ratio_note="p99 of default",
            ),
            Figure("busy_threads1_p99_ms", busy_one["p99_ms"], "ms"),
        ]
    if normal_stats:
        normal = normal_stats[LIBRARY]
        figures += [
            Figure(
                "busy_normal_priority_p50_ms",
                normal["p50_ms"],
                "ms",
                f"sketch prediction (p50 / p99), default threads, while the same training runs at normal "
                f"priority ({normal_steps} steps meanwhile)",
                note=f"/ {normal['p99_ms']:.2f} ms",
                ratio=normal["p99_ms"] / quiet["p99_ms"],
                ratio_note="p99 of no training",
            ),
            Figure("busy_normal_priority_p99_ms", normal["p99_ms"], "ms"),
        ]
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000, help="timed calls per variant (default 1000)")
    parser.add_argument("--checkpoint", help="run folder or .safetensors (default: the bundled model)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    parser.add_argument("--busy-calls", type=int, default=300, help="calls per variant while training runs")
    parser.add_argument("--no-busy", action="store_true", help="skip the measurement while training runs")
    parser.add_argument("--quick", action="store_true", help="200 calls (100 while training), no compile")
    args = parser.parse_args(argv)
    if args.quick:
        args.calls, args.busy_calls, args.no_compile = min(args.calls, 200), min(args.busy_calls, 100), True

    machine = benchlib.start("predict_latency: one canvas, preprocess + forward, CPU")
    threads = machine["torch_threads"]
    path, description = benchlib.checkpoint_path(args.checkpoint)
    ckpt = load_checkpoint(path)
    model = ckpt.model
    print(f"model: {description}, arch {ckpt.arch}")

    data = benchlib.load_data()
    digits = data.test_images.numpy()
    first_ms = first_call_ms(model, benchlib.mnist_canvas(digits[0], np.random.default_rng(FIRST_CALL_SEED)))

    variants, setup = make_variants(model, threads, with_compile=not args.no_compile)
    print(f"timing {args.calls} calls per variant ({len(variants)} variants, interleaved in blocks of {BLOCK}) ...")
    times = measure(variants, digits, args.calls, threads, seed=CANVAS_SEED)
    stats = {name: benchlib.latency_stats(t) for name, t in times.items()}
    print()
    print(stats_table(stats, variants, stats[LIBRARY]))

    busy = {}
    if not args.no_busy:
        busy_variants = {k: v for k, v in variants.items() if k in (LIBRARY, LIBRARY_THREADS1)}
        busy = measure_busy(data, busy_variants, digits, args.busy_calls, threads)
    (quiet_stats, _), (busy_stats, busy_steps), (normal_stats, normal_steps) = (
        busy.get(phase, ({}, 0)) for phase in (QUIET, POOL, NORMAL)
    )

    if not description.startswith("bundled"):
        print(f"NOTE: measured with a {description}")
    benchlib.report(
        "predict_latency",
        machine,
        latency_figures(
            stats,
            busy_stats,
            busy_steps,
            setup,
            first_ms,
            ckpt.arch,
            args.calls,
            normal_stats,
            quiet_stats,
            normal_steps,
        ),
        quick=args.quick,
        seeds={
            "canvases": CANVAS_SEED,
            "canvases while training": BUSY_SEED,
            "first call": FIRST_CALL_SEED,
            "training job": PRESETS["fast"].seed,
        },
        model=description,
        stats=stats,
        busy_stats=busy_stats,
        busy_training_steps=busy_steps,
        busy_normal_priority_stats=normal_stats,
        busy_normal_priority_training_steps=normal_steps,
        quiet_stats=quiet_stats,
        setup=setup,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
