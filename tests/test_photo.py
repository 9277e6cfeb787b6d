"""mnist.photo: photos of digits on paper become clean ink maps the verdict reads, and bad files get plain refusals."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from bench.photos import CONDITIONS, FRAME, TWELVE_MEGAPIXELS, paper_photo
from mnist.photo import MAX_FILE_BYTES, WORKING_SIDE, PictureError, read_picture, read_picture_file

REFUSAL_SECONDS = 1.0  # a bad file is refused at once, before any decoding work
LARGE_PHOTO_SECONDS = 3.0  # a 12-megapixel JPEG (about 0.3 s on 2 busy cores): decoded small, never whole
ORIENTATION_TAG = 0x0112  # EXIF
ROTATED_90_CW = 6  # EXIF orientation: show the stored pixels turned 90 degrees clockwise


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header (IHDR) claims width x height, with its checksum fixed: a decompression bomb's header."""
    data = bytearray(png_bytes(np.zeros((1, 1), np.uint8)))
    start = 8 + 4  # signature, then the IHDR chunk's length
    data[start + 4 : start + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[start : start + 4 + 13]))
    data[start + 4 + 13 : start + 4 + 17] = struct.pack(">I", crc)
    return bytes(data)


def half_of(data: bytes) -> bytes:
    return data[: len(data) // 2]


def noisy_png() -> bytes:
    return png_bytes(np.random.default_rng(0).integers(0, 256, (300, 300), dtype=np.uint8))


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "The file is empty"),
        (b"Dear diary, today I wrote a 7.\n" * 20, "not a PNG or JPEG picture"),
        (png_claiming_size(20_000, 20_000), "too large"),
        (png_claiming_size(8_000, 6_000), "too large (8000 x 6000 pixels)"),
        (half_of(noisy_png()), "cut short or damaged"),
        (b"\0" * (MAX_FILE_BYTES + 1), "too large (20 MB)"),
    ],
    ids=["empty", "text", "bomb-header", "48-megapixels", "truncated", "too-many-bytes"],
)
def test_bad_files_get_a_plain_refusal_at_once(data, words):
    start = time.perf_counter()
    with pytest.raises(PictureError) as caught:
        read_picture(data)
    assert time.perf_counter() - start < REFUSAL_SECONDS
    assert words in str(caught.value)
    assert "Traceback" not in str(caught.value) and "PIL" not in str(caught.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(PictureError, match="no such file"):
        read_picture_file(tmp_path / "nowhere.jpg")


def test_a_transparent_drawing_reads_its_alpha_as_ink():
    """Strokes on a transparent canvas (as the app's canvas saves them): alpha is the ink, whatever the colour."""
    rgba = np.zeros((100, 100, 4), np.uint8)
    rgba[20:80, 45:55] = (10, 10, 10, 255)
    out = read_picture(png_bytes(rgba))
    assert out.dtype == np.uint8 and out.shape == (100, 100)
    assert (out[20:80, 45:55] == 255).all() and out.sum() == 255 * 60 * 10


# --- photos of digits on paper, read by the bundled model ----------------------------------------------------

DIGITS = range(10)  # the first ten MNIST test digits: 7 2 1 0 4 1 4 9 5 9
MIN_RIGHT = 9  # of the ten, per condition


@pytest.fixture(scope="module")
def reader():
    """The bundled model and its stored calibration: what Sketch and `python -m mnist predict` use."""
    from mnist.checkpoint import load_checkpoint
    from mnist.verdict import calibration_for, read_drawing

    checkpoint = load_checkpoint()
    calibration = calibration_for(checkpoint)
    return lambda array: read_drawing(checkpoint.model, array, calibration)


@pytest.mark.slow
@pytest.mark.parametrize("condition", CONDITIONS)
def test_photos_of_test_digits_are_read_right(condition, mnist_data, reader):
    images, labels = mnist_data.test_images.numpy(), mnist_data.test_labels.numpy()
    rng = np.random.default_rng(7)
    read = [reader(read_picture(paper_photo(images[i], condition, rng))) for i in DIGITS]
    right = [r.digit == int(labels[i]) and r.verdict in ("digit", "unsure") for r, i in zip(read, DIGITS, strict=True)]
    assert sum(right) >= MIN_RIGHT, [(int(labels[i]), r.message) for r, i in zip(read, DIGITS, strict=True)]


@pytest.mark.parametrize("condition", CONDITIONS)
def test_blank_paper_has_no_ink(condition, reader):
    """Texture, uneven light, a shadow band, JPEG noise: no digit, and nothing at all for the verdict to read."""
    rng = np.random.default_rng(3)
    for _ in range(3):
        array = read_picture(paper_photo(None, condition, rng))
        assert array.dtype == np.uint8 and array.shape == FRAME
        assert not array.any()
        assert reader(array).reason == "empty"


@pytest.mark.parametrize(
    "radius, reasons", [(1, {"empty"}), (3, {"too_little_ink"}), (12, {"too_little_ink", "dot", "blob"})]
)
def test_a_speck_on_the_paper_is_not_a_digit(radius, reasons, reader):
    rng = np.random.default_rng(5)
    speck = np.zeros((28, 28), np.uint8)
    rows, cols = np.mgrid[0:28, 0:28]
    speck[(rows - 14) ** 2 + (cols - 14) ** 2 <= radius**2] = 255  # a dot `radius` of 28 wide in its square
    photo = paper_photo(speck, "small", rng)  # the square is a seventh of the frame's height: 69 px
    reading = reader(read_picture(photo))
    assert reading.verdict == "not_a_digit" and reading.reason in reasons


def test_a_phone_photo_taken_sideways_is_turned_upright(mnist_data, reader):
    """Phones store the sensor's pixels and an EXIF orientation tag: the picture is read as it is shown."""
    upright = Image.open(io.BytesIO(paper_photo(mnist_data.test_images[0].numpy(), "plain", np.random.default_rng(1))))
    sideways = upright.transpose(Image.Transpose.ROTATE_90)  # as the sensor saw it
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = ROTATED_90_CW
    buffer = io.BytesIO()
    sideways.save(buffer, "JPEG", quality=90, exif=exif)
    array = read_picture(buffer.getvalue())
    assert array.shape == (upright.height, upright.width)
    assert reader(array).digit == int(mnist_data.test_labels[0])


@pytest.mark.slow
def test_a_twelve_megapixel_photo_is_read_small_and_fast():
    photo = paper_photo(None, "plain", np.random.default_rng(0), TWELVE_MEGAPIXELS)
    start = time.perf_counter()
    array = read_picture(photo)
    assert time.perf_counter() - start < LARGE_PHOTO_SECONDS
    assert max(array.shape) == WORKING_SIDE and array.shape[1] / array.shape[0] == pytest.approx(4 / 3, rel=0.01)
