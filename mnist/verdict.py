"""Verdicts: what a drawing is. One digit, an unsure digit, several digits, or not a digit (and why).

Every drawing gets exactly one verdict, in the app and in `python -m mnist predict` alike:

- ``"digit"``: one digit, read with confidence (top probability >= CONFIDENT, 60%, the Sketch page's bar);
- ``"unsure"``: one digit, under CONFIDENT; `Reading.top_two` holds the model's first and second choice;
- ``"several_digits"``: two or more digits, read left to right in `Reading.digits`; each group has its
  own verdict, so a digit the model is unsure of is marked (`GroupReading.verdict == "unsure"`);
- ``"not_a_digit"``: `Reading.reason` says why, one of `REASONS`: ``"empty"`` (nothing drawn),
  ``"too_little_ink"``, ``"dot"``, ``"line"``, ``"blob"``, ``"scribble"``, ``"unlike_any_digit"``.

API. All pure (no state, no I/O but `calibration_for`, `load_calibration`, `save_calibration`)::

    calibration = calibration_for(checkpoint)     # once per model: stored, computed from MNIST, or FALLBACK
    reading = read_drawing(model, array, calibration)   # per stroke: a few ms on a CPU
    reading.verdict       # "digit" | "unsure" | "several_digits" | "not_a_digit"
    reading.digit         # int when one group was read (its best guess when unsure), else None
    reading.digits        # tuple of ints left to right: (7,), (1, 2, 3), () when not a digit
    reading.confidence    # probability of that reading (product over groups); None for not_a_digit
    reading.probabilities # the ten probabilities when the drawing is one group, else None
    reading.reason        # not_a_digit only: a key of REASONS (REASONS[reason] is its text)
    reading.top_two       # unsure only: (Choice(digit, probability), Choice(...)): first and second choice
    reading.message       # one line for people: "7 (98.1%)", "unsure: 4 (55.0%) or 9 (40.2%)", ...
    reading.groups        # GroupReading per group of ink, left to right:
        group.box         #   Box(left, top, right, bottom) in canvas pixels (right, bottom exclusive)
        group.pixels      #   (28, 28) float32 in [0, 1]: what the model saw (CanvasImage(group.pixels)
                          #   gives predict.saliency_map its input)
        group.verdict, group.digit, group.confidence, group.probabilities, group.reason
        group.distance    #   the model's evidence (below); group.ink: InkStats, the shape statistics
    reading.to_dict()     # JSON-ready; `python -m mnist predict --json` prints it with "path"

How a drawing is read:

1. **Groups.** The ink (`preprocess.ink_map`, normalised and thresholded like `preprocess_canvas`) is
   reduced to a mask of at most SEGMENT_SIDE cells a side and split into 8-connected components (a
   union-find over row runs; no scipy). Components with under SPECK_SHARE of the largest one's ink are
   specks and are dropped. Pieces that `belong_together` (x-extents overlapping by MERGE_OVERLAP of the
   narrower, as in a crossed 7 or a two-stroke 4; stacked pieces, like a 5's flag above its body; or
   a small piece right beside a big one) are merged, repeatedly.
2. **Each group** is cropped (other groups' ink masked out), padded and read through
   `preprocess_canvas`, like a single drawing: a one-group drawing gives exactly `predict_canvas`'s
   pixels and probabilities. All groups go through the model in one batch.
   **Touching digits** ("17" written fast) are one component. A group at least SPLIT_MIN_ASPECT as wide
   as tall, unless read whole as a sure and typical digit (`worth_cutting`), is also cut in two along
   valleys (`valley`: the least inked top-to-bottom path around a column; columns every SPLIT_STEP of
   its width), each distinct cut's pieces read in a second batch; the group becomes two digits when
   both pieces of a cut are confident digits (SPLIT_CONFIDENT), nearly as tall as the group
   (SPLIT_MIN_HEIGHT), and the cut beats the whole (`best_reading`): each piece more typical than the
   whole for the model, and surer, unless the whole is atypical. A wide 0 stays a 0.
3. **Ink rules** (`InkStats`, measured on the group's 28x28 image and its box on the canvas;
   thresholds chosen on MNIST's training set): too little ink (the group spans under MIN_EXTENT of
   the canvas' longest side); a line (elongated, LINE_ELONGATION, and tilted LINE_MIN_TILT or more from
   vertical: a steeper stroke is a 1).
4. **The model's own evidence**: the squared Mahalanobis distance of the model's penultimate features
   (the input of its last Linear layer) to the nearest class mean, with one covariance shared by the
   classes (Lee et al., 2018). Beyond `Calibration.max_distance` a group is unlike any digit ("a
   scribble" when its ink closes BUSY_HOLES or more loops). Logits alone miss these: a star reads "4"
   at 85%, but its features are far from every digit's.
5. **Suspect ink**, where ink and model decide together: a filled patch (`InkStats.filled`: a thick
   core, no loop, nearly convex; a dot when small on the canvas, else a blob) or SCRIBBLE_HOLES or more
   loops (a scribble) is rejected unless the model is confident and within SUSPECT_DISTANCE_SHARE of
   max_distance. Very bold digits look filled, and the model still knows them.
6. **Confidence**: a group not rejected is a digit at top probability >= CONFIDENT, else unsure.

The drawing's verdict: no ink -> not_a_digit ("empty"); one group -> its verdict; several -> not_a_digit
if any group is not a digit (with the first such group's reason), else several_digits.

Calibration, per model: class means and a whitening matrix of the penultimate features fitted on
CALIBRATION_FIT_SAMPLES MNIST training digits, and `max_distance`, the (1 - REJECT_QUANTILE) quantile
of the distances of CALIBRATION_THRESHOLD_SAMPLES other training digits (each digit through
`preprocess_canvas` like a drawing). The test set is never used, so the share of test digits
rejected (bench/verdicts.py) is a measurement, not a fit. The bundled model's calibration is stored
beside it (CALIBRATION_FILE, a mnist.store file keyed by the model's weights digest): rebuild it with
``python -m mnist.verdict calibrate [RUN_DIR]`` after retraining. `calibration_for(checkpoint)` uses a
stored calibration that matches the weights; else computes one when MNIST is on disk (20,000 forward
passes: about 20 s for cnn-bn on 2 cores, 50 s for an ensemble of three) and stores it in the run
folder (mnist.store.load_or_compute; `save_calibration` stores one anywhere); else returns FALLBACK,
without feature statistics: suspect ink is then rejected on the ink alone and a group whose top
probability is under FALLBACK_MIN_CONFIDENCE is unlike any digit. A stored calibration is looked up by the
model's digest only (no data digest): it must serve where MNIST is not on disk.

An ensemble (mnist.ensemble): its probabilities are the ensemble's and its features are all its members'
penultimate features side by side, (B, D_1 + ... + D_K): one Gaussian per class over the joint vector,
with one shared covariance, fitted like a single model's. The members' feature spaces differ (even two
seeds of one architecture), so they cannot be averaged; side by side, every member has its say, and the
covariance weighs how much they agree. A single member's distance is noisier: a 1 with a wide base sat at
0.92-1.09 of each member's own threshold. A stored calibration belongs to the ensemble's own weights.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from .checkpoint import WEIGHTS_FILE, Checkpoint
from .constants import NUM_CLASSES
from .data import MnistData, load_mnist, normalize
from .errors import DataError, MnistError
from .features import features_and_logits, member_features_and_logits, split_model  # noqa: F401 - re-exported
from .preprocess import INK_THRESHOLD, MIN_INK_CONTRAST, CanvasImage, ink_map, preprocess_canvas
from .store import (
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

Verdict = Literal["digit", "unsure", "not_a_digit", "several_digits"]
GroupVerdict = Literal["digit", "unsure", "not_a_digit"]
Reason = Literal["empty", "too_little_ink", "dot", "line", "blob", "scribble", "unlike_any_digit"]
VERDICTS: tuple[Verdict, ...] = ("digit", "unsure", "not_a_digit", "several_digits")
REASONS: dict[Reason, str] = {
    "empty": "nothing drawn",
    "too_little_ink": "too little ink",
    "dot": "a dot",
    "line": "a line",
    "blob": "a blob",
    "scribble": "a scribble",
    "unlike_any_digit": "a shape unlike any digit",
}

CONFIDENT = 0.60  # top probability from which a digit is read as sure (the Sketch page's 60%)
# Groups
SEGMENT_SIDE = 96  # cells: the ink mask is reduced (any-pooling) to at most this many cells a side
SPECK_SHARE = 0.02  # a component with less ink than this share of the largest component's is a speck
MERGE_OVERLAP = 0.5  # x-extents overlapping by this share of the narrower component: the same digit
STACKED_OVERLAP = 0.5  # pieces overlapping in x and in y by less than this share of the shorter: stacked
MINOR_HEIGHT = 0.5  # a piece under this share of its neighbour's height, and close to it, is part of it
MINOR_GAP = 0.15  # how close: the gaps between their boxes, as a share of the neighbour's height
CROP_PAD = 2  # pixels of blank border around a group's crop, so preprocess_canvas sees a background
# Ink rules, on the canvas and on the group's 28x28 image (thresholds: see InkStats)
MIN_EXTENT = 0.03  # group's longest side / canvas' longest side below this: too little ink
DOT_MAX_EXTENT = 0.15  # a filled group up to this share of the canvas is a dot, above it a blob
FILLED_DEPTH = 4  # erosions (3x3) of the 28x28 ink that still leave ink: a solid core, not a stroke
FILLED_SOLIDITY = 0.85  # and ink covering this share of its convex hull: a patch, not a bold digit's strokes
LINE_ELONGATION = 4.0  # ratio of the ink's major to minor standard deviation from which it is a stroke
LINE_MIN_TILT = 55.0  # degrees from vertical from which an elongated stroke is a line, not a 1
SCRIBBLE_HOLES = 4  # enclosed loops from which a group looks like a scribble (8 has 2)
BUSY_HOLES = 3  # a group too far from every digit is called a scribble from this many loops
SUSPECT_DISTANCE_SHARE = 0.5  # a dot, blob or scribble look-alike is kept only this close to a digit
STATS_INK_LEVEL = 0.5  # 28x28 pixels at least this bright count as ink for the shape statistics
# Touching digits (recognition-based segmentation of one group of ink into two digits)
SPLIT_MIN_ASPECT = 0.75  # a group at least this wide for its height may be two digits that touch
SPLIT_MIN_WIDTH_PX = 8  # narrower groups are never cut: no room for two digits
SPLIT_MARGIN = 0.15  # cuts are tried between this share of the group's width from each side
SPLIT_STEP = 0.04  # a cut around every this share of the width (cuts that end up the same are read once)
SPLIT_REACH = 0.1  # a cut strays at most this share of the width from its column
SPLIT_CONFIDENT = 0.8  # each half must be read at least this sure, and typical (see model_reason)
UNCUT_CONFIDENT = 0.99  # a group read whole this surely, and typical (SUSPECT_DISTANCE_SHARE), is not cut
VALLEY_STEP_COST = 0.05  # ink cost of every pixel of a cut: the shortest of equally blank paths
SPLIT_MIN_HEIGHT = 0.8  # and span at least this share of the group's height
FRAGMENT_SHARE = 0.15  # after a cut, ink pieces under this share of the half's largest are dropped
# Calibration
CALIBRATION_FORMAT = "mnist-studio-calibration"  # a mnist.store file beside the model (CALIBRATION_FILE)
CALIBRATION_VERSION = 1
OLD_CALIBRATION_ENTRY = "weights_sha256"  # metadata of files written before mnist.store: recomputed once
CALIBRATION_FIT_SAMPLES = 10_000  # MNIST training digits for the class means and the covariance
CALIBRATION_THRESHOLD_SAMPLES = 10_000  # other training digits for the distance threshold
REJECT_QUANTILE = 0.0025  # share of the threshold sample's digits beyond max_distance
CALIBRATION_SEED = 0  # which training digits are sampled
COVARIANCE_RIDGE = 1e-4  # added to the covariance's eigenvalues, relative to their mean: keeps it invertible
FALLBACK_MIN_CONFIDENCE = 0.35  # uncalibrated: a top probability below this is unlike any digit
CALIBRATION_BATCH = 1000  # images per forward pass while calibrating


class CalibrationError(MnistError):
    """A calibration file is damaged or does not fit the model."""


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class Box:
    """A rectangle in canvas pixels: columns left..right-1, rows top..bottom-1."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def to_list(self) -> list[int]:
        return [self.left, self.top, self.right, self.bottom]


