"""Verdicts: digits, unsure, several digits, or not a digit and why, on drawings rendered here.

The drawings are 280x280 RGBA canvases like the Sketch page's (white ink on opaque black): strokes
drawn with PIL (anti-aliased by drawing at 2x and box-filtering down), and real MNIST test digits
enlarged into the canvas.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import CANVAS_PX as CANVAS
from helpers import as_rgba as rgba
from helpers import draw_strokes as draw
from helpers import paste_digit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mnist import verdict
from mnist.checkpoint import BUNDLED_DIR, WEIGHTS_FILE, load_checkpoint
from mnist.errors import MnistError
from mnist.predict import predict_canvas
from mnist.verdict import (
    FALLBACK,
    VERDICTS,
    Box,
    Calibration,
    GroupReading,
    InkStats,
    belong_together,
    calibrate,
    calibration_for,
    combine,
    count_components,
    count_holes,
    load_calibration,
    read_drawing,
    save_calibration,
)

MNIST_SAMPLE = 300  # real test digits for the "read as digits" check
NUMBERS = 24  # composed numbers for the several-digits checks


@pytest.fixture(scope="module")
def bundled():
    return load_checkpoint()


@pytest.fixture(scope="module")
def calibration(bundled):
    stored = load_calibration(BUNDLED_DIR)
    assert stored is not None, "the bundled model's calibration is missing or stale: python -m mnist.verdict calibrate"
    return stored


def read(bundled, calibration, canvas):
    return read_drawing(bundled.model, canvas, calibration)


# ---------------------------------------------------------------- drawing


def star(cx=140, cy=140, radius=100, turn=0.3):
    angles = turn + np.arange(6) * 4 * np.pi / 5
    return [(cx + radius * np.cos(a), cy + radius * np.sin(a)) for a in angles]


def scribble(seed=0, size=200):
    rng = np.random.default_rng(seed)
    return [tuple(p) for p in 140 + rng.uniform(-size / 2, size / 2, (24, 2))]


def enlarge(digit: np.ndarray, scale: int, bold: int = 0) -> np.ndarray:
    """A 28x28 uint8 digit, cut to its ink, enlarged `scale` times; `bold` px of extra stroke width."""
    rows, cols = np.flatnonzero(digit.any(1)), np.flatnonzero(digit.any(0))
    big = np.kron(digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], np.ones((scale, scale), np.uint8))
    if bold:
        big = np.pad(big, bold)
        grown = big.copy()
        for dy in range(-bold, bold + 1):
            for dx in range(-bold, bold + 1):
                if dy * dy + dx * dx <= bold * bold:  # a round pen
                    grown = np.maximum(grown, np.roll(big, (dy, dx), axis=(0, 1)))
        big = grown
    return big


def number_canvas(pieces, gaps, offsets) -> tuple[np.ndarray, list[Box]]:
    """Enlarged digits side by side, `gaps` px apart, each moved down by its offset; and where each went."""
    canvas = np.zeros((CANVAS, CANVAS), np.uint8)
    x, boxes = 10, []
    for piece, gap, dy in zip(pieces, [*gaps, 0], offsets, strict=True):
        h, w = piece.shape
        top = (CANVAS - h) // 2 + dy
        canvas[top : top + h, x : x + w] = np.maximum(canvas[top : top + h, x : x + w], piece)
        boxes.append(Box(x, top, x + w, top + h))
        x += w + gap
    return rgba(canvas), boxes


def app_canvas(digit: np.ndarray, scale: int = 8, top: int = 20, left: int = 30) -> np.ndarray:
    return paste_digit(digit, scale, top, left)


# ---------------------------------------------------------------- digits


def test_one_digit_gets_exactly_the_pixels_and_probabilities_of_predict_canvas(bundled, calibration, mnist_data):
    canvas = app_canvas(mnist_data.test_images[0].numpy())
    image, prediction = predict_canvas(bundled.model, canvas)
    reading = read(bundled, calibration, canvas)
    assert len(reading.groups) == 1
    assert np.array_equal(reading.groups[0].pixels, image.pixels)
    assert reading.probabilities == pytest.approx(prediction.probabilities, abs=1e-6)
    assert reading.verdict == "digit" and reading.digit == prediction.digit == int(mnist_data.test_labels[0])
    assert reading.digits == (reading.digit,) and reading.confidence == pytest.approx(prediction.confidence, abs=1e-6)


@pytest.mark.slow
def test_real_test_digits_are_read_as_the_right_digit(bundled, calibration, mnist_data):
    rng = np.random.default_rng(0)
    right = 0
    verdicts = []
    for i in range(MNIST_SAMPLE):
        scale = int(rng.integers(5, 10))
        room = CANVAS - 28 * scale
        canvas = app_canvas(mnist_data.test_images[i].numpy(), scale, *(int(v) for v in rng.integers(0, room + 1, 2)))
        reading = read(bundled, calibration, canvas)
        verdicts.append(reading.verdict)
        right += reading.verdict == "digit" and reading.digit == int(mnist_data.test_labels[i])
    assert right / MNIST_SAMPLE >= 0.97
    assert verdicts.count("not_a_digit") <= 2  # the budget is 0.5%: bench/verdicts.py measures all 10,000


def test_both_polarities_and_the_fallback_read_a_digit(bundled, calibration, mnist_data):
    canvas = app_canvas(mnist_data.test_images[1].numpy())
    paper = 255 - canvas[..., 0]  # black ink on white paper, one channel
    label = int(mnist_data.test_labels[1])
    for drawing, cal in ((canvas, calibration), (paper, calibration), (canvas, FALLBACK)):
        reading = read_drawing(bundled.model, drawing, cal)
        assert (reading.verdict, reading.digit) == ("digit", label)
    assert read_drawing(bundled.model, canvas, FALLBACK).groups[0].distance is None


# ---------------------------------------------------------------- not a digit


@pytest.mark.parametrize(
    "name, canvas, reasons",
    [
        ("a tap of the pen", draw([[(140, 140)]], width=20), {"dot"}),
        ("a big tap", draw([[(60, 200)]], width=40), {"dot"}),
        ("a speck", draw([[(140, 140)]], width=4), {"too_little_ink"}),
        ("a horizontal line", draw([[(40, 140), (240, 140)]], width=16), {"line"}),
        ("a flat diagonal line", draw([[(40, 180), (240, 90)]], width=12), {"line"}),
        ("a filled blob", draw([], fills=[[(60, 80), (200, 50), (230, 180), (150, 240), (50, 200)]]), {"blob"}),
        ("a filled disc", draw([[(140, 140)]], width=150), {"blob"}),
        ("a star", draw([star()], width=14), {"scribble", "unlike_any_digit"}),
        ("a small thin star", draw([star(100, 100, 60, 1.0)], width=8), {"scribble", "unlike_any_digit"}),
        ("a scribble", draw([scribble(0)], width=14), {"scribble", "unlike_any_digit"}),
        ("another scribble", draw([scribble(1, 150)], width=10), {"scribble", "unlike_any_digit"}),
    ],
)
def test_non_digits_are_not_a_digit_with_the_reason(bundled, calibration, name, canvas, reasons):
    reading = read(bundled, calibration, canvas)
    assert reading.verdict == "not_a_digit", f"{name}: {reading.message}"
    assert reading.reason in reasons, f"{name}: {reading.reason}"
    assert reading.digit is None and reading.digits == () and reading.confidence is None
    assert reading.message == f"not a digit: {verdict.REASONS[reading.reason]}"


def test_ink_rules_work_without_calibration(bundled):
    for canvas, reason in ((draw([[(140, 140)]], width=20), "dot"), (draw([[(40, 140), (240, 140)]]), "line")):
        assert read_drawing(bundled.model, canvas, FALLBACK).reason == reason


def test_a_near_vertical_stroke_is_a_one_not_a_line(bundled, calibration):
    reading = read(bundled, calibration, draw([[(150, 30), (120, 250)]], width=16))
    assert (reading.verdict, reading.digit) == ("digit", 1)


def test_blank_drawings_are_empty(bundled, calibration):
    for blank in (np.zeros((CANVAS, CANVAS, 4), np.uint8), np.full((40, 50), 255, np.uint8)):
        reading = read(bundled, calibration, blank)
        assert (reading.verdict, reading.reason, reading.groups, reading.probabilities) == (
            "not_a_digit",
            "empty",
            (),
            None,
        )
        assert reading.empty


# ---------------------------------------------------------------- strokes that belong together


FOUR_APART = [  # the upright is drawn in two pieces, leaving gaps where it crosses the bar
    [(130, 40), (70, 170), (215, 170)],
    [(165, 50), (165, 140)],
    [(165, 200), (165, 260)],
]
FIVE_DETACHED_FLAG = [[(100, 60), (95, 130), (160, 130), (190, 180), (160, 240), (90, 235)], [(130, 45), (210, 45)]]
SEVEN_WITH_BAR = [[(60, 50), (210, 50), (120, 250)], [(95, 150), (135, 150)]]


@pytest.mark.parametrize("strokes, digit", [(FOUR_APART, 4), (FIVE_DETACHED_FLAG, 5), (SEVEN_WITH_BAR, 7)])
def test_a_digit_of_separate_strokes_stays_one_digit(bundled, calibration, strokes, digit):
    canvas = draw(strokes, width=16)
    assert count_components(canvas[..., 0] > 50, diagonal=True) == len(strokes)  # the strokes really do not touch
    reading = read(bundled, calibration, canvas)
    assert len(reading.groups) == 1
    assert (reading.verdict, reading.digit) == ("digit", digit), reading.message


def test_overlap_and_small_level_pieces_belong_together():
    body = Box(60, 100, 120, 250)
    assert belong_together(body, Box(90, 40, 200, 80))  # mostly above the body: a bar or flag
    assert belong_together(body, Box(125, 100, 185, 140))  # a small detached flag, level with the top
    assert not belong_together(body, Box(150, 110, 210, 240))  # a digit-sized neighbour
    assert not belong_together(body, Box(200, 100, 240, 140))  # small but far
    assert not belong_together(body, Box(125, 0, 185, 40))  # small and near, but above, not level


# ---------------------------------------------------------------- several digits


@pytest.mark.slow
def test_numbers_are_read_left_to_right(bundled, calibration, mnist_data):
    rng = np.random.default_rng(3)
    images, labels = mnist_data.test_images.numpy(), mnist_data.test_labels.numpy()
    exact = 0
    for _ in range(NUMBERS):
        n = int(rng.integers(2, 5))
        picks = rng.choice(len(images), n, replace=False)
        bolds = rng.choice([0, 0, 0.5, 1], n)  # mixed stroke widths: up to `scale` px wider on each side
        gaps = [int(g) for g in rng.integers(10, 30, n - 1)]
        for scale in (4, 3, 2):  # the largest that fits across the canvas
            pieces = [enlarge(images[i], scale, round(b * scale)) for i, b in zip(picks, bolds, strict=True)]
            if sum(p.shape[1] for p in pieces) + sum(gaps) <= CANVAS - 20:
                break
        offsets = [int(o) for o in rng.integers(-20, 21, n)]
        canvas, boxes = number_canvas(pieces, gaps, offsets)
        reading = read(bundled, calibration, canvas)
        assert len(reading.groups) == n  # the segmentation is model-independent: always right here
        for group, box in zip(reading.groups, boxes, strict=True):
            assert box.left <= group.box.left < group.box.right <= box.right
            assert box.top <= group.box.top < group.box.bottom <= box.bottom
        digits = [int(labels[i]) for i in picks]
        exact += reading.verdict == "several_digits" and list(reading.digits) == digits
        if reading.verdict == "several_digits":
            assert reading.digit is None and reading.probabilities is None
            assert reading.confidence == pytest.approx(np.prod([g.confidence for g in reading.groups]))
    assert exact >= NUMBERS - 2


def test_a_number_with_a_non_digit_is_not_a_digit(bundled, calibration, mnist_data):
    piece = enlarge(mnist_data.test_images[0].numpy(), 4)
    canvas, _ = number_canvas([piece], [], [0])
    gray = canvas[..., 0].copy()
    gray[:, 160:] = draw([star(215, 140, 55)], width=10)[:, 160:, 0]
    reading = read(bundled, calibration, rgba(gray))
    assert len(reading.groups) == 2 and reading.verdict == "not_a_digit"
    assert [g.verdict for g in reading.groups] == ["digit", "not_a_digit"]


def group(digit: int, confidence: float, runner_up: int, second: float, verdict="digit") -> GroupReading:
    probs = np.full(10, (1 - confidence - second) / 8)
    probs[digit], probs[runner_up] = confidence, second
    ink = InkStats(0.5, 1.5, 10.0, 1, 0, 0.6)
    return GroupReading(
        Box(0, 0, 1, 1), np.zeros((28, 28), np.float32), verdict, digit, confidence, tuple(probs), 1.0, None, ink
    )


def test_unsure_shows_the_top_two_and_several_digits_mark_their_unsure_ones():
    single = combine((group(4, 0.5, 9, 0.45, "unsure"),))
    assert (single.verdict, single.digit, single.digits) == ("unsure", 4, (4,))
    assert [(c.digit, c.probability) for c in single.top_two] == [(4, 0.5), (9, 0.45)]
    assert single.message == "unsure: 4 (50.0%) or 9 (45.0%)"
    number = combine((group(1, 0.99, 7, 0.005), group(4, 0.5, 9, 0.45, "unsure"), group(2, 0.9, 3, 0.05)))
    assert (number.verdict, number.digit, number.digits, number.top_two) == ("several_digits", None, (1, 4, 2), None)
    assert number.confidence == pytest.approx(0.99 * 0.5 * 0.9)
    assert [g.verdict for g in number.groups] == ["digit", "unsure", "digit"]
    assert number.message == "142 (44.5%)"


MAX_DISTANCE = 100.0  # a made-up calibration's threshold for the cut-choice tests below
CUT_CALIBRATION = Calibration(torch.zeros(10, 2), torch.eye(2), MAX_DISTANCE, "made up for the test")


def piece(digit, confidence, distance, height=100, verdict="digit", reason=None) -> GroupReading:
    """A group of a cut (or a whole group) with the numbers best_reading looks at."""
    probs = np.full(10, (1 - confidence) / 9)
    probs[digit] = confidence
    ink = InkStats(0.5, 1.5, 10.0, 1, 0, 0.6)
    box, pixels = Box(0, 0, 60, height), np.zeros((28, 28), np.float32)
    shown = None if verdict == "not_a_digit" else digit
    return GroupReading(box, pixels, verdict, shown, confidence, tuple(probs), distance, reason, ink)


def digits_of(groups) -> tuple:
    return tuple(g.digit for g in groups)


def test_a_refused_group_is_read_from_a_cut_whose_pieces_are_typical_digits_even_if_one_is_unsure():
    whole = piece(8, 0.6, 130.0, verdict="not_a_digit", reason="unlike_any_digit")
    loose = (piece(9, 0.95, 30.0), piece(6, 0.45, 60.0, verdict="unsure"))
    assert digits_of(verdict.best_reading(whole, [loose], CUT_CALIBRATION)) == (9, 6)
    # the same cut of a group an ink rule refused (a blob, a scribble) is not taken: stars and blobs cut in
    # two often read as two unsure digits
    blob = piece(8, 0.6, 130.0, verdict="not_a_digit", reason="blob")
    assert verdict.best_reading(blob, [loose], CUT_CALIBRATION) == (blob,)
    # nor when the pieces are far from the digits together, or both unsure, or one too short
    far = (piece(9, 0.95, 80.0), piece(6, 0.7, 60.0))
    both_unsure = (piece(9, 0.5, 20.0, verdict="unsure"), piece(6, 0.45, 20.0, verdict="unsure"))
    short = (piece(9, 0.95, 20.0), piece(6, 0.7, 20.0, height=60))
    for pair in (far, both_unsure, short):
        assert verdict.best_reading(whole, [pair], CUT_CALIBRATION) == (whole,), pair
    # uncalibrated, nothing says the pieces are digits: only a confident cut is taken
    assert verdict.best_reading(whole, [loose], FALLBACK) == (whole,)


def test_a_cut_is_chosen_for_typical_pieces_not_only_sure_ones():
    whole = piece(4, 0.99, 170.0, verdict="not_a_digit", reason="unlike_any_digit")
    sliver = (piece(4, 0.97, 50.0), piece(1, 0.97, 60.0))  # the 4 and a sliver of the second 4 read as 1
    right = (piece(4, 0.95, 30.0), piece(4, 0.96, 35.0))  # a little less sure, nearer the digits
    assert digits_of(verdict.best_reading(whole, [sliver, right], CUT_CALIBRATION)) == (4, 4)
    assert digits_of(verdict.best_reading(whole, [right, sliver], CUT_CALIBRATION)) == (4, 4)


def test_a_sure_whole_digit_needs_confident_pieces_to_be_cut():
    whole = piece(0, 0.75, 72.0)  # read as a 0, sure but atypical
    loose = (piece(1, 0.95, 20.0), piece(1, 0.7, 29.0))  # a piece under SPLIT_CONFIDENT: the 0 stays
    assert verdict.best_reading(whole, [loose], CUT_CALIBRATION) == (whole,)
    confident = (piece(1, 0.95, 20.0), piece(1, 0.95, 29.0))
    assert digits_of(verdict.best_reading(whole, [confident], CUT_CALIBRATION)) == (1, 1)


def test_reading_as_json_has_the_cli_keys(bundled, calibration):
    out = json.loads(json.dumps(read(bundled, calibration, draw([[(140, 140)]], width=20)).to_dict()))
    assert {"verdict", "digit", "digits", "confidence", "probabilities", "reason", "groups"} <= set(out)
    assert out["verdict"] in VERDICTS and out["reason"] == "dot" and len(out["probabilities"]) == 10
    assert out["groups"][0]["box"][0] < out["groups"][0]["box"][2]


# ---------------------------------------------------------------- components


def test_components_8_connected_for_ink_and_4_connected_for_holes():
    mask = np.zeros((9, 9), bool)
    mask[1, 1] = mask[2, 2] = True  # diagonal neighbours: one piece of ink
    mask[5:8, 5:8] = True
    mask[6, 6] = False  # a ring: one hole
    assert count_components(mask, diagonal=True) == 2
    assert count_components(mask, diagonal=False) == 3
    assert count_holes(mask) == 1
    eight = np.zeros((7, 5), bool)
    eight[[0, 3, 6], 1:4] = True
    eight[:, [0, 4]] = True
    assert count_holes(eight) == 2
    assert count_holes(np.zeros((3, 3), bool)) == 0


# ---------------------------------------------------------------- calibration


def test_stored_calibration_belongs_to_the_bundled_weights(calibration, tmp_path):
    assert calibration.calibrated and calibration.means.shape[0] == 10
    run = tmp_path / "run"
    run.mkdir()
    (run / WEIGHTS_FILE).write_bytes((BUNDLED_DIR / WEIGHTS_FILE).read_bytes())
    save_calibration(run, calibration)
    again = load_calibration(run)
    assert torch.equal(again.whiten, calibration.whiten) and again.max_distance == calibration.max_distance
    (run / WEIGHTS_FILE).write_bytes(b"other weights")
    assert load_calibration(run) is None  # stale: made for other weights
    (run / verdict.CALIBRATION_FILE).write_bytes(b"garbage")
    with pytest.raises(MnistError, match="not a valid calibration"):
        load_calibration(run)


@pytest.mark.slow
def test_calibration_rejects_its_quantile_of_held_out_digits(bundled, mnist_data):
    quantile = 0.05
    cal = calibrate(
        bundled.model, mnist_data.train_images, mnist_data.train_labels, quantile=quantile, fit_samples=2000,
        threshold_samples=1000, seed=1,
    )  # fmt: skip
    held = torch.randperm(60_000, generator=torch.Generator().manual_seed(1))[2000:3000]
    feats = verdict.all_features(bundled.model, verdict.preprocessed_digits(mnist_data.train_images[held]))
    beyond = float((verdict.distances(cal, feats) > cal.max_distance).float().mean())
    assert beyond == pytest.approx(quantile, abs=0.005)
    assert cal.source.startswith("computed")


def test_without_stored_calibration_or_mnist_the_fallback_is_used(bundled, monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path / "nothing"))
    upload = type(bundled)(bundled.model, bundled.record, tmp_path / "upload.safetensors")
    assert calibration_for(upload) is FALLBACK
    assert calibration_for(bundled).source == "stored with the model"


def test_a_calibration_for_another_feature_size_is_an_error(bundled):
    wrong = Calibration(torch.zeros(10, 3), torch.eye(3), 1.0, "test")
    with pytest.raises(MnistError, match="features"):
        read_drawing(bundled.model, draw([[(140, 60), (140, 220)]]), wrong)


# ---------------------------------------------------------------- any array


@pytest.mark.slow
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    hnp.arrays(
        np.uint8,
        st.one_of(
            st.tuples(st.integers(1, 64), st.integers(1, 64)),
            st.tuples(st.integers(1, 40), st.integers(1, 40), st.just(4)),
        ),
        elements=st.integers(0, 255),
    )
)
def test_any_image_array_gives_one_well_formed_verdict(bundled, array):
    reading = read_drawing(bundled.model, array, FALLBACK)
    assert reading.verdict in VERDICTS
    assert (reading.reason is not None) == (reading.verdict == "not_a_digit")
    assert len(reading.digits) == (0 if reading.verdict == "not_a_digit" else len(reading.groups))
    for g in reading.groups:
        assert 0 <= g.box.left < g.box.right <= array.shape[1] and 0 <= g.box.top < g.box.bottom <= array.shape[0]
        assert g.pixels.shape == (28, 28) and np.isfinite(g.probabilities).all()


# ---------------------------------------------------------------- bench/verdicts.py's drawings and figures


def test_bench_numbers_fit_the_canvas_and_split_into_their_digits(mnist_data):
    from bench import verdicts as bench

    rng = np.random.default_rng(0)
    images, labels = mnist_data.test_images.numpy(), mnist_data.test_labels.numpy()
    for _ in range(30):
        canvas, digits = bench.compose_number(images, labels, rng)
        assert canvas.shape == (CANVAS, CANVAS, 4) and 2 <= len(digits) <= 4
        segments = verdict.split_groups(verdict.normalized_ink(canvas))
        assert len(segments.boxes) == len(digits)
        boxes = segments.boxes
        assert all(a.right <= b.left for a, b in zip(boxes, boxes[1:], strict=False))  # apart, left to right


def test_bench_figures_check_the_targets():
    from bench import verdicts as bench

    latency = {"read_drawing": {"p50_ms": 12.0, "p99_ms": 20.0}, "predict_canvas": {"p50_ms": 2.0, "p99_ms": 4.0}}
    figures = bench.verdict_figures(
        [0.004, 0.007], {"dot": [1.0, 0.9]}, [0.98, 0.99], [0.95, 0.96], latency,
        test_digits=10_000, per_kind=300, number_count=1000, full=True,
    )  # fmt: skip
    status = {f.key: f.status for f in figures}
    assert status["mnist_rejected"] == "FAIL"  # mean 0.55% > 0.5%
    assert status["numbers_exact"] == "PASS" and status["read_p50_ms"] == "FAIL"
    by_key = {f.key: f for f in figures}
    assert by_key["caught_dot"].value == pytest.approx(0.95) and "seeds: 100.00%, 90.00%" in by_key["caught_dot"].note
