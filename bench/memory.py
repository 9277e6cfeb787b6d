"""Resident memory: each measurement in a fresh subprocess, read from /proc/self/status.

baseline  python + torch + the mnist package imported, nothing loaded (for context)
predict   load the data set and the bundled model, predict 200 canvases, evaluate the test set
          (what a Sketch/Explore session holds); peak RSS (VmHWM) must stay under 1 GB
train     train the largest preset ("best": its model, augmentation and batch) for --epochs
          (default 1: memory peaks in the first steps and the test evaluation), optionally only
          --max-steps steps (the evaluation still runs); peak RSS must stay under 2 GB

  python bench/memory.py [--epochs 1] [--max-steps N] [--checkpoint PATH] [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench import benchlib, procfs
from bench.benchlib import Figure

TARGET_PREDICT_MB = 1024.0
TARGET_TRAIN_MB = 2048.0
CANVAS_SEED = 0  # which digits are drawn where on the predicted canvases


def memory_now() -> dict[str, float]:
    """Current and peak (VmHWM) resident set size of this process, in MiB."""
    return {"rss_mb": procfs.read_status_mb("self", "VmRSS"), "peak_mb": procfs.read_status_mb("self", "VmHWM")}


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


CHILDREN = {"baseline": child_baseline, "predict": child_predict, "train": child_train}


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


def memory_figures(results: dict, args) -> list[Figure]:
    """Peak RSS of each process (its last stage's VmHWM) against the targets."""
    predict, train = results["predict"], results["train"]
    predict_peak = predict["stages"][-1]["peak_mb"]
    train_peak = train["stages"][-1]["peak_mb"]
    return [
        Figure(
            "predict_peak_mb",
            predict_peak,
            "MiB",
            f"peak RSS: data set + model + predict ({predict['arch']})",
            target=f"< {TARGET_PREDICT_MB / 1024:g} GiB",
            passed=predict_peak < TARGET_PREDICT_MB,
        ),
        Figure(
            "train_peak_mb",
            train_peak,
            "MiB",
            f"peak RSS: training the best preset ({train['config']['arch']}, {train['steps_done']} steps"
            " + test evaluation)",
            target=f"< {TARGET_TRAIN_MB / 1024:g} GiB",
            passed=train_peak < TARGET_TRAIN_MB,
        ),
        Figure("train_peak_reached_at", train["peak_reached_at"], label="training: peak RSS reached (within 1%) at"),
        Figure(
            "baseline_mb",
            results["baseline"]["stages"][-1]["peak_mb"],
            "MiB",
            "RSS of python + torch + mnist imported (context)",
        ),
        Figure("train_epochs", args.epochs),
        Figure("train_max_steps", args.max_steps),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1, help="epochs of the best preset to train (default 1)")
    parser.add_argument("--max-steps", type=int, default=0, help="stop training after N steps (0 = the epochs)")
    parser.add_argument("--checkpoint", help="model for the predict process (default: the bundled model)")
    parser.add_argument("--quick", action="store_true", help="train 100 steps only")
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

    machine = benchlib.start("memory: resident set size, one fresh process per measurement")
    extra = ["--epochs", str(args.epochs), "--max-steps", str(args.max_steps), "--eval-batch", str(args.eval_batch)]
    if args.eval_batch:
        print(f"EXPERIMENT: mnist.train.EVAL_BATCH set to {args.eval_batch} in the measured processes")
    if args.checkpoint:
        extra += ["--checkpoint", args.checkpoint]
    results = {}
    for kind in CHILDREN:
        print(f"running the {kind} process ...", flush=True)
        results[kind] = run_child(kind, extra)

    table = []
    for kind, result in results.items():
        for stage in result["stages"]:
            table.append([kind, stage["stage"], f"{stage['rss_mb']:.0f}", f"{stage['peak_mb']:.0f}"])
    print()
    print(benchlib.format_table(("process", "after", "RSS MiB", "peak RSS MiB"), table))

    experiment = bool(args.eval_batch)
    benchlib.report(
        "memory",
        machine,
        memory_figures(results, args),
        file_stem="memory-experiment" if experiment else None,  # never replaces the real figures
        quick=args.quick,
        seeds={"canvases": CANVAS_SEED, "best preset": results["train"]["config"]["seed"]},
        eval_batch=args.eval_batch or None,
        processes=results,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