@dataclass(frozen=True)
class InkStats:
    """Shape statistics of one group: its box on the canvas and its 28x28 image (ink = pixels >= 0.5).

    On MNIST's 60,000 training digits, each through preprocess_canvas: depth <= 4 (39 digits at 4);
    3 pass the line rule; 4 are `filled` and 123 (0.2%) close SCRIBBLE_HOLES or more loops, so filled
    and many-looped ink is only suspect: the model's evidence decides.
    """

    extent: float  # the group's longest side / the canvas' longest side
    elongation: float  # major / minor standard deviation of the 28x28 ink (1 = round)
    tilt: float  # degrees between the major axis and the vertical, 0..90
    depth: int  # 3x3 erosions of the 28x28 ink (>= STATS_INK_LEVEL) that still leave ink: 0 for 1-px strokes
    holes: int  # background regions enclosed by the 28x28 ink: 0 has 1, 8 has 2
    solidity: float  # the 28x28 ink's area / the area of its convex hull (1 = convex and filled)

    @property
    def filled(self) -> bool:
        """A solid patch of ink (a tap, a blob), not strokes: a thick core, no loops, nearly convex."""
        return self.depth >= FILLED_DEPTH and self.holes == 0 and self.solidity >= FILLED_SOLIDITY


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class GroupReading:
    """One digit-sized group of ink and what it reads as."""

    box: Box  # the group's ink in canvas pixels
    pixels: np.ndarray  # (28, 28) float32 in [0, 1]: what the model saw (before normalisation)
    verdict: GroupVerdict
    digit: int | None  # the model's top digit; None when not_a_digit
    confidence: float  # probability of the model's top digit
    probabilities: tuple[float, ...]  # the model's ten probabilities, whatever the verdict
    distance: float | None  # the model's evidence: squared Mahalanobis distance; None uncalibrated
    reason: Reason | None  # why not_a_digit; None otherwise
    ink: InkStats

    @property
    def runner_up(self) -> tuple[int, float]:
        """The model's second choice: (digit, probability)."""
        order = np.argsort(self.probabilities)
        return int(order[-2]), float(self.probabilities[order[-2]])


