"""Bundle candidates: the models that could ship as the bundled one, side by side in one run.

For each run folder given (default: the bundled model alone):

  size            its weights file against the bundle's budget (issue 13: under 2 MB, decimal)
  accuracy        on all 10,000 MNIST test images, evaluated now (not read from its meta.json), and the
                  test loss: a few errors more or less are within seed noise, the loss moves more smoothly
  model CPU       what one Sketch stroke costs in model work, in CPU milliseconds of this process:
                  mnist.verdict.read_drawing (prediction and not-a-digit check, with the run's stored
                  calibration) plus the integrated-gradients map of its first member at
                  mnist.predict.LIVE_IG_STEPS, as the Sketch page does per stroke; --drawings MNIST test
                  digits drawn on 280x280 canvases (benchlib.mnist_canvas), the candidates interleaved
                  drawing by drawing so that background load falls on all of them alike

The rest of a stroke (Streamlit, the charts, the images) does not change with the model:
bench/stroke_cpu.py measures the whole stroke in the real app, for the bundled model only. Accuracy alone
picks nothing here: a candidate that costs more per stroke must earn it (README, "The bundled model").

    python bench/bundle.py [RUN ...] [--drawings 200] [--quick]
"""

from __future__ import annotations

import os

# As the app runs (streamlit_app.py): idle OpenMP threads sleep instead of spinning, so that CPU time
# counts work, not a second thread waiting for the next op. Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench import benchlib
from bench.benchlib import Figure
from mnist.checkpoint import BUNDLED_DIR, WEIGHTS_FILE, Checkpoint, load_checkpoint
from mnist.ensemble import first_member
from mnist.predict import LIVE_IG_STEPS, saliency_map
from mnist.preprocess import CanvasImage
from mnist.train import evaluate
from mnist.verdict import Calibration, calibration_for, read_drawing

BUDGET_BYTES = 2_000_000  # issue 13: the bundled model ships in under 2 MB
CANVAS_SEED = 0
DEFAULT_DRAWINGS, QUICK_DRAWINGS = 200, 10


@dataclass
class Candidate:
    name: str
    checkpoint: Checkpoint
    calibration: Calibration
    size_bytes: int
    cpu_ms: list[float]


def load_candidate(path: Path | None) -> Candidate:
    checkpoint = load_checkpoint(path)
    name = "bundled" if path is None else path.name
    size = (checkpoint.path / WEIGHTS_FILE).stat().st_size
    return Candidate(name, checkpoint, calibration_for(checkpoint), size, [])


def stroke_model_cpu_ms(candidate: Candidate, canvas: np.ndarray) -> float:
    """CPU milliseconds of one stroke's model work: the reading, then the first member's saliency map."""
    model = candidate.checkpoint.model
    start = time.process_time()
    reading = read_drawing(model, canvas, candidate.calibration)
    group = reading.groups[0] if reading.groups else None
    if group is not None and group.digit is not None:
        saliency_map(first_member(model), CanvasImage(group.pixels), target=group.digit, steps=LIVE_IG_STEPS)
    return (time.process_time() - start) * 1000


def candidate_figures(candidate: Candidate, accuracy: float, loss: float, errors: int) -> list[Figure]:
    p50, p90 = (float(p) for p in np.percentile(candidate.cpu_ms, [50, 90]))
    stats = {"p50": p50, "p90": p90}
    fits = candidate.size_bytes < BUDGET_BYTES
    key, label = candidate.name, f"{candidate.name} ({candidate.checkpoint.record.model_text})"
    return [
        Figure(
            f"{key}_bytes",
            candidate.size_bytes,
            "",
            f"{label}: weights file",
            "bytes",
            ",d",
            target="< 2 MB",
            passed=fits,
        ),
        Figure(f"{key}_accuracy", accuracy, "%", "  test accuracy", f"({errors} errors)"),
        Figure(f"{key}_test_loss", loss, "", "  test loss (cross-entropy)", spec=".4f"),
        Figure(
            f"{key}_model_cpu_p50_ms", stats["p50"], "ms", "  model CPU per stroke, p50", f"(p90 {stats['p90']:.2f})"
        ),
        Figure(f"{key}_model_cpu_p90_ms", stats["p90"], "ms"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", type=Path, help="run folders (default: the bundled model)")
    parser.add_argument("--drawings", type=int, default=DEFAULT_DRAWINGS, help="test digits drawn per candidate")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_DRAWINGS} drawings: checks that it runs")
    args = parser.parse_args()
    drawings = QUICK_DRAWINGS if args.quick else args.drawings

    machine = benchlib.start("bundle")
    data = benchlib.load_data()
    candidates = [load_candidate(path) for path in args.runs or [None]]
    rng = np.random.default_rng(CANVAS_SEED)
    canvases = [benchlib.mnist_canvas(data.test_images[i].numpy(), rng) for i in range(drawings)]
    for candidate in candidates:  # warm-up: first calls allocate
        stroke_model_cpu_ms(candidate, canvases[0])
    print(f"timing {drawings} strokes per candidate, interleaved ...", flush=True)
    for canvas in canvases:
        for candidate in candidates:
            candidate.cpu_ms.append(stroke_model_cpu_ms(candidate, canvas))

    figures = [Figure("drawings", drawings), Figure("budget_bytes", BUDGET_BYTES)]
    for candidate in candidates:
        result = evaluate(candidate.checkpoint.model, data.test_images, data.test_labels)
        errors = int((result.predictions != result.labels).sum())
        figures += candidate_figures(candidate, result.accuracy, result.loss, errors)
    benchlib.report(
        "bundle",
        machine,
        figures,
        seeds={"canvas": CANVAS_SEED},
        candidates={c.name: str(c.checkpoint.path) for c in candidates},
        threads=torch.get_num_threads(),
        bundled=str(BUNDLED_DIR),
    )


if __name__ == "__main__":
    main()
