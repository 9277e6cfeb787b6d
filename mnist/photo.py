"""Digits from paper: a photo or picture file -> a clean ink map, white ink on black, like a Sketch drawing.

    array = read_picture(data)       # bytes of a JPEG/PNG/WebP -> uint8 (H, W), 0 = no ink, 255 = full ink
    reading = verdict.read_drawing(model, array, calibration)   # crops, centres and reads it as a drawing
    array = read_picture_file(path)  # the same for a file (the command line's `predict`)

Anything wrong with the file raises PictureError, whose message says in plain words what was wrong and what
to do. The file is checked before any pixel is decoded: its size in bytes (MAX_FILE_BYTES), its format
(PICTURE_FORMATS, by content, not by name) and the pixel count its header claims (MAX_PIXELS).

How a photo becomes ink:

1. **Decode small.** A JPEG is decoded at a reduced scale straight from its DCT (PIL's draft mode: a
   12-megapixel photo costs a sixteenth of the work), the phone's EXIF orientation is applied, and the
   picture is shrunk to at most WORKING_SIDE pixels on its long side.
2. **Transparency.** A picture with transparent pixels is a drawing whose alpha is its ink, as the
   canvas path reads it (`preprocess.ink_map`): that alpha is returned as it is.
3. **Polarity.** The ink is the minority that stands out from its surroundings (a coarse median over
   half the frame: the paper, or the board, with its uneven light): when the brightest pixels stand out
   more than the darkest, the ink is light (chalk) on dark and the picture is inverted, so that the ink is
   always the dark part.
4. **The paper's own light.** Each pixel's darkest channel (a blue pen is darkest in red), lightly blurred
   (INK_BLUR_SHARE: paper grain, JPEG noise). A morphological closing removes dark strokes narrower than its
   window and keeps the paper with its shadows and uneven light, sharp shadow edges included. The window
   (`paper_window`) is the narrowest from which widening it no longer adds ink: wider than the strokes,
   narrower than a shadow, and wider than the strokes it finds (a bold pen's).
5. **Ink strength** per pixel: how much darker than its local paper it is, as a share of the paper's
   brightness, so ink in a shadow counts like ink in the light.
6. **Threshold.** Ink is what is darker than the paper's own variation allows: NOISE_SIGMAS robust
   standard deviations above the paper's typical strength, and at least MIN_INK_CONTRAST. Ink patches
   under MIN_INK_AREA_SHARE of the picture are specks and are dropped: blank paper gives no ink at all.
   Ink the frame cuts (a shadow or the table's edge across it, see `digit_like_patches`) is not a digit.
7. **Stroke width.** A pen's stroke is thin next to MNIST's (a tenth of the digit's height): thinner
   strokes are widened to THIN_STROKE_SHARE of the tallest ink's height, or the model, which sees the
   digit 20 pixels tall, would see a faint hairline.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

from .errors import MnistError

MAX_FILE_BYTES = 20_000_000  # a phone photo is 2-8 MB
MAX_PIXELS = 40_000_000  # refused before decoding: a 48-megapixel phone's full-size photo is too large
PICTURE_FORMATS = ("JPEG", "PNG", "WEBP")  # PIL's JPEG reader also opens phones' multi-picture JPEGs (MPO)
WORKING_SIDE = 640  # pixels on the long side the photo is shrunk to: enough for a digit a tenth of the frame
OPAQUE_ALPHA = 250  # 0..255: a pixel with less alpha is (partly) transparent: the picture is a drawing
INK_BLUR_SHARE = 1 / 640  # Gaussian sigma, as a share of the long side: paper grain and JPEG noise
PAPER_WINDOW_SHARE = 1 / 3  # widest closing window, a share of the long side: wider than any digit's stroke
MIN_PAPER_WINDOW = 15  # pixels: the narrowest closing window tried (see paper_window)
WINDOW_STEP = 1.4  # each window tried is this much wider than the last
PLATEAU_GROWTH = 0.1  # the ink's area growing by less than this share from one window to the next: a plateau
MIN_BOLD_INK_SHARE = 0.06  # ink in the widest window: a bold digit covers more of the frame than this
STROKE_FIT = 0.6  # and its ink's strokes (stroke_width) narrower than this share of the window (see strokes_fit)
MIN_PAPER_LEVEL = 0.25  # ink strength is divided by the paper's brightness, but at least this (no noise blown up)
POLARITY_SIDE = 54  # pixels on the long side of the coarse picture whose median filter is the paper's level
POLARITY_WINDOW = 27  # coarse pixels (half the frame): even a bold digit's ink is a minority in it
POLARITY_TAIL = 0.002  # share of the darkest and brightest pixels compared with their surroundings
MIN_INK_CONTRAST = 0.15  # ink is at least this much darker than its paper (a share of the paper's brightness)
NOISE_SIGMAS = 5.0  # and this many robust standard deviations of the paper's own variation
MAD_TO_SIGMA = 1.4826  # median absolute deviation -> standard deviation, for Gaussian noise
SOLID_INK_QUANTILE = 0.9  # the strength of this quantile of the ink's pixels is full ink (255)
MIN_INK_AREA_SHARE = 0.0003  # an ink patch smaller than this share of the picture is a speck (92 px at 640x480)
FRAME_CONTACT_SHARE = 0.25  # ink along more than this share of a side of the frame is not a digit
THIN_STROKE_SHARE = 0.1  # strokes thinner than this share of the tallest ink's height are widened to it
DEPTH_TO_WIDTH = 4.0  # a stroke's width is about 4x the mean distance of its pixels to its edge


class PictureError(MnistError):
    """A file that cannot be read as a picture of a digit; the message says what to do."""


def read_picture_file(path: Path | str) -> np.ndarray:
    """read_picture for a file: PictureError for a missing or too large one, before reading it."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise PictureError(f"{path}: no such file") from None
    except OSError as exc:
        raise PictureError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if path.is_dir():
        raise PictureError(f"{path} is a folder, not a picture")
    check_file_size(size)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PictureError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return read_picture(data)


