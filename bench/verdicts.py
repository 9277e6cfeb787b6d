"""Verdicts (mnist.verdict.read_drawing): digits kept, non-digits caught, numbers read, time per drawing.

Four measurements, all with the bundled model and its stored calibration (fitted on MNIST training
digits only, so the test set below is unseen by it):

  MNIST test digits   all 10,000, each enlarged 6-10x at a random place on a 280x280 RGBA canvas
                      (benchlib.mnist_canvas, as bench/predict_latency.py draws them), once per seed:
                      the share read as not_a_digit (target <= 0.5%), and how the rest are read
  non-digits          --per-kind drawings of each kind per seed, drawn like browser strokes
                      (anti-aliased, round caps, widths 6-40 px like the Sketch slider): the share
                      read as not_a_digit, per kind (NON_DIGIT_KINDS says what each kind is)
  numbers             --numbers 2-4-digit numbers per seed, composed from random MNIST test digits
                      with random gaps, vertical offsets, sizes and stroke boldness: the share read
                      exactly (verdict several_digits, the right digits left to right; target >= 97%)
  other handwriting   legible digits not from MNIST (bench/handwriting.py): scikit-learn's UCI digits (43
                      writers, 8x8), digits typed in handwriting-like and in plain fonts at several
                      resolutions, and those fonts' digits photographed on paper (mnist.photo.read_picture):
                      the share read as not_a_digit per source (target <= 2%)
  touching numbers    --touching 2-digit numbers of MNIST test digits whose ink touches or overlaps by 1-6
                      px: the share read exactly (target >= 90%)
  latency             read_drawing on a 280x280 canvas holding one MNIST digit, interleaved with
                      predict_canvas on the same canvases (the app's current call), torch threads =
                      cores: p50 / p99 (target p50 < 10 ms)

    python bench/verdicts.py [--seeds 2] [--per-kind 300] [--numbers 1000] [--other 600] [--touching 500]
                             [--test-digits N] [--calls 500] [--quick]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from bench import benchlib, handwriting
from bench.benchlib import Figure
from mnist.checkpoint import load_checkpoint
from mnist.constants import DIGIT_BOX
from mnist.predict import predict_canvas
from mnist.verdict import FALLBACK, calibration_for, read_drawing

CANVAS = 280  # pixels, the Sketch canvas
SUPERSAMPLE = 2  # strokes are drawn at 2x and box-filtered down: anti-aliased like the browser's
STROKE_WIDTHS = (6, 40)  # pixels: the Sketch page's stroke-width slider
MARGIN = 6  # pixels kept blank at the canvas' edges
TARGET_REJECTED = 0.005  # at most this share of MNIST test digits read as not_a_digit
TARGET_NUMBERS = 0.97  # at least this share of numbers read exactly
TARGET_P50_MS = 10.0
TARGET_OTHER_REFUSED = 0.02  # at most this share of legible non-MNIST digits read as not_a_digit
TARGET_TOUCHING = 0.90  # at least this share of touching 2-digit numbers read exactly
NUMBER_LENGTHS = (2, 3, 4)  # digits per number
DIGIT_HEIGHT_PX = (45, 80)  # MNIST's 20-px digit box enlarged to this many canvas pixels (less if too wide)
SIZE_JITTER = 0.1  # each digit of a number is 1 +- this times the number's size
GAP = (0.15, 0.6)  # blank columns between digits, as a share of the digit height
VERTICAL_OFFSET = 0.2  # each digit moves up or down by up to this share of the digit height
BOLD_CHANCE = 0.3  # share of digits drawn with a wider pen (their ink dilated by a disc)
BOLD_WIDTH = (0.03, 0.10)  # how much wider, as a share of the digit height (MNIST's own pen is about 0.12)
LATENCY_WARMUP = 20
BASE_SEED = 0  # seed s of a run uses BASE_SEED + s for the canvases, the non-digits and the numbers


# ---------------------------------------------------------------------------------------------
# Drawing like a browser canvas


class Pen:
    """Strokes on a supersampled grey canvas; `canvas()` gives the Sketch page's (280, 280, 4) uint8."""

    def __init__(self) -> None:
        self.image = Image.new("L", (CANVAS * SUPERSAMPLE, CANVAS * SUPERSAMPLE), 0)
        self.draw = ImageDraw.Draw(self.image)

    def stroke(self, points, width: float) -> None:
        """A polyline with round joints and caps, `width` canvas pixels wide."""
        scaled = [(x * SUPERSAMPLE, y * SUPERSAMPLE) for x, y in points]
        w = max(1, round(width * SUPERSAMPLE))
        if len(scaled) > 1:
            self.draw.line(scaled, fill=255, width=w, joint="curve")
        r = w / 2
        for x, y in (scaled[0], scaled[-1]):
            self.draw.ellipse((x - r, y - r, x + r, y + r), fill=255)

    def fill(self, points) -> None:
        self.draw.polygon([(x * SUPERSAMPLE, y * SUPERSAMPLE) for x, y in points], fill=255)

    def canvas(self) -> np.ndarray:
        return to_rgba(np.asarray(self.image.resize((CANVAS, CANVAS), Image.BOX)))