@dataclass(frozen=True)
class Choice:
    """One of the model's choices for a digit."""

    digit: int
    probability: float


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class Reading:
    """The drawing's one verdict and what backs it.

    digit: the digit read when the drawing is one digit (its best guess when unsure), else None.
    digits: the digits read left to right; (digit,) for one digit; () for not_a_digit. In several_digits,
        a group may be unsure (its verdict says so): its digit is its best guess.
    confidence: the probability of that reading (a product over groups); None for not_a_digit.
    probabilities: the ten probabilities when the drawing is one group, else None.
    top_two: for unsure, the model's first and second choice.
    """

    verdict: Verdict
    digit: int | None
    digits: tuple[int, ...]
    confidence: float | None
    probabilities: tuple[float, ...] | None
    reason: Reason | None
    groups: tuple[GroupReading, ...]
    top_two: tuple[Choice, Choice] | None = None

    @property
    def empty(self) -> bool:
        return self.reason == "empty"

    @property
    def message(self) -> str:
        """One line for people: "7 (98.1%)", "unsure: 4 (55.0%) or 9 (40.2%)", "not a digit: a dot",
        "123 (91.0%)"."""
        if self.verdict == "not_a_digit":
            return f"not a digit: {REASONS[self.reason]}"
        if self.verdict == "unsure":
            best, second = self.top_two
            return f"unsure: {best.digit} ({best.probability:.1%}) or {second.digit} ({second.probability:.1%})"
        return f"{digit_text(self.digits)} ({self.confidence:.1%})"

    def to_dict(self) -> dict:
        """JSON-ready: verdict, digit, digits, confidence, probabilities, reason, top_two, groups."""
        return {
            "verdict": self.verdict,
            "digit": self.digit,
            "digits": list(self.digits),
            "confidence": self.confidence,
            "probabilities": None if self.probabilities is None else list(self.probabilities),
            "reason": self.reason,
            "message": self.message,
            "top_two": None
            if self.top_two is None
            else [{"digit": c.digit, "probability": c.probability} for c in self.top_two],
            "groups": [
                {
                    "box": g.box.to_list(),
                    "verdict": g.verdict,
                    "digit": g.digit,
                    "confidence": g.confidence,
                    "reason": g.reason,
                }
                for g in self.groups
            ],
        }