def read_picture(data: bytes) -> np.ndarray:
    """A photo or picture file's bytes -> uint8 (H, W) ink map, white on black (see the module docstring)."""
    check_file_size(len(data))
    image = decode_small(data)
    alpha = transparent_ink(image)
    if alpha is not None:
        return alpha
    return ink_of_photo(unit_rgb(image))


def unit_rgb(image: Image.Image) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1]. 16-bit and float greys are scaled by their own range: PIL's conversion
    to 8 bits would clip them."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        gray = np.asarray(image, dtype=np.float32)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(gray.max()), 1.0)
        return np.repeat(np.clip(gray / top, 0, 1)[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def check_file_size(size: int) -> None:
    if size == 0:
        raise PictureError("The file is empty. Choose a photo of a digit: a JPEG or PNG picture.")
    if size > MAX_FILE_BYTES:
        raise PictureError(
            f"The file is too large ({size / 1e6:.0f} MB). Choose a picture under {MAX_FILE_BYTES / 1e6:.0f} MB, "
            "or take the photo at a smaller size."
        )


def too_large(width: int, height: int) -> PictureError:
    return PictureError(
        f"The picture is too large ({width} x {height} pixels). Choose one with at most "
        f"{MAX_PIXELS / 1e6:.0f} megapixels, or take the photo at a smaller size."
    )


def decode_small(data: bytes) -> Image.Image:
    """Open, check the claimed size, decode at a reduced scale, apply EXIF orientation, shrink to WORKING_SIDE."""
    not_a_picture = "This file is not a PNG or JPEG picture. Choose a photo (JPEG) or a PNG picture of a digit."
    damaged = "The picture file is cut short or damaged. Take the photo again, or choose another file."
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        Image.init()  # registers every format plugin: Image.open only knows WebP after it
        try:
            image = Image.open(io.BytesIO(data), formats=PICTURE_FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise PictureError(
                f"The picture is too large. Choose one with at most {MAX_PIXELS / 1e6:.0f} megapixels."
            ) from None
        except UnidentifiedImageError:
            raise PictureError(not_a_picture) from None
        except Exception:  # noqa: BLE001 - a forged header can fail inside any plugin in any way
            raise PictureError(damaged) from None
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise too_large(width, height)
        try:
            if image.format in ("JPEG", "MPO"):
                image.draft("RGB", (WORKING_SIDE, WORKING_SIDE))  # decode at 1/2, 1/4 or 1/8 scale
            image.load()
            image = ImageOps.exif_transpose(image)
            image.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.Resampling.BOX)
        except Exception:  # noqa: BLE001 - truncated or corrupt data fails in the decoder, in any way
            raise PictureError(damaged) from None
    if image.width == 0 or image.height == 0:
        raise PictureError(not_a_picture)
    return image


def transparent_ink(image: Image.Image) -> np.ndarray | None:
    """A picture with transparent pixels is a drawing: its alpha is its ink (as preprocess.ink_map reads it)."""
    if "A" not in image.getbands() and "transparency" not in image.info:
        return None
    alpha = np.asarray(image.convert("RGBA"))[..., 3]
    if int(alpha.min()) >= OPAQUE_ALPHA:
        return None
    return np.ascontiguousarray(alpha)


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def ink_is_light(rgb: np.ndarray) -> bool:
    """Chalk on a board: the picture's brightest pixels stand out more from their surroundings than its darkest
    ones. The surroundings are a coarse median over POLARITY_WINDOW (the paper or the board is most of it), so
    uneven light cancels out and a digit's holes count as paper."""
    gray = luminance(rgb)
    image = Image.fromarray(gray, mode="F")
    coarse = image.resize(coarse_size(image.size), Image.Resampling.BOX)
    surroundings = Image.fromarray(ndimage.median_filter(np.asarray(coarse), size=POLARITY_WINDOW, mode="nearest"))
    residual = gray - np.asarray(surroundings.resize(image.size, Image.Resampling.BILINEAR))
    darkest, brightest = np.quantile(residual, [POLARITY_TAIL, 1 - POLARITY_TAIL])
    return float(brightest) > -float(darkest)


def coarse_size(size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) shrunk so that the long side is POLARITY_SIDE pixels."""
    scale = POLARITY_SIDE / max(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def darkest_channel(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W) each pixel's darkest channel, lightly blurred: coloured ink is dark in some channel
    (a blue pen in red), and the blur removes paper grain and JPEG noise."""
    sigma = max(max(rgb.shape[:2]) * INK_BLUR_SHARE, 0.5)
    return ndimage.gaussian_filter(rgb.min(axis=2), sigma)


def ink_strength(dark: np.ndarray, window: int) -> np.ndarray:
    """How much darker than its local paper each pixel is, as a share of the paper's brightness. The paper is
    a closing over `window` pixels: it removes dark strokes narrower than that and keeps the light, shadows
    and their edges."""
    paper = ndimage.grey_closing(dark, size=(window, window), mode="nearest")
    return (paper - dark) / np.maximum(paper, MIN_PAPER_LEVEL)


def ink_threshold(strength: np.ndarray) -> float:
    """The strength from which a pixel is ink: above the paper's own variation, and at least MIN_INK_CONTRAST.
    Most of a picture is paper, so the median and its deviation describe the paper."""
    sample = strength[::2, ::2]  # a quarter of the pixels describe the paper as well, at a quarter of the cost
    typical = float(np.median(sample))
    spread = MAD_TO_SIGMA * float(np.median(np.abs(sample - typical)))
    return max(MIN_INK_CONTRAST, typical + NOISE_SIGMAS * spread)


def digit_like_patches(mask: np.ndarray, reach: int) -> np.ndarray:
    """The mask without specks (patches under MIN_INK_AREA_SHARE of the picture) and without what the frame
    cuts: a patch touching two of its sides, or one along more than FRAME_CONTACT_SHARE of it, is a shadow, the
    paper's edge or the table, not a digit; one touching it and within `reach` pixels of the frame all along is
    where the paper's level was guessed beyond the frame (the closing's window reaches that far out)."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return mask
    keep = np.bincount(labels.ravel(), minlength=count + 1) >= MIN_INK_AREA_SHARE * mask.size
    sides_touched = np.zeros(count + 1, dtype=np.int64)
    for side in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        contact = np.bincount(side, minlength=count + 1)
        sides_touched += contact > 0
        keep &= contact <= FRAME_CONTACT_SHARE * len(side)
    inner = np.bincount(labels[reach:-reach, reach:-reach].ravel(), minlength=count + 1) > 0
    keep &= (sides_touched == 0) | ((sides_touched == 1) & inner)
    keep[0] = False
    return keep[labels]


def stroke_width(mask: np.ndarray) -> float:
    """A stroke's width in pixels: DEPTH_TO_WIDTH times its pixels' mean distance to its edge."""
    box = ndimage.find_objects(mask.astype(np.int8))[0]
    inside = np.pad(mask[box], 1)  # the distance transform of the ink's box alone: a tenth of the frame's cost
    return DEPTH_TO_WIDTH * float(ndimage.distance_transform_edt(inside)[inside].mean())


def widened_strokes(ink: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Strokes thinner than THIN_STROKE_SHARE of the tallest ink patch's height, widened to it (soft edges)."""
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    tallest = max(rows.stop - rows.start for rows, _ in ndimage.find_objects(labels))
    grow = (THIN_STROKE_SHARE * tallest - stroke_width(mask)) / 2
    if grow <= 0:
        return ink
    rows, cols = ndimage.find_objects(mask.astype(np.int8))[0]
    margin = int(np.ceil(grow)) + 1
    box = (
        slice(max(rows.start - margin, 0), rows.stop + margin),
        slice(max(cols.start - margin, 0), cols.stop + margin),
    )
    outside = ndimage.distance_transform_edt(~mask[box])
    wide = ink.copy()
    wide[box] = np.maximum(ink[box], np.clip(grow + 1 - outside, 0, 1))
    return wide


def ink_mask(dark: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(strength, digit-like ink mask, threshold) with the paper taken over `window` pixels."""
    strength = ink_strength(dark, window)
    threshold = ink_threshold(strength)
    return strength, digit_like_patches(strength > threshold, window // 2), threshold


def paper_window(dark: np.ndarray) -> int:
    """The closing window that takes the strokes for ink and wider dark parts (shadows) for paper.

    A granulometry at half scale: the ink's area as the window widens from MIN_PAPER_WINDOW by WINDOW_STEP.
    It grows while the window is narrower than the strokes and their joins, then stops (a plateau), and only
    grows again when the window passes a shadow's width: the window is the first one on the plateau."""
    widest = max(3, round(max(dark.shape) * PAPER_WINDOW_SHARE) | 1)
    windows = []
    window = MIN_PAPER_WINDOW
    while window < widest:
        windows.append(window)
        window = round(window * WINDOW_STEP) | 1
    windows.append(widest)
    half = dark[::2, ::2]
    speck = MIN_INK_AREA_SHARE * half.size
    areas, empty = [], None
    for window in windows:
        strength = ink_strength(half, window // 2 | 1)
        mask = strength > ink_threshold(strength)
        areas.append(int(mask.sum()))
        if len(areas) < 2 or areas[-1] > (1 + PLATEAU_GROWTH) * areas[-2] + speck:
            continue
        if areas[-2] <= speck:  # no ink yet: blank paper, or strokes wider than the window
            empty = empty or window
        elif strokes_fit(mask, window // 2):
            return window
    # blank paper's grain adds up to a little ink in a wide window, a bold digit to a lot
    return empty if empty and areas[-1] < MIN_BOLD_INK_SHARE * half.size else widest


def strokes_fit(mask: np.ndarray, window: int) -> bool:
    """The ink found inside the frame is thinner than STROKE_FIT of the window: a bold stroke about as wide as
    the window is only partly taken for ink (its middle is taken for paper), in pieces as wide as the window.
    Ink the frame cuts is left out: a shadow's edge is as wide as the window at every window."""
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    framed = np.unique(np.concatenate((labels[0], labels[-1], labels[:, 0], labels[:, -1])))
    inside = mask & ~np.isin(labels, framed)
    if not inside.any():
        return True
    return stroke_width(inside) < STROKE_FIT * window


def ink_of_photo(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) float in [0, 1] -> uint8 (H, W) ink, white on black; all zero when there is none."""
    dark = darkest_channel(1.0 - rgb if ink_is_light(rgb) else rgb)
    strength, mask, threshold = ink_mask(dark, paper_window(dark))
    if not mask.any():
        return np.zeros(mask.shape, dtype=np.uint8)
    solid = max(float(np.quantile(strength[mask], SOLID_INK_QUANTILE)), threshold * 1.5)
    ink = np.clip((strength - threshold) / (solid - threshold), 0, 1) * mask
    return np.round(widened_strokes(ink, mask) * 255).astype(np.uint8)