def to_rgba(gray: np.ndarray) -> np.ndarray:
    """White ink on an opaque black canvas, as st_canvas returns it."""
    out = np.zeros((*gray.shape, 4), dtype=np.uint8)
    out[..., :3] = gray[..., None]
    out[..., 3] = 255
    return out


def centre(rng: np.random.Generator, size: float) -> np.ndarray:
    """A random (x, y) where a drawing `size` pixels across fits on the canvas."""
    low, high = size / 2 + MARGIN, CANVAS - size / 2 - MARGIN
    return rng.uniform(low, high, 2) if high > low else np.full(2, CANVAS / 2)


def width(rng: np.random.Generator, high: float = STROKE_WIDTHS[1]) -> float:
    return float(rng.uniform(STROKE_WIDTHS[0], high))


def draw_speck(rng: np.random.Generator) -> np.ndarray:
    pen = Pen()
    c = centre(rng, 6)
    pen.stroke([tuple(c)], float(rng.uniform(2, 6)))
    return pen.canvas()


def draw_dot(rng: np.random.Generator) -> np.ndarray:
    pen = Pen()
    w = width(rng)
    c = centre(rng, w)
    pen.stroke([tuple(c), tuple(c + rng.normal(0, 1, 2))], w)  # a tap: the pen barely moves
    return pen.canvas()


def draw_line(rng: np.random.Generator) -> np.ndarray:
    """A straight stroke 60-90 degrees from vertical (a steeper one is a 1)."""
    pen = Pen()
    length, w = float(rng.uniform(80, 240)), width(rng, 30)
    tilt = np.deg2rad(rng.uniform(60, 90)) * rng.choice([-1, 1])
    half = np.array([np.sin(tilt), np.cos(tilt)]) * length / 2
    c = centre(rng, length + w)
    pen.stroke([tuple(c - half), tuple(c + half)], w)
    return pen.canvas()


def draw_scribble(rng: np.random.Generator) -> np.ndarray:
    """One stroke through 12-30 random points of a 120-250 px square."""
    pen = Pen()
    size, w = float(rng.uniform(120, 250)), width(rng, 24)
    c = centre(rng, size)
    points = c + rng.uniform(-size / 2, size / 2, (int(rng.integers(12, 31)), 2))
    pen.stroke([tuple(p) for p in points], w)
    return pen.canvas()


def draw_star(rng: np.random.Generator) -> np.ndarray:
    """A five-pointed star in one stroke, randomly turned."""
    pen = Pen()
    size, w = float(rng.uniform(120, 250)), width(rng, 24)
    c = centre(rng, size)
    angles = rng.uniform(0, 2 * np.pi) + np.arange(6) * 4 * np.pi / 5
    pen.stroke([tuple(c + size / 2 * np.array([np.cos(a), np.sin(a)])) for a in angles], w)
    return pen.canvas()


