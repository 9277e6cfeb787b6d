"""What digit-like means for one model: its calibration, fitted on MNIST training digits, stored beside it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..checkpoint import WEIGHTS_FILE, Checkpoint
from ..constants import NUM_CLASSES
from ..data import MnistData, load_mnist, normalize
from ..errors import DataError, MnistError
from ..features import features_and_logits
from ..preprocess import preprocess_canvas
from ..store import (
    CALIBRATION_FILE,
    READ_ERRORS,
    Stored,
    StoreKey,
    decode,
    digest_model,
    digest_weights_file,
    load_or_compute,
    read_bytes,
    read_metadata,
    write,
)

CALIBRATION_FORMAT = "mnist-studio-calibration"  # a mnist.store file beside the model (CALIBRATION_FILE)
CALIBRATION_VERSION = 1
OLD_CALIBRATION_ENTRY = "weights_sha256"  # metadata of files written before mnist.store: recomputed once
CALIBRATION_FIT_SAMPLES = 10_000  # MNIST training digits for the class means and the covariance
CALIBRATION_THRESHOLD_SAMPLES = 10_000  # other training digits for the distance threshold
REJECT_QUANTILE = 0.0025  # share of the threshold sample's digits beyond max_distance
CALIBRATION_SEED = 0  # which training digits are sampled
COVARIANCE_RIDGE = 1e-4  # added to the covariance's eigenvalues, relative to their mean: keeps it invertible
CALIBRATION_BATCH = 1000  # images per forward pass while calibrating


class CalibrationError(MnistError):
    """A calibration file is damaged or does not fit the model."""


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class Calibration:
    """What digit-like means for one model; FALLBACK has no feature statistics."""

    means: torch.Tensor | None  # (10, D) float32: class means of the whitened penultimate features
    whiten: torch.Tensor | None  # (D, D) float32: whitened = features @ whiten.T
    max_distance: float | None  # squared Mahalanobis distance beyond which a group is unlike any digit
    source: str  # how it was obtained, for people: "stored with the model", "computed from MNIST", ...
    details: dict = field(default_factory=dict)  # quantile, sample sizes, seed, weights' SHA-256

    @property
    def calibrated(self) -> bool:
        return self.means is not None


FALLBACK = Calibration(None, None, None, "uncalibrated: no stored calibration and no MNIST to compute one")


def distances(calibration: Calibration, feats: torch.Tensor) -> torch.Tensor | None:
    """(B, D) features -> (B,) squared Mahalanobis distance to the nearest class mean (None: FALLBACK)."""
    if not calibration.calibrated:
        return None
    if feats.shape[1] != calibration.whiten.shape[1]:
        raise CalibrationError(
            f"the calibration is for {calibration.whiten.shape[1]} features, the model has {feats.shape[1]}"
        )
    whitened = feats @ calibration.whiten.T  # (B, D)
    return torch.cdist(whitened, calibration.means).square().min(1).values


def preprocessed_digits(images: torch.Tensor) -> torch.Tensor:
    """MNIST uint8 (N, 28, 28) -> (N, 1, 28, 28) normalised, each through preprocess_canvas like a drawing."""
    pixels = [preprocess_canvas(image).pixels for image in images.numpy()]
    return normalize(torch.from_numpy(np.stack(pixels)))


def all_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Penultimate features of many images, CALIBRATION_BATCH at a time: (N, D)."""
    batches = range(0, len(x), CALIBRATION_BATCH)
    return torch.cat([features_and_logits(model, x[i : i + CALIBRATION_BATCH])[0] for i in batches])


def fit_gaussians(feats: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Class means and a shared covariance -> (whitened means (10, D), whitening matrix (D, D))."""
    f = feats.double()
    means = torch.stack([f[labels == c].mean(0) for c in range(NUM_CLASSES)])  # (10, D)
    centred = f - means[labels]
    cov = centred.T @ centred / len(f)
    eigvals, eigvecs = torch.linalg.eigh(cov)
    eigvals = eigvals.clamp(min=0) + COVARIANCE_RIDGE * float(eigvals.clamp(min=0).mean())
    whiten = (eigvecs / eigvals.sqrt()).T  # rows: eigenvectors scaled by 1/sqrt(eigenvalue)
    return (means @ whiten.T).float(), whiten.float()


def calibrate(
    model: nn.Module,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    *,
    quantile: float = REJECT_QUANTILE,
    fit_samples: int = CALIBRATION_FIT_SAMPLES,
    threshold_samples: int = CALIBRATION_THRESHOLD_SAMPLES,
    seed: int = CALIBRATION_SEED,
) -> Calibration:
    """Fit the model's feature statistics on training digits and set max_distance on other ones."""
    if len(train_images) < fit_samples + threshold_samples:
        raise CalibrationError(f"calibration needs {fit_samples + threshold_samples} digits, got {len(train_images)}")
    order = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(seed))
    fit, held = order[:fit_samples], order[fit_samples : fit_samples + threshold_samples]
    means, whiten = fit_gaussians(all_features(model, preprocessed_digits(train_images[fit])), train_labels[fit])
    partial = Calibration(means, whiten, None, "")
    held_distances = distances(partial, all_features(model, preprocessed_digits(train_images[held])))
    max_distance = float(torch.quantile(held_distances.double(), 1 - quantile))
    details = {"quantile": quantile, "fit_samples": fit_samples, "threshold_samples": threshold_samples, "seed": seed}
    return Calibration(means, whiten, max_distance, "computed from MNIST training digits", details)


