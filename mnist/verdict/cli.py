"""python -m mnist.verdict calibrate [RUN_DIR]: store a model's calibration beside it."""

from __future__ import annotations

import sys
from pathlib import Path

from ..checkpoint import BUNDLED_DIR, load_checkpoint
from ..data import load_mnist
from ..errors import MnistError
from .calibration import calibrate, save_calibration


def main(argv: list[str] | None = None) -> int:
    """Compute a run folder's calibration from MNIST and store it there (default: the bundled model)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m mnist.verdict", description=main.__doc__)
    parser.add_argument("command", choices=["calibrate"])
    parser.add_argument("run_dir", nargs="?", type=Path, default=BUNDLED_DIR)
    parser.add_argument("--data-dir", type=Path, help="MNIST folder (default: $MNIST_DATA_DIR or ./data)")
    args = parser.parse_args(argv)
    try:
        checkpoint = load_checkpoint(args.run_dir)
        data = load_mnist(args.data_dir, download=False)
        calibration = calibrate(checkpoint.model, data.train_images, data.train_labels)
        path = save_calibration(args.run_dir, calibration)
    except MnistError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"max distance {calibration.max_distance:.2f} ({calibration.details}); saved {path}")
    return 0
