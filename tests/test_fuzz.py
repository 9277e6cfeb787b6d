"""Property tests: the canvas path turns ANY array into a valid result or a clear ValueError.

Whatever a browser, an upload or a buggy caller hands to preprocess_canvas / predict_canvas (any
shape, dtype, NaN, inf, negative values, huge sides), the answer is either a well-formed image and
prediction or an MnistError (a ValueError) with a message: never another exception, never NaN.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mnist.constants import IMAGE_SIZE, NUM_CLASSES
from mnist.errors import MnistError
from mnist.models import build_model
from mnist.predict import Prediction, predict_canvas
from mnist.preprocess import MAX_CANVAS_SIDE, CanvasImage, preprocess_canvas

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# numpy's RuntimeWarnings (overflow, invalid value in divide...) are silent NaN factories: make them failures.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")
DTYPES = [np.uint8, np.uint16, np.int8, np.int32, np.int64, np.float16, np.float32, np.float64, np.bool_]
FILLS = ["zeros", "full", "random", "stroke", "noise01", "nan", "inf", "negative", "huge", "bright_page"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("cnn-bn-fast").eval()


# ---------------------------------------------------------------- strategies


def shapes():
    side = st.integers(1, 48)
    return st.one_of(
        st.tuples(side, side),  # (H, W)
        st.tuples(side, side, st.sampled_from([1, 3, 4])),  # valid channel counts
        st.tuples(side, side, st.sampled_from([0, 2, 5, 7])),  # invalid channel counts
        st.tuples(st.integers(0, 3), st.integers(0, 3)),  # tiny, including empty
        st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)),  # 4-D
        st.tuples(st.integers(0, 30)),  # 1-D
        st.just(()),  # 0-D
        # One side over the 2048 limit, the other thin so the array stays small.
        st.tuples(st.integers(MAX_CANVAS_SIDE - 1, MAX_CANVAS_SIDE + 3), st.integers(1, 3)),
        st.tuples(st.integers(1, 3), st.integers(MAX_CANVAS_SIDE - 1, MAX_CANVAS_SIDE + 3), st.sampled_from([1, 4])),
    )


def ink_value(dtype) -> float:
    if dtype == np.bool_:
        return 1
    if np.issubdtype(dtype, np.integer):
        return min(255, np.iinfo(dtype).max)
    return 1.0


def largest_value(dtype):
    """The dtype's largest value (numpy's iinfo refuses bool: True)."""
    if dtype == np.bool_:
        return True
    return np.finfo(dtype).max if dtype.kind == "f" else np.iinfo(dtype).max


@st.composite
def built_arrays(draw):
    """Arrays made with numpy from a drawn seed: cheap even when large, covering special fills."""
    shape = draw(shapes())
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    fill = draw(st.sampled_from(FILLS))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = int(np.prod(shape))
    if fill == "zeros":
        arr = np.zeros(shape, dtype)
    elif fill == "full":  # all ink
        arr = np.full(shape, ink_value(dtype), dtype)
    elif fill == "bright_page":  # white page with one dark dot
        arr = np.full(shape, ink_value(dtype), dtype)
        if n:
            arr.reshape(-1)[rng.integers(n)] = 0
    elif fill == "stroke":  # black page, a line of ink
        arr = np.zeros(shape, dtype)
        if arr.ndim >= 2 and n:
            arr[rng.integers(shape[0]), ...] = ink_value(dtype)
    elif fill == "noise01":
        arr = rng.random(shape).astype(dtype) if dtype.kind == "f" else rng.integers(0, 2, shape).astype(dtype)
    elif fill == "random":
        if dtype == np.bool_:
            arr = rng.integers(0, 2, shape).astype(bool)
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            arr = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
        else:
            arr = (rng.standard_normal(shape) * 300).astype(dtype)
    elif fill == "negative":
        arr = np.zeros(shape, dtype)
        if dtype.kind in "if" and n:
            arr.reshape(-1)[rng.integers(n)] = -1
    elif fill == "huge":
        arr = np.zeros(shape, dtype)
        if n:
            arr.reshape(-1)[rng.integers(n)] = largest_value(dtype)
    else:  # nan / inf somewhere in an otherwise valid drawing
        arr = rng.random(shape).astype(dtype) if dtype.kind == "f" else np.zeros(shape, dtype)
        if dtype.kind == "f" and n:
            arr.reshape(-1)[rng.integers(n)] = np.nan if fill == "nan" else rng.choice([np.inf, -np.inf])
    return arr


def hyp_arrays():
    """Element-level arrays from hypothesis itself (shrinks well): every float value, incl. NaN and inf."""
    shape = hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=12)
    return st.one_of(
        hnp.arrays(np.float32, shape),
        hnp.arrays(np.float64, shape),
        hnp.arrays(np.uint8, shape),
        hnp.arrays(np.int16, shape),
        hnp.arrays(np.bool_, shape),
        hnp.arrays(np.float64, shape, elements=st.floats(0, 1)),
        hnp.arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12), st.just(4))),
    )


any_array = st.one_of(built_arrays(), hyp_arrays())


# ---------------------------------------------------------------- checks


def check_image(image) -> None:
    assert isinstance(image, CanvasImage)
    if image.empty:
        assert image.pixels is None
        return
    px = image.pixels
    assert isinstance(px, np.ndarray)
    assert px.shape == (IMAGE_SIZE, IMAGE_SIZE)
    assert px.dtype == np.float32
    assert np.isfinite(px).all()
    assert px.min() >= 0.0 and px.max() <= 1.0
    assert px.max() > 0  # a non-empty image has some ink


def check_prediction(image, prediction) -> None:
    check_image(image)
    if image.empty:
        assert prediction is None
        return
    assert isinstance(prediction, Prediction)
    probs = prediction.probabilities
    assert len(probs) == NUM_CLASSES
    assert all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in probs)
    assert math.isclose(sum(probs), 1.0, abs_tol=1e-4)
    assert 0 <= prediction.digit < NUM_CLASSES
    assert prediction.confidence == probs[prediction.digit] == max(probs)


def check_error(exc: Exception) -> None:
    # MnistError is a ValueError: the app shows its message to the user.
    assert isinstance(exc, MnistError), f"{type(exc).__name__} is not a clear MnistError: {exc}"
    assert isinstance(exc, ValueError)
    assert len(str(exc)) > 10


def run_preprocess(array):
    try:
        image = preprocess_canvas(array)
    except Exception as exc:  # noqa: BLE001 - the property under test is which exceptions escape
        check_error(exc)
        return None
    check_image(image)
    return image


# ---------------------------------------------------------------- properties


@FUZZ
@given(any_array)
def test_preprocess_any_array_is_valid_or_a_clear_value_error(array):
    run_preprocess(array)


@FUZZ
@given(any_array)
def test_predict_any_array_is_valid_or_a_clear_value_error(model, array):
    try:
        image, prediction = predict_canvas(model, array)
    except Exception as exc:  # noqa: BLE001
        check_error(exc)
        return
    check_prediction(image, prediction)


@FUZZ
@given(
    st.one_of(
        st.none(),
        st.text(max_size=5),
        st.integers(),
        st.floats(),
        st.lists(st.lists(st.integers(-5, 300), max_size=6), max_size=6),  # ragged nested lists
        st.lists(st.lists(st.floats(), min_size=3, max_size=3), min_size=3, max_size=3),
        st.binary(max_size=20),
        st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    )
)
def test_non_array_inputs_are_clear_value_errors_or_valid(obj):
    run_preprocess(obj)


@settings(FUZZ, max_examples=100)
@given(
    h=st.integers(1, 64),
    w=st.integers(1, 64),
    channels=st.sampled_from([None, 1, 3, 4]),
    dtype=st.sampled_from([np.uint8, np.float32, np.float64]),
    seed=st.integers(0, 2**32 - 1),
)
def test_valid_images_never_raise(model, h, w, channels, dtype, seed):
    """In-range pixels in a valid layout must give a result, never an error."""
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels is None else (h, w, channels)
    array = rng.integers(0, 256, shape).astype(dtype)
    if dtype != np.uint8:
        array = array / 255.0 if rng.random() < 0.5 else array  # 0..1 or 0..255 floats
    image, prediction = predict_canvas(model, array)
    check_prediction(image, prediction)


@FUZZ
@given(st.integers(1, 40), st.integers(1, 40), st.sampled_from(DTYPES))
def test_uniform_arrays_are_empty(h, w, dtype):
    """All zero or all ink: no digit, whatever the dtype."""
    for value in (0, ink_value(np.dtype(dtype))):
        image = preprocess_canvas(np.full((h, w), value, dtype))
        assert image.empty, (dtype, value)


# ---------------------------------------------------------------- explicit corners


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((1, 1), np.uint8),
        np.full((1, 1), 255, np.uint8),
        np.ones((1, 1, 4), np.float32),
        np.array([[True]]),
        np.eye(28, dtype=bool),
        np.eye(5, dtype=np.uint16) * 65535,
        np.eye(7, dtype=np.float64),
    ],
)
def test_small_and_odd_dtypes_give_valid_images(model, array):
    image, prediction = predict_canvas(model, array)
    check_prediction(image, prediction)


def test_single_ink_pixel_in_largest_canvas_is_a_digit_image(model):
    array = np.zeros((MAX_CANVAS_SIDE, MAX_CANVAS_SIDE), np.uint8)
    array[0, 0] = array[-1, -1] = 255  # two far corners: the box is scaled down ~100x
    image, prediction = predict_canvas(model, array)
    check_prediction(image, prediction)
    assert not image.empty


@pytest.mark.parametrize(
    ("array", "words"),
    [
        (np.zeros((MAX_CANVAS_SIDE + 1, 4), np.uint8), "2048"),
        (np.zeros((4, MAX_CANVAS_SIDE + 1, 3), np.uint8), "2048"),
        (np.zeros((0, 5), np.uint8), "no pixels"),
        (np.zeros((5, 5, 2), np.uint8), "shape"),
        (np.zeros((5, 5, 5), np.uint8), "shape"),
        (np.zeros((2, 2, 2, 2), np.uint8), "shape"),
        (np.zeros(7, np.uint8), "shape"),
        (np.float32(0.5), "shape"),
        (np.full((4, 4), np.nan), "NaN"),
        (np.full((4, 4), np.inf, np.float32), "infinite"),
        (-np.eye(4), "negative"),
        (np.eye(4) * 1000, "255"),
        (np.eye(4).astype(np.complex64), "numbers"),
        (np.array([["a", "b"], ["c", "d"]]), "numbers"),
        (np.array([[object(), None]], dtype=object), "numbers"),
        ([[1, 2], [3]], "array"),
    ],
)
def test_invalid_arrays_name_the_problem(model, array, words):
    for call in (preprocess_canvas, lambda a: predict_canvas(model, a)):
        with pytest.raises(ValueError, match=words) as info:
            call(array)
        check_error(info.value)


@FUZZ
@given(st.integers(1, 30), st.integers(1, 30), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_two_level_images_are_empty_or_valid(h, w, a, b):
    """Two flat grey levels: contrast below the threshold is blank, anything else a valid image."""
    assume(h * w >= 2)
    array = np.full((h, w), a, np.float32)
    array[h // 2, w // 2] = b
    image = preprocess_canvas(array)
    check_image(image)
    if abs(a - b) < 0.04:
        assert image.empty


def test_a_model_with_broken_weights_never_returns_nan_probabilities():
    """Belt and braces: even a NaN-producing model gives an error, not a NaN prediction."""
    broken = build_model("cnn-bn-fast").eval()
    with torch.no_grad():
        broken[-1].weight.fill_(float("nan"))
    drawing = np.zeros((50, 50), np.uint8)
    drawing[10:40, 24:27] = 255
    with pytest.raises(MnistError, match="NaN"):
        predict_canvas(broken, drawing)