def calibration_stored(calibration: Calibration, key: StoreKey) -> Stored:
    """What the file holds: tensors means and whiten; max_distance and details as info."""
    if not calibration.calibrated:
        raise CalibrationError("the fallback calibration has nothing to store")
    tensors = {"means": calibration.means, "whiten": calibration.whiten}
    return Stored(tensors, key, {"max_distance": calibration.max_distance, "details": calibration.details})


def calibration_from_stored(stored: Stored) -> Calibration:
    """The calibration in a stored file; CalibrationError naming what is wrong with it."""
    try:
        means, whiten = stored.tensors["means"].float(), stored.tensors["whiten"].float()
        max_distance, details = float(stored.info["max_distance"]), dict(stored.info.get("details", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise CalibrationError(f"not a valid calibration file ({exc})") from None
    d = whiten.shape[-1]
    if means.shape != (NUM_CLASSES, d) or whiten.shape != (d, d) or not math.isfinite(max_distance):
        raise CalibrationError("not a valid calibration file: tensors of the wrong shape or a bad threshold")
    if not (torch.isfinite(means).all() and torch.isfinite(whiten).all()):
        raise CalibrationError("not a valid calibration file: it holds NaN or infinite values")
    return Calibration(means, whiten, max_distance, "stored with the model", details)


def stored_calibration_or_none(stored: Stored) -> Calibration | None:
    """load_or_compute's reader: a damaged file is computed again."""
    try:
        return calibration_from_stored(stored)
    except CalibrationError:
        return None


def run_model_digest(run_dir: Path) -> str | None:
    """mnist.store's digest of the model saved in run_dir; None when it has no weights that read."""
    return digest_weights_file(Path(run_dir) / WEIGHTS_FILE)


def save_calibration(run_dir: Path | str, calibration: Calibration, model: nn.Module | None = None) -> Path:
    """Write run_dir/CALIBRATION_FILE (a mnist.store file) for `model` (default: the run's own model)."""
    digest = digest_model(model) if model is not None else run_model_digest(Path(run_dir))
    if digest is None:
        raise CalibrationError(f"{run_dir} holds no model to store a calibration for")
    path = Path(run_dir) / CALIBRATION_FILE
    write(path, calibration_stored(calibration, StoreKey(digest)), CALIBRATION_FORMAT, CALIBRATION_VERSION)
    return path


def load_calibration(run_dir: Path | str, model: nn.Module | None = None) -> Calibration | None:
    """The calibration stored in a run folder for `model` (default: the run's own model); None when there
    is none or it was made for other weights. CalibrationError when the file is damaged."""
    path = Path(run_dir) / CALIBRATION_FILE
    try:
        data = read_bytes(path)
        if data is None or OLD_CALIBRATION_ENTRY in read_metadata(data):
            return None  # none, or written before mnist.store: stale
        stored = decode(data, CALIBRATION_FORMAT, CALIBRATION_VERSION)
    except READ_ERRORS as exc:
        raise CalibrationError(f"{path}: not a valid calibration file ({exc})") from None
    digest = digest_model(model) if model is not None else run_model_digest(Path(run_dir))
    if digest is None or not StoreKey(digest).fits(stored.key):
        return None  # stale: made for other weights
    try:
        return calibration_from_stored(stored)
    except CalibrationError as exc:
        raise CalibrationError(f"{path}: {exc}") from None


class _NoMnist(Exception):
    """No MNIST on disk to calibrate with: FALLBACK."""


def calibration_for(checkpoint: Checkpoint, data: MnistData | None = None) -> Calibration:
    """A loaded checkpoint's calibration: stored in its run folder and matching its weights; else computed
    from MNIST (`data`, or found on disk, never downloaded; about 20 s a network) and stored there (kept in
    memory only when the folder cannot be written, or for a model without a folder); else FALLBACK."""
    folder = Path(checkpoint.path)
    path = folder / CALIBRATION_FILE if folder.is_dir() else None

    def compute() -> Calibration:
        try:
            train = data or load_mnist(download=False)
        except DataError:
            raise _NoMnist from None
        return calibrate(checkpoint.model, train.train_images, train.train_labels)

    key = StoreKey(digest_model(checkpoint.model))
    try:
        return load_or_compute(
            path,
            CALIBRATION_FORMAT,
            CALIBRATION_VERSION,
            key,
            compute,
            to_stored=lambda calibration: calibration_stored(calibration, key),
            from_stored=stored_calibration_or_none,
        )
    except _NoMnist:
        return FALLBACK