def draw_blob(rng: np.random.Generator) -> np.ndarray:
    """A filled irregular polygon 80-240 px across."""
    pen = Pen()
    size = float(rng.uniform(80, 240))
    c = centre(rng, size)
    n = int(rng.integers(8, 16))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = size / 2 * rng.uniform(0.7, 1.0, n)
    pen.fill([tuple(c + r * np.array([np.cos(a), np.sin(a)])) for a, r in zip(angles, radii, strict=True)])
    return pen.canvas()


NON_DIGIT_KINDS: dict[str, tuple[Callable[[np.random.Generator], np.ndarray], str]] = {
    "speck": (draw_speck, "a tap 2-6 px wide"),
    "dot": (draw_dot, "a tap 6-40 px wide"),
    "line": (draw_line, "a straight stroke 80-240 px long, 60-90 deg from vertical"),
    "scribble": (draw_scribble, "one stroke through 12-30 random points"),
    "star": (draw_star, "a five-pointed star in one stroke"),
    "blob": (draw_blob, "a filled polygon 80-240 px across"),
}


# ---------------------------------------------------------------------------------------------
# Numbers from MNIST digits


def ink_crop(digit: np.ndarray) -> np.ndarray:
    """A 28x28 uint8 digit cut to its ink's bounding box."""
    rows, cols = np.flatnonzero(digit.any(1)), np.flatnonzero(digit.any(0))
    return digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def enlarge(crop: np.ndarray, scale: float, widen: float = 0.0) -> np.ndarray:
    """Bilinear enlargement (like anti-aliased strokes); strokes `widen` px wider (a disc dilation) when > 0."""
    size = (max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale)))
    t = torch.from_numpy(crop.astype(np.float32))[None, None]
    big = F.interpolate(t, size=size, mode="bilinear", align_corners=False)
    radius = int(round(widen / 2))
    if radius > 0:
        big = F.pad(big, (radius,) * 4)
        side = 2 * radius + 1
        offsets = torch.arange(side) - radius
        disc = (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius * radius).flatten()
        patches = F.unfold(big, side, padding=radius)[0]  # (side * side, H * W)
        big = patches[disc].max(0).values.view(1, 1, *big.shape[2:])
    return big[0, 0].round().clamp(0, 255).to(torch.uint8).numpy()


