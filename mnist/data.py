"""MNIST from the four IDX files: found, validated, held as uint8 tensors, augmented per batch."""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .constants import IMAGE_SIZE, MNIST_MEAN, MNIST_STD, NUM_CLASSES
from .errors import DataError, DataNotFoundError

DATA_DIR_ENV = "MNIST_DATA_DIR"
DEFAULT_DATA_DIR = "data"
FILE_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IDX_UBYTE = 0x08
GZIP_MAGIC = b"\x1f\x8b"
# Augmentation as in the tutorials: rotation, rescale (the crop's zoom) and shift.
MAX_ROTATION_DEG = 15.0
SCALE_RANGE = (0.9, 1.1)
MAX_SHIFT_PX = 2.0


@dataclass(frozen=True)
class MnistData:
    """The whole data set in memory; images (N, 28, 28) uint8, labels (N,) int64 in 0..9."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: Path

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if name == "train":
            return self.train_images, self.train_labels
        if name == "test":
            return self.test_images, self.test_labels
        raise ValueError(f"split must be 'train' or 'test', got {name!r}")


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def missing_data_message(root: Path) -> str:
    names = ", ".join(FILE_NAMES.values())
    return (
        f"MNIST was not found in {root} and could not be downloaded. Put the four IDX files ({names}; "
        f".gz or not) in that folder or in its MNIST/raw subfolder, or set {DATA_DIR_ENV} to the folder "
        "that holds them."
    )


def find_mnist_files(root: Path) -> dict[str, Path] | None:
    """The four files in root, root/MNIST/raw or root/raw (raw or .gz), or None."""
    for folder in (root, root / "MNIST" / "raw", root / "raw"):
        found = {}
        for key, name in FILE_NAMES.items():
            for candidate in (folder / name, folder / f"{name}.gz"):
                if candidate.is_file():
                    found[key] = candidate
                    break
        if len(found) == len(FILE_NAMES):
            return found
    return None


def download_mnist(root: Path) -> None:
    """torchvision's downloader, into root/MNIST/raw. Fails without internet."""
    from torchvision import datasets

    root.mkdir(parents=True, exist_ok=True)
    for train in (True, False):
        datasets.MNIST(root=str(root), train=train, download=True)


def read_file_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic (whatever its name)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise DataError(f"{path}: damaged gzip file ({exc}); delete it and download it again") from None


def read_idx(path: Path, ndim: int) -> torch.Tensor:
    """Parse an IDX uint8 file of the given rank, checking magic, dims and length."""
    path = Path(path)
    raw = read_file_bytes(path)
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataError(f"{path}: only {len(raw)} bytes, too short for an IDX header; the file is truncated")
    magic = struct.unpack(">I", raw[:4])[0]
    expected_magic = (IDX_UBYTE << 8) | ndim
    if magic != expected_magic:
        kind = "image" if ndim == 3 else "label"
        raise DataError(
            f"{path}: wrong magic number 0x{magic:08x}, expected 0x{expected_magic:08x} for an MNIST {kind} "
            "file; is it the right file?"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header_len])
    if ndim == 3 and dims[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"{path}: images are {dims[1]}x{dims[2]}, expected {IMAGE_SIZE}x{IMAGE_SIZE}")
    if dims[0] == 0:
        raise DataError(f"{path}: the header says it holds 0 items")
    expected_len = header_len + math.prod(dims)
    if len(raw) != expected_len:
        state = "truncated" if len(raw) < expected_len else "longer than its header says"
        raise DataError(
            f"{path}: {len(raw)} bytes, but its header ({dims[0]} items) needs {expected_len}: the file is "
            f"{state}; download it again"
        )
    # One writable copy (torch wants one) of the whole file, read past its header: slicing first made a
    # third copy of the data set while loading (47 MB more peak for the training images).
    buffer = bytearray(raw)
    del raw
    return torch.frombuffer(buffer, dtype=torch.uint8, offset=header_len).reshape(dims)


def read_split(images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1).long()
    if len(images) != len(labels):
        raise DataError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels")
    if int(labels.max()) >= NUM_CLASSES:
        raise DataError(f"{labels_path}: label {int(labels.max())} is out of range 0..9")
    return images, labels


def load_mnist(root: Path | str | None = None, *, download: bool = True) -> MnistData:
    """Load MNIST from root (default: $MNIST_DATA_DIR, else ./data), downloading it if allowed."""
    root = Path(root) if root is not None else default_data_dir()
    files = find_mnist_files(root)
    if files is None and download:
        try:
            download_mnist(root)
        except Exception:  # noqa: BLE001 - any network or mirror failure means "not available"
            pass
        files = find_mnist_files(root)
    if files is None:
        raise DataNotFoundError(missing_data_message(root))
    train_images, train_labels = read_split(files["train_images"], files["train_labels"])
    test_images, test_labels = read_split(files["test_images"], files["test_labels"])
    return MnistData(train_images, train_labels, test_images, test_labels, files["train_images"].parent)


def random_mnist(train: int, test: int, seed: int = 0) -> MnistData:
    """MNIST-shaped random images and labels: for timing probes and tests, where the pixels do not matter."""
    g = torch.Generator().manual_seed(seed)
    return MnistData(
        train_images=torch.randint(0, 256, (train, IMAGE_SIZE, IMAGE_SIZE), dtype=torch.uint8, generator=g),
        train_labels=torch.randint(0, NUM_CLASSES, (train,), generator=g),
        test_images=torch.randint(0, 256, (test, IMAGE_SIZE, IMAGE_SIZE), dtype=torch.uint8, generator=g),
        test_labels=torch.randint(0, NUM_CLASSES, (test,), generator=g),
        source=Path("random"),
    )


def mnist_available(root: Path | str | None = None) -> bool:
    root = Path(root) if root is not None else default_data_dir()
    return find_mnist_files(root) is not None


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) or float in [0, 1] -> normalised float (N, 1, 28, 28).

    One new float tensor, worked on in place: the same values as the plain expression, without its
    temporaries (three float copies of the input at once: 564 MB for the training set).
    """
    if images.dtype == torch.uint8:
        x = images.float().div_(255.0).sub_(MNIST_MEAN)
    else:
        x = images.float() - MNIST_MEAN  # a float input is the caller's: never changed in place
    x = x.div_(MNIST_STD)
    return x.unsqueeze(1) if x.dim() == 3 else x


def background_value() -> float:
    """What a blank pixel becomes after normalisation."""
    return -MNIST_MEAN / MNIST_STD


def augment_batch(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random rotation, rescale and shift, drawn per sample, applied to the whole batch at once.

    x: (B, 1, 28, 28) normalised float on any device; returns the same shape, borders filled with
    the normalised background.
    """
    b = x.shape[0]
    rand = torch.rand(b, 4, generator=generator, device=x.device)
    angle = (rand[:, 0] * 2 - 1) * math.radians(MAX_ROTATION_DEG)
    scale = SCALE_RANGE[0] + rand[:, 1] * (SCALE_RANGE[1] - SCALE_RANGE[0])
    # affine_grid works in [-1, 1] coordinates: one pixel is 2/28.
    shift = (rand[:, 2:] * 2 - 1) * (MAX_SHIFT_PX * 2 / IMAGE_SIZE)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1).to(
        x.dtype
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    bg = background_value()
    return F.grid_sample(x - bg, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + bg
