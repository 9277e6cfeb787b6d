import numpy as np
import pytest
import torch
from helpers import CANVAS_PX as CANVAS
from helpers import paste_digit as draw_on_canvas

from mnist.constants import IMAGE_SIZE
from mnist.preprocess import OPAQUE_ALPHA, CanvasError, ink_map, preprocess_canvas


@pytest.fixture(scope="module")
def digit(mnist_data):
    return mnist_data.test_images[0].numpy()  # a 7


def test_shifted_digit_gives_the_same_centred_image(digit):
    a = preprocess_canvas(draw_on_canvas(digit, 5, 0, 0)).pixels
    b = preprocess_canvas(draw_on_canvas(digit, 5, 130, 120)).pixels
    assert np.array_equal(a, b)


def test_rescaled_digit_gives_nearly_the_same_centred_image(digit):
    small = preprocess_canvas(draw_on_canvas(digit, 4, 20, 30)).pixels
    large = preprocess_canvas(draw_on_canvas(digit, 9, 10, 5)).pixels
    assert small.shape == large.shape == (IMAGE_SIZE, IMAGE_SIZE)
    assert np.abs(small - large).mean() < 0.03
    # The result sits like MNIST: 20-pixel box, centre of mass at the centre.
    ys, xs = np.nonzero(large > 0.05)
    assert max(ys.max() - ys.min(), xs.max() - xs.min()) + 1 <= 21
    weights = large / large.sum()
    cy, cx = (weights.sum(1) * np.arange(28)).sum(), (weights.sum(0) * np.arange(28)).sum()
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5


def test_preprocessed_canvas_resembles_the_original_mnist_digit(digit):
    out = preprocess_canvas(draw_on_canvas(digit, 10, 0, 0)).pixels
    original = digit.astype(np.float32) / 255
    corr = np.corrcoef(out.ravel(), original.ravel())[0, 1]
    assert corr > 0.85


def test_polarity_and_formats_agree(digit):
    white_on_black = draw_on_canvas(digit, 6, 50, 40, rgba=False)
    reference = preprocess_canvas(white_on_black).pixels
    black_on_white = 255 - white_on_black
    assert np.allclose(preprocess_canvas(black_on_white).pixels, reference, atol=1e-5)
    rgb = np.repeat(black_on_white[..., None], 3, axis=2)
    assert np.allclose(preprocess_canvas(rgb).pixels, reference, atol=1e-2)
    as_float = white_on_black.astype(np.float64) / 255
    assert np.allclose(preprocess_canvas(as_float).pixels, reference, atol=1e-5)
    # Dark strokes on a transparent canvas: alpha carries the ink.
    transparent = np.zeros((CANVAS, CANVAS, 4), dtype=np.uint8)
    transparent[..., 3] = white_on_black
    assert np.allclose(preprocess_canvas(transparent).pixels, reference, atol=1e-5)


def test_blank_drawings_are_empty_not_predictions():
    for blank in (np.zeros((280, 280, 4), np.uint8), np.full((50, 60), 255, np.uint8), np.zeros((1, 1))):
        image = preprocess_canvas(blank)
        assert image.empty
        with pytest.raises(ValueError, match="empty"):
            image.to_tensor()


def test_output_is_normalised_like_training(digit):
    from mnist.data import normalize

    image = preprocess_canvas(draw_on_canvas(digit, 10, 0, 0))
    tensor = image.to_tensor()
    assert tensor.shape == (1, 1, 28, 28)
    assert torch.allclose(tensor, normalize(torch.from_numpy(image.pixels)[None]))


@pytest.mark.parametrize(
    "array, words",
    [
        (np.zeros((5, 5, 2)), "shape"),
        (np.zeros((2, 3, 4, 5)), "shape"),
        (np.full((5, 5), np.nan), "NaN"),
        (np.full((5, 5), -3.0), "negative"),
        (np.full((5, 5), 1e6), "0..255"),
        (np.zeros((3000, 10)), "largest side"),
        (np.array([["a"]]), "numbers"),
        (np.full((5, 5), 1e300), "absurdly large"),  # float64 beyond float32's range
        (np.full((5, 5), -2, dtype=np.int16), "negative"),
        (np.full((5, 5), 300, dtype=np.int32), "0..255"),
    ],
)
def test_bad_arrays_are_clear_value_errors(array, words):
    with pytest.raises(CanvasError, match=words):
        preprocess_canvas(array)


def ink_map_from_a_float_copy(array: np.ndarray) -> np.ndarray:
    """The ink map as it was computed before it read only the channels it uses: the whole image to
    float32 first. The oracle for the channel-by-channel version."""
    x = array.astype(np.float32)
    high = float(x.max())
    if array.dtype == np.uint16:
        x = x / 65535.0
    elif high > 1.0:
        x = x / 255.0
    if x.ndim == 3 and x.shape[2] == 4 and float(x[..., 3].min()) < OPAQUE_ALPHA:
        return np.ascontiguousarray(x[..., 3])
    if x.ndim == 3 and x.shape[2] >= 3:
        gray = x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114
    else:
        gray = x.reshape(x.shape[:2])
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return 1.0 - gray if float(np.median(border)) > 0.5 else gray


def random_images():
    """Images of every kind the app and the CLI meet, with random strokes: (name, array)."""
    rng = np.random.default_rng(7)
    ink = (rng.random((280, 280)) < 0.1).astype(np.uint8) * rng.integers(1, 256, (280, 280), dtype=np.uint8)
    opaque = np.dstack([ink, ink, ink, np.full_like(ink, 255)])  # the Sketch canvas: white on opaque black
    yield "opaque RGBA canvas", opaque
    yield "transparent RGBA canvas", np.dstack([np.full_like(ink, 30), ink, ink, ink])  # ink only in alpha
    yield "black on white RGB", 255 - opaque[..., :3]
    yield "grey uint8 (H, W, 1)", ink[..., None]
    yield "grey float64 in 0..1", ink / 255.0
    yield "grey float32 in 0..255", ink.astype(np.float32)
    yield "uint16 RGB", np.dstack([ink.astype(np.uint16) * 257] * 3)
    yield "bool", ink > 128
    yield "0/1 uint8 (already in 0..1)", (ink > 0).astype(np.uint8)


@pytest.mark.parametrize("name, array", list(random_images()), ids=lambda v: v if isinstance(v, str) else "")
def test_ink_map_reads_only_its_channels_and_matches_a_whole_float_copy(name, array):
    got = ink_map(array)
    assert got.dtype == np.float32 and got.shape == array.shape[:2] and got.flags.c_contiguous
    assert np.array_equal(got, ink_map_from_a_float_copy(array)), name
    assert got.max() > 0.5  # the strokes are there, as ink