def compose_number(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """A random 2-4-digit number of MNIST digits on a 280x280 canvas, and its digits left to right."""
    picks = rng.choice(len(images), size=int(rng.choice(NUMBER_LENGTHS)), replace=False)
    crops = [ink_crop(images[i]) for i in picks]
    height = float(rng.uniform(*DIGIT_HEIGHT_PX))
    sizes = rng.uniform(1 - SIZE_JITTER, 1 + SIZE_JITTER, len(crops))
    gaps = rng.uniform(*GAP, len(crops) - 1)
    widths = np.array([c.shape[1] / DIGIT_BOX for c in crops]) * sizes  # in units of `height`
    total = widths.sum() + gaps.sum()
    height = min(height, (CANVAS - 2 * MARGIN) / total)  # the number must fit across
    widen = [float(rng.uniform(*BOLD_WIDTH)) * height if rng.random() < BOLD_CHANCE else 0.0 for _ in crops]
    pieces = [enlarge(c, height * s / DIGIT_BOX, w) for c, s, w in zip(crops, sizes, widen, strict=True)]
    span = sum(p.shape[1] for p in pieces) + int(gaps.sum() * height)
    x = int(rng.integers(MARGIN, max(MARGIN, CANVAS - MARGIN - span) + 1))
    middle = float(rng.uniform(CANVAS * 0.3, CANVAS * 0.7))
    gray = np.zeros((CANVAS, CANVAS), dtype=np.uint8)
    for i, piece in enumerate(pieces):
        h, w = piece.shape
        offset = rng.uniform(-VERTICAL_OFFSET, VERTICAL_OFFSET) * height
        top = int(np.clip(middle + offset - h / 2, MARGIN, CANVAS - MARGIN - h))
        w = min(w, CANVAS - x)
        gray[top : top + h, x : x + w] = np.maximum(gray[top : top + h, x : x + w], piece[:, :w])
        x += w + (int(gaps[i] * height) if i < len(gaps) else 0)
    return to_rgba(gray), [int(labels[i]) for i in picks]


# ---------------------------------------------------------------------------------------------
# Measurements


def read_mnist(model, calibration, images: np.ndarray, labels: np.ndarray, seed: int) -> Counter:
    """How every test digit, drawn on a canvas, is read: rejected, right, wrong, unsure, several."""
    rng = np.random.default_rng(seed)
    outcomes: Counter = Counter()
    for digit, label in zip(images, labels, strict=True):
        reading = read_drawing(model, benchlib.mnist_canvas(digit, rng), calibration)
        if reading.verdict == "digit":
            outcomes["right" if reading.digit == label else "wrong"] += 1
        elif reading.verdict == "not_a_digit":
            outcomes[f"not_a_digit:{reading.reason}"] += 1
        else:
            outcomes[reading.verdict] += 1
    return outcomes


def rejected_share(outcomes: Counter) -> float:
    return sum(n for k, n in outcomes.items() if k.startswith("not_a_digit")) / sum(outcomes.values())


def read_non_digits(model, calibration, per_kind: int, seed: int) -> dict[str, Counter]:
    """kind -> Counter of verdicts ("not_a_digit:REASON" for the caught ones)."""
    rng = np.random.default_rng(seed)
    out = {}
    for kind, (draw, _about) in NON_DIGIT_KINDS.items():
        counts: Counter = Counter()
        for _ in range(per_kind):
            reading = read_drawing(model, draw(rng), calibration)
            counts[reading.verdict + (f":{reading.reason}" if reading.reason else "")] += 1
        out[kind] = counts
    return out


def caught_share(counts: Counter) -> float:
    return sum(n for k, n in counts.items() if k.startswith("not_a_digit")) / sum(counts.values())


def read_numbers(model, calibration, images, labels, count: int, seed: int) -> tuple[float, float, Counter]:
    """Shares of numbers read exactly, and read exactly with every digit confident; how the others were read."""
    rng = np.random.default_rng(seed)
    exact, confident, misses = 0, 0, Counter()
    for _ in range(count):
        canvas, digits = compose_number(images, labels, rng)
        reading = read_drawing(model, canvas, calibration)
        if reading.verdict == "several_digits" and list(reading.digits) == digits:
            exact += 1
            confident += all(g.verdict == "digit" for g in reading.groups)
        elif len(reading.groups) != len(digits):
            misses[f"{len(reading.groups)} groups for {len(digits)} digits"] += 1
        else:
            misses[reading.verdict + (f":{reading.reason}" if reading.reason else ": a wrong digit")] += 1
    return exact / count, confident / count, misses


def other_sources() -> dict[str, Callable[[np.random.Generator, int], tuple[object, int]]]:
    """Source name -> draw(rng, i): the i-th drawing (a canvas, or a photo's bytes) and its digit."""
    uci_images, uci_labels = handwriting.load_uci()
    fonts = handwriting.font_paths()
    by_hand = [f for f in fonts if f.name in handwriting.HANDWRITING_FONTS]
    plain = [f for f in fonts if f.name not in handwriting.HANDWRITING_FONTS]

    def from_fonts(paths, make):
        return lambda rng, i: (make(paths[i % len(paths)], i % 10, rng), i % 10)

    sources = {
        "uci": lambda rng, i: (
            handwriting.uci_canvas(uci_images[i % len(uci_images)], rng),
            uci_labels[i % len(uci_labels)],
        )
    }
    if by_hand:
        sources["handwriting_fonts"] = from_fonts(by_hand, handwriting.font_canvas)
        sources["paper_photos"] = from_fonts(by_hand + plain, handwriting.paper_photo)
    if plain:
        sources["plain_fonts"] = from_fonts(plain, handwriting.font_canvas)
    return sources


def read_other(model, calibration, count: int, seed: int) -> dict[str, Counter]:
    """source -> Counter of verdicts ("right", "wrong", "unsure", "not_a_digit:REASON", ...)."""
    from mnist.photo import read_picture

    rng = np.random.default_rng(seed)
    out = {}
    for name, draw in other_sources().items():
        counts: Counter = Counter()
        for i in range(count):
            drawing, digit = draw(rng, i)
            array = read_picture(drawing) if isinstance(drawing, bytes) else drawing
            reading = read_drawing(model, array, calibration)
            if reading.verdict == "digit":
                counts["right" if reading.digit == digit else "wrong"] += 1
            else:
                counts[reading.verdict + (f":{reading.reason}" if reading.reason else "")] += 1
        out[name] = counts
    return out


def read_touching(model, calibration, images, labels, count: int, seed: int) -> tuple[float, Counter]:
    """Share of touching 2-digit numbers read exactly; how the others were read."""
    rng = np.random.default_rng(seed)
    exact, misses = 0, Counter()
    for _ in range(count):
        canvas, digits = handwriting.touching_number(images, labels, rng)
        reading = read_drawing(model, canvas, calibration)
        if reading.verdict == "several_digits" and list(reading.digits) == digits:
            exact += 1
        else:
            misses[
                f"{len(reading.groups)} groups: " + reading.verdict + (f":{reading.reason}" if reading.reason else "")
            ] += 1
    return exact / count, misses


def time_reading(model, calibration, images: np.ndarray, calls: int, seed: int) -> dict[str, list[float]]:
    """Seconds per call of read_drawing and predict_canvas, alternating on the same one-digit canvases."""
    rng = np.random.default_rng(seed)
    canvases = [benchlib.mnist_canvas(images[i], rng) for i in rng.permutation(len(images))[: calls + LATENCY_WARMUP]]
    calls_by_name = {
        "read_drawing": lambda c: read_drawing(model, c, calibration),
        "predict_canvas": lambda c: predict_canvas(model, c),
    }
    times: dict[str, list[float]] = {name: [] for name in calls_by_name}
    for i, canvas in enumerate(canvases):
        for name, call in calls_by_name.items():
            t0 = time.perf_counter()
            call(canvas)
            if i >= LATENCY_WARMUP:
                times[name].append(time.perf_counter() - t0)
    return times


# ---------------------------------------------------------------------------------------------
# Figures


def spread_note(values: list[float]) -> str:
    """'(seeds: 0.10%, 0.20%)' for a percentage over several seeds; '' for one."""
    return "" if len(values) < 2 else "(seeds: " + ", ".join(f"{v:.2%}" for v in values) + ")"


def verdict_figures(
    rejected: list[float],
    caught: dict[str, list[float]],
    numbers: list[float],
    confident_numbers: list[float],
    latency: dict[str, dict],
    *,
    test_digits: int,
    per_kind: int,
    number_count: int,
    full: bool,
    other: dict[str, list[float]] | None = None,
    other_count: int = 0,
    touching: list[float] | None = None,
    touching_count: int = 0,
) -> list[Figure]:
    """The table: every share is the mean over seeds (each seed's value in the note). `other`: source ->
    shares of its digits read as not_a_digit; `touching`: shares of touching numbers read exactly."""
    mean = float(np.mean(rejected))
    figures = [
        Figure(
            "mnist_rejected",
            mean,
            "%",
            f"MNIST test digits read as not a digit ({test_digits:,} per seed)",
            note=spread_note(rejected),
            target=f"<= {TARGET_REJECTED:.1%}",
            passed=mean <= TARGET_REJECTED if full else None,
        )
    ]
    for kind, shares in caught.items():
        figures.append(
            Figure(
                f"caught_{kind}",
                float(np.mean(shares)),
                "%",
                f"non-digits caught: {kind} ({per_kind} per seed)",
                note=spread_note(shares),
            )
        )
    all_caught = float(np.mean([np.mean(s) for s in caught.values()]))
    figures.append(Figure("caught_mean", all_caught, "%", "non-digits caught, mean over kinds"))
    number_mean = float(np.mean(numbers))
    figures.append(
        Figure(
            "numbers_exact",
            number_mean,
            "%",
            f"2-4-digit numbers read exactly ({number_count:,} per seed)",
            note=spread_note(numbers),
            target=f">= {TARGET_NUMBERS:.0%}",
            passed=number_mean >= TARGET_NUMBERS if full else None,
        )
    )
    figures.append(
        Figure(
            "numbers_exact_confident",
            float(np.mean(confident_numbers)),
            "%",
            "same, with no digit unsure (every group at >= 60%)",
            note=spread_note(confident_numbers),
        )
    )
    for source, shares in (other or {}).items():
        share = float(np.mean(shares))
        figures.append(
            Figure(
                f"other_refused_{source}",
                share,
                "%",
                f"other handwriting read as not a digit: {source} ({other_count:,} per seed)",
                note=spread_note(shares),
                target=f"<= {TARGET_OTHER_REFUSED:.0%}",
                passed=share <= TARGET_OTHER_REFUSED if full else None,
            )
        )
    if touching:
        share = float(np.mean(touching))
        figures.append(
            Figure(
                "touching_exact",
                share,
                "%",
                f"touching 2-digit numbers read exactly ({touching_count:,} per seed)",
                note=spread_note(touching),
                target=f">= {TARGET_TOUCHING:.0%}",
                passed=share >= TARGET_TOUCHING if full else None,
            )
        )
    ours, base = latency["read_drawing"], latency["predict_canvas"]
    figures += [
        Figure(
            "read_p50_ms",
            ours["p50_ms"],
            "ms",
            "read_drawing, one digit on a 280x280 canvas (p50 / p99)",
            note=f"/ {ours['p99_ms']:.2f} ms",
            ratio=ours["p50_ms"] / base["p50_ms"],
            ratio_note="p50 of predict_canvas",
            target=f"< {TARGET_P50_MS:g} ms",
            passed=ours["p50_ms"] < TARGET_P50_MS,
        ),
        Figure("read_p99_ms", ours["p99_ms"], "ms"),
        Figure(
            "predict_p50_ms",
            base["p50_ms"],
            "ms",
            "predict_canvas on the same canvases (p50 / p99)",
            note=f"/ {base['p99_ms']:.2f} ms",
        ),  # fmt: skip
        Figure("predict_p99_ms", base["p99_ms"], "ms"),
        Figure("seeds", len(rejected)),
    ]
    return figures


def outcome_table(title: str, rows: dict[str, Counter]) -> str:
    keys = sorted({k for c in rows.values() for k in c})
    return f"{title}\n" + benchlib.format_table(
        ["", *keys], [[name, *(c.get(k, 0) for k in keys)] for name, c in rows.items()]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=2, help="repetitions with different random drawings (default 2)")
    parser.add_argument("--per-kind", type=int, default=300, help="non-digits of each kind per seed (default 300)")
    parser.add_argument("--numbers", type=int, default=1000, help="numbers per seed (default 1000)")
    parser.add_argument("--other", type=int, default=600, help="digits per other-handwriting source per seed")
    parser.add_argument("--touching", type=int, default=500, help="touching 2-digit numbers per seed (default 500)")
    parser.add_argument("--test-digits", type=int, help="only the first N MNIST test digits (default: all 10,000)")
    parser.add_argument("--calls", type=int, default=500, help="timed calls of each function (default 500)")
    parser.add_argument("--checkpoint", help="run folder or .safetensors (default: the bundled model)")
    parser.add_argument("--quick", action="store_true", help="1 seed, 500 test digits, 30 per kind, 100 numbers")
    args = parser.parse_args(argv)
    test_limit = args.test_digits
    if args.quick:
        args.seeds, args.per_kind, args.numbers, args.calls, test_limit = 1, 30, 100, 100, 500
        args.other, args.touching = 100, 100

    machine = benchlib.start("verdicts: digits kept, non-digits caught, numbers read")
    path, description = benchlib.checkpoint_path(args.checkpoint)
    checkpoint = load_checkpoint(path)
    data = benchlib.load_data()
    calibration = calibration_for(checkpoint, data)
    print(f"model: {description}, arch {checkpoint.arch}; calibration: {calibration.source}")
    if calibration is FALLBACK:
        print("NOTE: uncalibrated; the model-evidence check is the fallback")
    images, labels = data.test_images.numpy()[:test_limit], data.test_labels.numpy()[:test_limit]

    seeds = [BASE_SEED + s for s in range(args.seeds)]
    mnist_outcomes, non_digits, number_misses = {}, {}, {}
    rejected, numbers, confident_numbers = [], [], []
    caught: dict[str, list[float]] = {kind: [] for kind in NON_DIGIT_KINDS}
    other_outcomes, other_refused, touching, touching_misses = {}, {}, [], {}
    for seed in seeds:
        t0 = time.perf_counter()
        mnist_outcomes[seed] = read_mnist(checkpoint.model, calibration, images, labels, seed)
        rejected.append(rejected_share(mnist_outcomes[seed]))
        non_digits[seed] = read_non_digits(checkpoint.model, calibration, args.per_kind, seed)
        for kind, counts in non_digits[seed].items():
            caught[kind].append(caught_share(counts))
        share, confident, number_misses[seed] = read_numbers(
            checkpoint.model, calibration, images, labels, args.numbers, seed
        )
        numbers.append(share)
        confident_numbers.append(confident)
        other_outcomes[seed] = read_other(checkpoint.model, calibration, args.other, seed)
        for source, counts in other_outcomes[seed].items():
            other_refused.setdefault(source, []).append(caught_share(counts))
        touched, touching_misses[seed] = read_touching(
            checkpoint.model, calibration, images, labels, args.touching, seed
        )
        touching.append(touched)
        seconds = time.perf_counter() - t0
        print(f"seed {seed}: MNIST rejected {rejected[-1]:.2%}, numbers exact {share:.2%} ({seconds:.0f} s)")
        print(outcome_table("  MNIST test digits:", {"count": mnist_outcomes[seed]}))
        print(outcome_table("  non-digits by kind:", non_digits[seed]))
        print(outcome_table("  numbers not read exactly:", {"count": number_misses[seed]}))
        print(outcome_table("  other handwriting by source:", other_outcomes[seed]))
        print(f"  touching numbers exact {touched:.2%}")
        print(outcome_table("  touching numbers not read exactly:", {"count": touching_misses[seed]}))

    print(f"timing {args.calls} calls of read_drawing and predict_canvas, alternating ...")
    times = time_reading(checkpoint.model, calibration, images, args.calls, seed=BASE_SEED)
    latency = {name: benchlib.latency_stats(t) for name, t in times.items()}
    figures = verdict_figures(
        rejected,
        caught,
        numbers,
        confident_numbers,
        latency,
        test_digits=len(images),
        per_kind=args.per_kind,
        number_count=args.numbers,
        full=not args.quick and test_limit is None,
        other=other_refused,
        other_count=args.other,
        touching=touching,
        touching_count=args.touching,
    )
    benchlib.report(
        "verdicts",
        machine,
        figures,
        file_stem="verdicts-quick" if args.quick or test_limit is not None else None,  # a part of the test set
        quick=args.quick,
        seeds={
            "canvases, non-digits, numbers and timing canvases": seeds,
            "calibration sample": calibration.details.get("seed"),
        },
        model=description,
        calibration={"source": calibration.source, "max_distance": calibration.max_distance, **calibration.details},
        kinds={kind: about for kind, (_draw, about) in NON_DIGIT_KINDS.items()},
        mnist_outcomes={str(s): dict(c) for s, c in mnist_outcomes.items()},
        non_digits={str(s): {k: dict(c) for k, c in kinds.items()} for s, kinds in non_digits.items()},
        number_misses={str(s): dict(c) for s, c in number_misses.items()},
        other_handwriting={str(s): {k: dict(c) for k, c in src.items()} for s, src in other_outcomes.items()},
        touching_misses={str(s): dict(c) for s, c in touching_misses.items()},
        latency=latency,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