def digit_text(digits: tuple[int, ...]) -> str:
    return "".join(str(d) for d in digits)


# ---------------------------------------------------------------------------------------------
# Calibration


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


# ---------------------------------------------------------------------------------------------
# Connected components: a union-find over the runs of True in each row


def find_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, starts, ends) of every horizontal run of True, ends exclusive, sorted by row then start."""
    h, w = mask.shape
    padded = np.zeros((h, w + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    steps = np.diff(padded, axis=1)
    rows, starts = np.nonzero(steps == 1)
    _, ends = np.nonzero(steps == -1)
    return rows, starts, ends


def touching_runs(rows: np.ndarray, starts: np.ndarray, ends: np.ndarray, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, k) of runs where k is in the row below i and overlaps it, or touches it diagonally
    when reach = 1. The runs below that overlap run i are contiguous: found by two binary searches."""
    span = int(ends.max()) + 2  # row * span + column orders runs by row, then column
    below = (rows + 1) * span
    first = np.searchsorted(rows * span + ends, below + starts - reach, side="right")
    stop = np.searchsorted(rows * span + starts, below + ends + reach, side="left")
    counts = np.maximum(stop - first, 0)
    upper = np.repeat(np.arange(len(rows)), counts)
    lower = np.repeat(first, counts) + np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return upper, lower


def label_runs(rows: np.ndarray, starts: np.ndarray, ends: np.ndarray, *, diagonal: bool) -> np.ndarray:
    """Component index (0..K-1) of every run: runs in adjacent rows that overlap (or touch diagonally,
    with `diagonal`) are one component. A union-find over the touching pairs."""
    n = len(rows)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, k in zip(*(a.tolist() for a in touching_runs(rows, starts, ends, 1 if diagonal else 0)), strict=True):
        root_i, root_k = find(i), find(k)
        if root_i != root_k:
            parent[root_k] = root_i
    roots = np.array([find(i) for i in range(n)])
    return np.unique(roots, return_inverse=True)[1]


def count_holes(mask: np.ndarray) -> int:
    """Background regions (4-connected) not reaching the border: the loops the ink closes."""
    rows, starts, ends = find_runs(~mask)
    if len(rows) == 0:
        return 0
    labels = label_runs(rows, starts, ends, diagonal=False)
    h, w = mask.shape
    on_border = (rows == 0) | (rows == h - 1) | (starts == 0) | (ends == w)
    return len(set(labels.tolist()) - set(labels[on_border].tolist()))


# ---------------------------------------------------------------------------------------------
# Groups of ink


@dataclass(frozen=True)
class Segments:
    """The drawing's ink split into groups; cells are SEGMENT_SIDE-grid squares of `factor` pixels."""

    ink: np.ndarray  # (H, W) float32 in [0, 1], normalised and thresholded like preprocess_canvas
    factor: int  # pixels per cell side
    cell_group: np.ndarray  # (h, w) int: group index of each cell, -1 for background and specks
    boxes: tuple[Box, ...]  # each group's cells' box, in pixels (clipped to the canvas), left to right


def normalized_ink(array) -> np.ndarray | None:
    """preprocess_canvas's ink: strongest stroke 1, faint noise 0; None when the drawing is blank."""
    ink = ink_map(array)
    low, high = float(ink.min()), float(ink.max())
    if high - low < MIN_INK_CONTRAST:
        return None
    ink = (ink - low) / (high - low)
    ink[ink < INK_THRESHOLD] = 0.0
    return ink


