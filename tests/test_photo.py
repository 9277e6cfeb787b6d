"""mnist.photo: photos of digits on paper become clean ink maps the verdict reads, and bad files get plain refusals."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from mnist.photo import MAX_FILE_BYTES, PictureError, read_picture, read_picture_file

REFUSAL_SECONDS = 1.0  # a bad file is refused at once, before any decoding work


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
