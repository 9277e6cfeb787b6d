"""Generated photos of digits on paper, for mnist.photo: how well the bundled model reads them, and how fast.

    python -m bench.photos [--per-condition N] [--json]

Each photo is a 640x480 JPEG (quality JPEG_QUALITY): a digit (an MNIST test digit enlarged, or a drawn pen
stroke) written on "paper" lit unevenly (a light gradient), off-centre, with Gaussian noise, under one of
CONDITIONS:

  plain      dark grey pencil on light paper
  shadow     the same with a shadow band across the paper (half as bright inside it)
  blue-pen   a blue pen, thin strokes (a pen is thinner than MNIST's strokes)
  chalk      light chalk on a dark board (the other polarity)
  small      the digit a seventh of the frame's height, somewhere in it

Blank paper of each kind (no digit) must read as empty. The figure also times read_picture on a 12-megapixel
JPEG (4000x3000) of the plain kind.
"""

from __future__ import annotations

import argparse
import io
import json
import time

import numpy as np
from PIL import Image
from scipy import ndimage

FRAME = (480, 640)  # rows, columns of a generated photo
JPEG_QUALITY = 60  # a phone upload squeezed hard
NOISE_SIGMA = 6.0  # grey levels of Gaussian sensor noise
PAPER = np.array([235.0, 232.0, 222.0])  # slightly warm white paper, RGB
PENCIL = np.array([60.0, 60.0, 65.0])
BLUE_PEN = np.array([35.0, 55.0, 150.0])
BOARD = np.array([40.0, 55.0, 45.0])  # a dark green board
CHALK = np.array([225.0, 225.0, 215.0])
LIGHT_FALLOFF = 0.35  # the paper's far corner is this much darker than its near one
SHADOW_DEPTH = 0.5  # the shadow band lets this share of the light through
DIGIT_HEIGHT = (0.4, 0.7)  # share of the frame's height a digit is written at
SMALL_HEIGHT = 1 / 7  # share of the frame's height of a "small" digit
PEN_STROKE_SHARE = 0.035  # a pen stroke's width, a share of the digit's height
CONDITIONS = ("plain", "shadow", "blue-pen", "chalk", "small")
TWELVE_MEGAPIXELS = (3000, 4000)  # rows, columns


def coverage_of_digit(digit: np.ndarray, height: int, condition: str) -> np.ndarray:
    """A 28x28 MNIST digit -> (height, height) ink coverage in [0, 1]: enlarged smoothly; for a pen, its
    strokes thinned to PEN_STROKE_SHARE of the height (a pen is finer than MNIST's strokes)."""
    big = ndimage.zoom(digit.astype(np.float32) / 255.0, height / digit.shape[0], order=1)
    big = np.clip(big, 0, 1)
    if condition != "blue-pen":
        return big
    mask = big > 0.5
    depth = ndimage.distance_transform_edt(mask)
    ridge = mask & (depth >= ndimage.maximum_filter(depth, size=3))  # the stroke's middle line
    outside = ndimage.distance_transform_edt(~ridge)
    return np.clip(PEN_STROKE_SHARE * height / 2 + 0.5 - outside, 0, 1)


def lighting(shape: tuple[int, int], condition: str, rng: np.random.Generator) -> np.ndarray:
    """(H, W) light falling on the paper: a gradient from a random corner, and a shadow band if asked."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = rows / shape[0] * np.sin(angle) + cols / shape[1] * np.cos(angle)
    ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
    light = 1 - LIGHT_FALLOFF * ramp
    if condition == "shadow":
        center, width = rng.uniform(0.2, 0.8) * shape[1], rng.uniform(0.15, 0.3) * shape[1]
        tilt = rng.uniform(-0.5, 0.5)
        distance = np.abs(cols - center - tilt * (rows - shape[0] / 2))
        edge = ndimage.gaussian_filter((distance < width / 2).astype(np.float32), 3)  # a soft penumbra
        light *= 1 - (1 - SHADOW_DEPTH) * edge
    return light


def paper_photo(
    digit: np.ndarray | None, condition: str, rng: np.random.Generator, shape: tuple[int, int] = FRAME
) -> bytes:
    """A JPEG photo of `digit` (28x28 uint8, white on black as in MNIST; None: blank paper) under `condition`."""
    coverage = np.zeros(shape, dtype=np.float32)
    if digit is not None:
        share = SMALL_HEIGHT if condition == "small" else rng.uniform(*DIGIT_HEIGHT)
        height = round(share * shape[0])
        top = rng.integers(0, shape[0] - height)
        left = rng.integers(0, shape[1] - height)
        coverage[top : top + height, left : left + height] = coverage_of_digit(digit, height, condition)
    background, ink = {"chalk": (BOARD, CHALK), "blue-pen": (PAPER, BLUE_PEN)}.get(condition, (PAPER, PENCIL))
    light = lighting(shape, condition, rng)[..., None]
    colour = background * (1 - coverage[..., None]) + ink * coverage[..., None]
    texture = ndimage.gaussian_filter(rng.normal(0, 1, shape), 1.5)[..., None] * 8  # paper grain
    pixels = colour * light + texture + rng.normal(0, NOISE_SIGMA, (*shape, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def measure(per_condition: int, seed: int = 0) -> dict:
    """Accuracy of the bundled model on generated photos per condition, blank paper's verdicts and the time
    read_picture takes on a 12-megapixel JPEG."""
    from mnist.checkpoint import load_checkpoint
    from mnist.data import load_mnist
    from mnist.photo import read_picture
    from mnist.verdict import calibration_for, read_drawing

    checkpoint = load_checkpoint()
    calibration = calibration_for(checkpoint)
    data = load_mnist(download=False)
    images, labels = data.test_images.numpy(), data.test_labels.numpy()
    rng = np.random.default_rng(seed)
    results: dict = {"per_condition": per_condition, "conditions": {}}
    for condition in CONDITIONS:
        right, blanks_empty, seconds = 0, 0, []
        for i in range(per_condition):
            photo = paper_photo(images[i], condition, rng)
            start = time.perf_counter()
            array = read_picture(photo)
            seconds.append(time.perf_counter() - start)
            reading = read_drawing(checkpoint.model, array, calibration)
            right += reading.verdict in ("digit", "unsure") and reading.digit == int(labels[i])
        for _ in range(per_condition):
            reading = read_drawing(checkpoint.model, read_picture(paper_photo(None, condition, rng)), calibration)
            blanks_empty += reading.verdict == "not_a_digit"
        results["conditions"][condition] = {
            "accuracy": right / per_condition,
            "blank_not_a_digit": blanks_empty / per_condition,
            "read_picture_ms_median": 1000 * float(np.median(seconds)),
        }
    big = paper_photo(images[0], "plain", rng, TWELVE_MEGAPIXELS)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        read_picture(big)
        times.append(time.perf_counter() - start)
    results["twelve_megapixel_ms"] = {"median": 1000 * float(np.median(times)), "bytes": len(big)}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.photos", description=__doc__.splitlines()[0])
    parser.add_argument("--per-condition", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = measure(args.per_condition)
    if args.json:
        print(json.dumps(results))
        return 0
    for condition, row in results["conditions"].items():
        print(
            f"{condition:<9} accuracy {row['accuracy']:.1%}  blank paper not a digit {row['blank_not_a_digit']:.0%}  "
            f"read_picture {row['read_picture_ms_median']:.0f} ms"
        )
    print(f"12-megapixel JPEG: read_picture {results['twelve_megapixel_ms']['median']:.0f} ms (median of 5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