def cell_mass(ink: np.ndarray, factor: int) -> np.ndarray:
    """(H, W) -> (ceil(H/f), ceil(W/f)) sums of ink per f x f cell (f*f strided adds: faster than a
    reshape-and-sum over two axes, which numpy runs as a slow non-contiguous reduction)."""
    h, w = ink.shape
    padded = np.zeros((-(-h // factor) * factor, -(-w // factor) * factor), dtype=np.float32)
    padded[:h, :w] = ink
    mass = np.zeros((padded.shape[0] // factor, padded.shape[1] // factor), dtype=np.float32)
    for dy in range(factor):
        for dx in range(factor):
            mass += padded[dy::factor, dx::factor]
    return mass


def belong_together(a: Box, b: Box) -> bool:
    """Two pieces of ink are one digit when their x-extents overlap by MERGE_OVERLAP of the narrower one
    (a crossed 7, a two-stroke 4); when they overlap in x at all and are stacked, overlapping in y by
    under STACKED_OVERLAP of the shorter one (a 5's flag above its body); or when one is under
    MINOR_HEIGHT of the other's height and both gaps between their boxes are within MINOR_GAP of the
    taller one's height (a 5's flag beside its top, a 9's broken-off tail). Digits side by side in a
    number overlap a lot in y and not in x, so none of these holds for them."""
    x_overlap = min(a.right, b.right) - max(a.left, b.left)  # negative: the gap between them
    y_overlap = min(a.bottom, b.bottom) - max(a.top, b.top)
    if x_overlap >= MERGE_OVERLAP * min(a.width, b.width):
        return True
    if x_overlap > 0 and y_overlap < STACKED_OVERLAP * min(a.height, b.height):
        return True
    major, minor = (a, b) if a.height >= b.height else (b, a)
    near = max(-x_overlap, -y_overlap) <= MINOR_GAP * major.height
    return minor.height < MINOR_HEIGHT * major.height and near


def union_box(a: Box, b: Box) -> Box:
    return Box(min(a.left, b.left), min(a.top, b.top), max(a.right, b.right), max(a.bottom, b.bottom))


def merge_pieces(boxes: list[Box]) -> list[list[int]]:
    """Indices of the pieces in each group, merging pairs that belong together until none do; left to right."""
    groups = [(box, [i]) for i, box in enumerate(boxes)]
    merged = True
    while merged:
        merged = False
        for a in range(len(groups)):
            b = next((b for b in range(a + 1, len(groups)) if belong_together(groups[a][0], groups[b][0])), None)
            if b is not None:
                (box_b, members_b) = groups.pop(b)
                groups[a] = (union_box(groups[a][0], box_b), groups[a][1] + members_b)
                merged = True
                break
    return [members for _, members in sorted(groups, key=lambda g: g[0].left)]


def split_groups(ink: np.ndarray) -> Segments:
    """Connected components of the ink, specks dropped, pieces that belong together merged, left to right."""
    h, w = ink.shape
    factor = max(1, math.ceil(max(h, w) / SEGMENT_SIDE))
    mass = cell_mass(ink, factor)
    rows, starts, ends = find_runs(mass > 0)
    labels = label_runs(rows, starts, ends, diagonal=True)
    count = int(labels.max()) + 1 if len(labels) else 0
    # Per component: ink mass and x-span (cells), from its runs.
    cumulative = np.concatenate([np.zeros((mass.shape[0], 1), np.float32), np.cumsum(mass, axis=1)], axis=1)
    run_mass = cumulative[rows, ends] - cumulative[rows, starts]
    comp_mass = np.bincount(labels, weights=run_mass, minlength=count)
    left, top = np.full(count, np.iinfo(np.int64).max), np.full(count, np.iinfo(np.int64).max)
    right, bottom = np.zeros(count, dtype=np.int64), np.zeros(count, dtype=np.int64)
    np.minimum.at(left, labels, starts)
    np.maximum.at(right, labels, ends)
    np.minimum.at(top, labels, rows)
    np.maximum.at(bottom, labels, rows + 1)
    kept = [c for c in range(count) if comp_mass[c] >= SPECK_SHARE * comp_mass.max()]
    pieces = [Box(int(left[c]), int(top[c]), int(right[c]), int(bottom[c])) for c in kept]  # in cells
    groups = [[kept[i] for i in members] for members in merge_pieces(pieces)]
    comp_group = np.full(count, -1)
    for g, comps in enumerate(groups):
        comp_group[comps] = g
    run_group = comp_group[labels]  # group of every run, -1 for specks
    lengths = ends - starts
    within = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # 0, 1, .. per run
    cell_group = np.full(mass.shape, -1)
    cell_group[np.repeat(rows, lengths), np.repeat(starts, lengths) + within] = np.repeat(run_group, lengths)
    boxes = []
    for g in range(len(groups)):
        own = run_group == g
        top, bottom = int(rows[own].min()), int(rows[own].max()) + 1
        lo, hi = int(starts[own].min()), int(ends[own].max())
        boxes.append(Box(lo * factor, top * factor, min(hi * factor, w), min(bottom * factor, h)))
    return Segments(ink, factor, cell_group, tuple(boxes))


def group_crop(segments: Segments, g: int) -> tuple[Box, np.ndarray]:
    """Group g's ink alone (other groups masked out), cropped to its exact box, with a blank border."""
    box = segments.boxes[g]  # its left and top are on cell boundaries
    f = segments.factor
    cells = segments.cell_group[box.top // f : -(-box.bottom // f), box.left // f : -(-box.right // f)]
    owner = np.repeat(np.repeat(cells, f, axis=0), f, axis=1)[: box.height, : box.width]  # group of each pixel
    crop = segments.ink[box.top : box.bottom, box.left : box.right] * ((owner == g) | (owner < 0))
    mine = crop * (owner == g)  # the exact box: the group's own ink, not specks at its edge
    ys, xs = np.nonzero(mine.any(axis=1))[0], np.nonzero(mine.any(axis=0))[0]
    tight = Box(box.left + int(xs[0]), box.top + int(ys[0]), box.left + int(xs[-1]) + 1, box.top + int(ys[-1]) + 1)
    crop = crop[ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1]
    return tight, np.pad(crop, CROP_PAD)


# ---------------------------------------------------------------------------------------------
# Ink rules


def erosion_depth(mask: np.ndarray) -> int:
    """How many 3x3 erosions leave some ink: about half the width of the thickest part, in pixels."""
    depth = 0
    current = mask
    while True:
        p = np.pad(current, 1)
        vertical = p[:-2] & p[1:-1] & p[2:]
        current = vertical[:, :-2] & vertical[:, 1:-1] & vertical[:, 2:]
        if not current.any():
            return depth
        depth += 1


def solidity(mask: np.ndarray) -> float:
    """Ink pixels / the area of the convex hull of their squares (monotone chain over each row's ends)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return 0.0
    first = mask[rows].argmax(axis=1)
    last = mask.shape[1] - 1 - mask[rows, ::-1].argmax(axis=1)
    corners = sorted(
        {(x, y) for r, a, b in zip(rows.tolist(), first.tolist(), last.tolist(), strict=True)
         for x in (a - 0.5, b + 0.5) for y in (r - 0.5, r + 0.5)}
    )  # fmt: skip
    hull = half_hull(corners)[:-1] + half_hull(corners[::-1])[:-1]
    xs, ys = np.array([p[0] for p in hull]), np.array([p[1] for p in hull])
    area = 0.5 * abs(float(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))))  # shoelace
    return float(mask.sum()) / area


def half_hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """One side of Andrew's monotone chain: the points, sorted, that turn left."""
    chain: list[tuple[float, float]] = []
    for p in points:
        while len(chain) >= 2:
            (ox, oy), (ax, ay) = chain[-2], chain[-1]
            if (ax - ox) * (p[1] - oy) - (ay - oy) * (p[0] - ox) > 0:
                break
            chain.pop()
        chain.append(p)
    return chain


def axis_shape(pixels: np.ndarray) -> tuple[float, float]:
    """(elongation, tilt in degrees from vertical) from the ink's second moments."""
    total = float(pixels.sum())
    ys, xs = np.mgrid[0 : pixels.shape[0], 0 : pixels.shape[1]]
    cy, cx = float((pixels * ys).sum()) / total, float((pixels * xs).sum()) / total
    dy, dx = ys - cy, xs - cx
    syy, sxx, sxy = (float((pixels * a * b).sum()) / total for a, b in ((dy, dy), (dx, dx), (dx, dy)))
    half_trace, det = (syy + sxx) / 2, syy * sxx - sxy * sxy
    spread = math.sqrt(max(half_trace * half_trace - det, 0.0))
    major, minor = half_trace + spread, max(half_trace - spread, 1e-6)
    tilt = abs(math.degrees(0.5 * math.atan2(2 * sxy, syy - sxx)))  # major axis vs the y axis
    return math.sqrt(major / minor), tilt


def measure_ink(pixels: np.ndarray, box: Box, canvas_shape: tuple[int, int]) -> InkStats:
    mask = pixels >= STATS_INK_LEVEL
    elongation, tilt = axis_shape(pixels)
    extent = max(box.width, box.height) / max(canvas_shape)
    return InkStats(extent, elongation, tilt, erosion_depth(mask), count_holes(mask), solidity(mask))


def ink_reason(ink: InkStats) -> Reason | None:
    """The ink rules that need no model: why a group cannot be a digit, or None."""
    if ink.extent < MIN_EXTENT:
        return "too_little_ink"
    if ink.elongation >= LINE_ELONGATION and ink.tilt >= LINE_MIN_TILT:
        return "line"
    return None


def suspect_reason(ink: InkStats) -> Reason | None:
    """Ink that looks like a dot, a blob or a scribble, but a very bold digit or a looped one can too."""
    if ink.filled:
        return "dot" if ink.extent <= DOT_MAX_EXTENT else "blob"
    if ink.holes >= SCRIBBLE_HOLES:
        return "scribble"
    return None


def model_reason(calibration: Calibration, distance: float | None, confidence: float, ink: InkStats) -> Reason | None:
    """The model's evidence, with the ink: suspect ink that the model does not find typical (under
    SUSPECT_DISTANCE_SHARE of max_distance and confident), or anything too far from every digit.
    Uncalibrated (FALLBACK), suspect ink is rejected and "too far" becomes "too unsure"."""
    suspect = suspect_reason(ink)
    if distance is None:
        if suspect:
            return suspect
        unlike = confidence < FALLBACK_MIN_CONFIDENCE
    else:
        typical = distance <= SUSPECT_DISTANCE_SHARE * calibration.max_distance and confidence >= CONFIDENT
        if suspect and not typical:
            return suspect
        unlike = distance > calibration.max_distance
    if not unlike:
        return None
    return "scribble" if ink.holes >= BUSY_HOLES else "unlike_any_digit"


# ---------------------------------------------------------------------------------------------
# Reading


def read_group(
    box: Box, image: CanvasImage, probs: tuple[float, ...], distance: float | None, calibration: Calibration, shape
) -> GroupReading:
    ink = measure_ink(image.pixels, box, shape)
    top = max(range(NUM_CLASSES), key=probs.__getitem__)
    confidence = probs[top]
    reason = ink_reason(ink) or model_reason(calibration, distance, confidence, ink)
    verdict: GroupVerdict = "not_a_digit" if reason else ("digit" if confidence >= CONFIDENT else "unsure")
    return GroupReading(
        box,
        image.pixels,
        verdict,
        None if reason else top,
        confidence,
        probs,
        distance,
        reason,
        ink,
    )


def read_drawing(model: nn.Module, array, calibration: Calibration = FALLBACK) -> Reading:
    """A drawing (any array preprocess_canvas takes) -> its Reading. The model must be in eval mode.

    Raises CanvasError (a ValueError) for arrays that are not images, MnistError for a broken model.
    """
    ink = normalized_ink(array)
    if ink is None:
        return Reading("not_a_digit", None, (), None, None, "empty", ())
    segments = split_groups(ink)
    crops = [group_crop(segments, g) for g in range(len(segments.boxes))]
    wholes = read_pieces(model, crops, calibration, ink.shape)
    cuts = [  # per group: (left, right) pieces per distinct cut tried
        cut_candidates(box, crop) if worth_cutting(whole, calibration) else []
        for (box, crop), whole in zip(crops, wholes, strict=True)
    ]
    pieces = [piece for group_cuts in cuts for pair in group_cuts for piece in pair]
    readings = read_pieces(model, pieces, calibration, ink.shape) if pieces else []
    groups: list[GroupReading] = []
    k = 0
    for whole, group_cuts in zip(wholes, cuts, strict=True):
        pairs = [(readings[k + 2 * i], readings[k + 2 * i + 1]) for i in range(len(group_cuts))]
        k += 2 * len(group_cuts)
        groups += best_reading(whole, pairs, calibration)
    return combine(tuple(groups))


def score_batch(
    model: nn.Module, pixels: list[np.ndarray], calibration: Calibration
) -> tuple[list[tuple[float, ...]], list[float | None]]:
    """One batch of 28x28 inputs through the model: each one's ten probabilities and its distance to the
    calibration's digits (None without a calibration). Raises MnistError for NaN probabilities (broken weights)."""
    x = normalize(torch.from_numpy(np.stack(pixels)))
    feats, logits = features_and_logits(model, x)
    probs = logits.softmax(1)
    if not torch.isfinite(probs).all():
        raise MnistError("the model produced NaN probabilities; its weights are broken")
    dist = distances(calibration, feats)
    rows = [tuple(row) for row in probs.tolist()]
    return rows, [None] * len(rows) if dist is None else [float(d) for d in dist]


def read_pieces(
    model: nn.Module, pieces: list[tuple[Box, np.ndarray]], calibration: Calibration, shape: tuple[int, int]
) -> list[GroupReading]:
    """Each piece of ink (its box, its padded crop) read like a drawing of its own, all in one batch."""
    images = [preprocess_canvas(crop) for _, crop in pieces]
    rows, dists = score_batch(model, [image.pixels for image in images], calibration)
    return [
        read_group(box, image, rows[i], dists[i], calibration, shape)
        for i, ((box, _), image) in enumerate(zip(pieces, images, strict=True))
    ]


# ---------------------------------------------------------------------------------------------
# Touching digits


def worth_cutting(whole: GroupReading, calibration: Calibration) -> bool:
    """Whether a group might be two touching digits: not when read whole as a sure, typical digit (most
    single digits; this also saves the cuts' forward pass)."""
    typical = whole.distance is None or whole.distance <= SUSPECT_DISTANCE_SHARE * calibration.max_distance
    return not (whole.verdict == "digit" and whole.confidence >= UNCUT_CONFIDENT and typical)


def cut_candidates(box: Box, crop: np.ndarray) -> list[tuple[tuple[Box, np.ndarray], tuple[Box, np.ndarray]]]:
    """A group wide enough to be two touching digits: (left piece, right piece) for each distinct cut, each
    piece as group_crop gives it (its canvas box, its padded crop). Narrower groups: none."""
    if box.width < SPLIT_MIN_ASPECT * box.height or box.width < SPLIT_MIN_WIDTH_PX:
        return []
    ink = crop[CROP_PAD:-CROP_PAD, CROP_PAD:-CROP_PAD]
    paths = {tuple(valley(ink, column).tolist()) for column in cut_columns(ink.shape[1])}
    pairs = [cut_along(box, ink, np.array(path)) for path in sorted(paths)]
    return [pair for pair in pairs if pair is not None]


def cut_columns(width: int) -> list[int]:
    """Columns around which cuts are tried: every SPLIT_STEP of the width, SPLIT_MARGIN from each side
    (the valley between two touching digits can be anywhere in the middle, and a few are not the least
    inked columns: a 1's stroke is thinner than the digit it touches)."""
    step = max(1, round(SPLIT_STEP * width))
    return list(range(round(SPLIT_MARGIN * width), round((1 - SPLIT_MARGIN) * width) + 1, step))


def valley(ink: np.ndarray, column: int) -> np.ndarray:
    """The least inked path from the top row to the bottom one, moving at most one column a row and
    staying within SPLIT_REACH of the group's width around `column`: per row, the first column of the
    right-hand piece. Digits that overlap are cut around each other, not straight through."""
    h, w = ink.shape
    reach = max(1, round(SPLIT_REACH * w))
    low, high = max(1, column - reach), min(w - 1, column + reach + 1)
    cost = ink[:, low:high] + VALLEY_STEP_COST
    total = cost[0].copy()
    came = np.zeros(cost.shape, dtype=np.int8)  # -1, 0, +1: the column step from the row above
    for r in range(1, h):
        left = np.concatenate([[np.inf], total[:-1]])
        right = np.concatenate([total[1:], [np.inf]])
        options = np.stack([left, total, right])
        step = options.argmin(0)
        came[r] = step - 1
        total = options[step, np.arange(len(total))] + cost[r]
    path = np.empty(h, dtype=np.int64)
    path[-1] = int(total.argmin())
    for r in range(h - 1, 0, -1):
        path[r - 1] = path[r] + came[r, path[r]]
    return path + low


def cut_along(box: Box, ink: np.ndarray, path: np.ndarray):
    """The group's ink cut along a path into two pieces, each without the other digit's fragments; None
    when a side has no ink."""
    right_side = np.arange(ink.shape[1])[None, :] >= path[:, None]
    halves = []
    for part in (ink * ~right_side, ink * right_side):
        part = main_ink(part)
        ys, xs = np.nonzero(part.any(axis=1))[0], np.nonzero(part.any(axis=0))[0]
        if len(ys) == 0:
            return None
        tight = Box(box.left + int(xs[0]), box.top + int(ys[0]), box.left + int(xs[-1]) + 1, box.top + int(ys[-1]) + 1)
        halves.append((tight, np.pad(part[ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1], CROP_PAD)))
    return tuple(halves)


def main_ink(part: np.ndarray) -> np.ndarray:
    """The ink without pieces (8-connected) under FRAGMENT_SHARE of the largest one's ink."""
    labels, count = ndimage.label(part > 0, structure=np.ones((3, 3)))
    if count <= 1:
        return part
    mass = ndimage.sum_labels(part, labels, np.arange(1, count + 1))
    keep = np.concatenate([[False], mass >= FRAGMENT_SHARE * mass.max()])
    return part * keep[labels]


def confident_digit(group: GroupReading, height: int) -> bool:
    """A piece of a cut that reads as a digit of its own: sure, and nearly the whole group's height (a
    stroke shaved off a digit's side is shorter)."""
    tall = group.box.height >= SPLIT_MIN_HEIGHT * height
    return tall and group.verdict == "digit" and group.confidence >= SPLIT_CONFIDENT


def best_reading(
    whole: GroupReading, pairs: list[tuple[GroupReading, GroupReading]], calibration: Calibration
) -> tuple[GroupReading, ...]:
    """The group read whole, or as the two digits of its likeliest cut (the product of its pieces'
    probabilities; recognition-based segmentation) when both pieces are confident digits and the cut beats
    the whole: each piece more typical than it, and surer, or the whole atypical (beyond
    SUSPECT_DISTANCE_SHARE of max_distance: "14" read as a 4 at 96%). A wide 0 stays one 0, a 9 keeps
    its tail."""
    split = [pair for pair in pairs if all(confident_digit(half, whole.box.height) for half in pair)]
    if whole.verdict != "not_a_digit":
        atypical = whole.distance is not None and whole.distance > SUSPECT_DISTANCE_SHARE * calibration.max_distance
        split = [
            (a, b)
            for a, b in split
            if more_typical((a, b), whole) and (atypical or min(a.confidence, b.confidence) > whole.confidence)
        ]
    if not split:
        return (whole,)
    return max(split, key=lambda pair: pair[0].confidence * pair[1].confidence)


def more_typical(pair: tuple[GroupReading, GroupReading], whole: GroupReading) -> bool:
    """Both pieces nearer the digits than the whole, in the model's features (always, uncalibrated)."""
    if whole.distance is None:
        return True
    return max(pair[0].distance, pair[1].distance) < whole.distance


def combine(groups: tuple[GroupReading, ...]) -> Reading:
    """The drawing's verdict from its groups' (see the module docstring)."""
    single = groups[0].probabilities if len(groups) == 1 else None
    rejected = [g for g in groups if g.verdict == "not_a_digit"]
    if rejected:
        return Reading("not_a_digit", None, (), None, single, rejected[0].reason, groups)
    digits = tuple(g.digit for g in groups)
    confidence = math.prod(g.confidence for g in groups)
    if len(groups) > 1:
        return Reading("several_digits", None, digits, confidence, None, None, groups)
    if groups[0].verdict == "unsure":
        return Reading("unsure", digits[0], digits, confidence, single, None, groups, top_two(groups[0]))
    return Reading("digit", digits[0], digits, confidence, single, None, groups)


def top_two(group: GroupReading) -> tuple[Choice, Choice]:
    """The model's first and second choice for one group."""
    return Choice(group.digit, group.confidence), Choice(*group.runner_up)


# ---------------------------------------------------------------------------------------------
# python -m mnist.verdict calibrate [RUN_DIR]


def main(argv: list[str] | None = None) -> int:
    """Compute a run folder's calibration from MNIST and store it there (default: the bundled model)."""
    import argparse

    from .checkpoint import BUNDLED_DIR, load_checkpoint

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


if __name__ == "__main__":
    sys.exit(main())
