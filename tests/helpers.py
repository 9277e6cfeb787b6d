"""Plain helpers the tests import (`from helpers import ...`); fixtures live in conftest.py.

Data the tests make: random MnistData, IDX files written to a folder, and where the real MNIST is.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED_MNIST = REPO.parent / "shared" / "mnist"


def random_mnist(train: int, test: int, seed: int = 0):
    """MnistData of random images and labels: `train` training and `test` test images (jobs, pools, faults)."""
    from mnist.data import random_mnist as make

    return make(train, test, seed)


def real_mnist_dir() -> Path | None:
    for candidate in (os.environ.get("MNIST_DATA_DIR"), SHARED_MNIST):
        if candidate and Path(candidate).is_dir():
            from mnist.data import find_mnist_files

            if find_mnist_files(Path(candidate)):
                return Path(candidate)
    return None


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False, magic: int | None = None) -> Path:
    """Write a uint8 array as an IDX file (optionally gzipped, optionally with a forged magic)."""
    array = np.asarray(array, dtype=np.uint8)
    magic = magic if magic is not None else (0x08 << 8) | array.ndim
    payload = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


def write_small_mnist(folder: Path, *, n_train: int = 50, n_test: int = 20, gz: bool = False, seed: int = 0):
    """Four valid IDX files with random images and labels 0..9; returns (train_images, train_labels)."""
    rng = np.random.default_rng(seed)
    suffix = ".gz" if gz else ""
    arrays = {}
    for split, n, prefix in (("train", n_train, "train"), ("test", n_test, "t10k")):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, gz=gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz=gz)
        arrays[split] = (images, labels)
    return arrays
