"""Digits that are not MNIST's, and numbers whose digits touch: drawings for bench/verdicts.py and the tests.

Sources, all offline:

  uci          scikit-learn's bundled UCI digits (sklearn.datasets.load_digits): 1,797 digits by 13 writers
               (the UCI set's test part), scanned at 32x32 and counted into 8x8 blocks of 17 levels.
               Each is enlarged smoothly (cubic spline) to 120-250 px on a 280x280 canvas, white on black.
  fonts        digits typed in installed fonts (handwriting-like and plain ones, FONT_FILES), with random
               stroke width, slant, rotation and size, rendered at a low resolution (28-64 px) or at the
               canvas' own and enlarged to the canvas. Legible by construction: a bolder pen may not fill
               in a loop of the glyph (`font_digit`); over-bold digits whose loops are filled are blobs.
  paper        font digits written dark on light "paper" with an uneven light, a slight blur, noise and
               JPEG compression: a photo's bytes, for mnist.photo.read_picture.
  touching     2-digit numbers of MNIST test digits placed so that their ink touches or overlaps by
               TOUCH_OVERLAP_PX canvas pixels, as in "17" written fast.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from scipy import ndimage

CANVAS = 280  # pixels, the Sketch canvas
MARGIN = 6  # pixels kept blank at the canvas' edges
UCI_SIDE_PX = (120, 250)  # an 8x8 UCI digit is enlarged to this many canvas pixels a side
FONT_DIRS = ("/usr/share/fonts",)
# Handwriting-like fonts (Debian: fonts-dkg-handwriting, fonts-breip, fonts-rufscript, fonts-sjfonts,
# fonts-urw-base35's Z003). Not fonts-femkeklaver: its digits are outlines drawn around each stroke, not strokes.
HANDWRITING_FONTS = (
    "dkg.ttf",
    "dkgIt.ttf",
    "Breip.ttf",
    "Rufscript010.ttf",
    "SteveHand.ttf",
    "Delphine.ttf",
    "Z003-MediumItalic.otf",
)
# Plain ones (fonts-dejavu-core, fonts-urw-base35, fonts-liberation).
FONT_FILES = (
    *HANDWRITING_FONTS,
    "DejaVuSans.ttf",
    "NimbusSans-Regular.otf",
    "NimbusRoman-Regular.otf",
    "URWGothic-Book.otf",
    "URWBookman-Light.otf",
    "C059-Roman.otf",
    "LiberationSans-Regular.ttf",
)
FONT_RENDER_PX = (28, 40, 64, CANVAS)  # the digit is rendered this many pixels high, then scaled to the canvas
FONT_HEIGHT_PX = (110, 240)  # a font digit's height on the canvas
FONT_BOLDEN = (0.0, 0.08)  # extra stroke width (PIL's stroke_width), as a share of the rendered height
LOOP_INK_LEVEL = 128  # grey level from which a pixel is ink when counting a glyph's loops
FONT_SLANT = (-0.25, 0.35)  # horizontal shear (x += slant * height above the baseline)
FONT_ROTATION_DEG = (-8.0, 8.0)
PAPER_LIGHT = (150, 250)  # grey level of the paper, from its darkest to its brightest corner
PAPER_INK = (10, 70)  # grey level of the ink
PAPER_NOISE = 6.0  # standard deviation of the sensor noise, grey levels
PAPER_BLUR_PX = (0.0, 1.5)  # Gaussian blur radius: focus and motion
PAPER_JPEG_QUALITY = (35, 85)
PAPER_SIDE_PX = (320, 640)  # the photo's size
TOUCH_OVERLAP_PX = (1, 6)  # canvas pixels by which the two digits' ink overlaps once they touch
TOUCH_HEIGHT_PX = (60, 120)  # digit height on the canvas for touching numbers
TOUCH_INK_LEVEL = 64  # grey level from which an enlarged MNIST pixel counts as ink when making digits touch
TOUCH_VERTICAL_OFFSET = 0.1  # the right digit moves up or down by up to this share of the digit height
DIGIT_INK_LEVEL = 0.5  # share of full ink from which a pixel is ink (touching and crops)


def to_rgba(gray: np.ndarray) -> np.ndarray:
    """White ink on an opaque black canvas, as st_canvas returns it."""
    out = np.zeros((*gray.shape, 4), dtype=np.uint8)
    out[..., :3] = gray[..., None]
    out[..., 3] = 255
    return out


def place(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A grey ink image pasted at a random place on a black 280x280 canvas (shrunk first if too big)."""
    limit = CANVAS - 2 * MARGIN
    if max(gray.shape) > limit:
        scale = limit / max(gray.shape)
        size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
        gray = np.asarray(Image.fromarray(gray).resize(size, Image.BILINEAR))
    h, w = gray.shape
    top = int(rng.integers(MARGIN, CANVAS - MARGIN - h + 1))
    left = int(rng.integers(MARGIN, CANVAS - MARGIN - w + 1))
    canvas = np.zeros((CANVAS, CANVAS), dtype=np.uint8)
    canvas[top : top + h, left : left + w] = gray
    return to_rgba(canvas)


def ink_box(gray: np.ndarray, level: float = 1) -> np.ndarray:
    """The image cut to the bounding box of its pixels >= level."""
    rows, cols = np.flatnonzero((gray >= level).any(1)), np.flatnonzero((gray >= level).any(0))
    return gray[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


# ---------------------------------------------------------------------------------------------
# UCI digits (scikit-learn)


def load_uci() -> tuple[np.ndarray, np.ndarray]:
    """(1797, 8, 8) float in 0..16 and their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images, digits.target


def uci_canvas(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An 8x8 UCI digit enlarged smoothly (cubic spline, a blank cell around it) on a 280x280 canvas."""
    side = int(rng.integers(*UCI_SIDE_PX))
    padded = np.pad(image.astype(np.float32) / 16.0, 1)
    big = ndimage.zoom(padded, side / 8.0, order=3, grid_mode=True, mode="grid-constant")
    gray = (np.clip(big, 0, 1) * 255).round().astype(np.uint8)
    return place(ink_box(gray), rng)


# ---------------------------------------------------------------------------------------------
# Font digits


def font_paths() -> list[Path]:
    """The FONT_FILES found under FONT_DIRS, in FONT_FILES' order."""
    found = {p.name: p for d in FONT_DIRS if Path(d).is_dir() for p in Path(d).rglob("*") if p.name in FONT_FILES}
    return [found[name] for name in FONT_FILES if name in found]


def count_loops(gray: np.ndarray) -> int:
    """Background regions (4-connected) enclosed by the ink: 0 has 1, 8 has 2."""
    labels, count = ndimage.label(np.pad(gray < LOOP_INK_LEVEL, 1))
    return count - 1  # the region around the glyph is not a loop


def typed(font: ImageFont.FreeTypeFont, digit: int, side: int, bolden: int) -> Image.Image:
    image = Image.new("L", (side, side), 0)
    ImageDraw.Draw(image).text(
        (side / 2, side / 2), str(digit), fill=255, font=font, anchor="mm", stroke_width=bolden, stroke_fill=255
    )
    return image


def font_digit(font_path: Path, digit: int, rng: np.random.Generator, render_px: int) -> np.ndarray:
    """One digit typed in a font `render_px` high, bolder, slanted and turned at random: grey, white on black.

    Legible by construction: a bolder pen that fills in one of the glyph's loops (a 6 become a blob) is
    made thinner until the loops are the plain glyph's."""
    font = ImageFont.truetype(str(font_path), size=render_px)
    side = render_px * 3
    loops = count_loops(np.asarray(typed(font, digit, side, 0)))
    bolden = round(float(rng.uniform(*FONT_BOLDEN)) * render_px)
    image = typed(font, digit, side, bolden)
    while bolden > 0 and count_loops(np.asarray(image)) != loops:
        bolden -= 1
        image = typed(font, digit, side, bolden)
    slant = float(rng.uniform(*FONT_SLANT))
    image = image.transform(image.size, Image.AFFINE, (1, slant, -slant * side / 2, 0, 1, 0), Image.BICUBIC)
    image = image.rotate(float(rng.uniform(*FONT_ROTATION_DEG)), Image.BICUBIC)
    return ink_box(np.asarray(image), 8)


def font_canvas(font_path: Path, digit: int, rng: np.random.Generator) -> np.ndarray:
    """A font digit rendered at one of FONT_RENDER_PX and enlarged (bilinear) to 110-240 px on the canvas."""
    render_px = int(rng.choice(FONT_RENDER_PX))
    gray = font_digit(font_path, digit, rng, render_px)
    height = float(rng.uniform(*FONT_HEIGHT_PX))
    scale = height / gray.shape[0]
    size = (max(1, round(gray.shape[1] * scale)), max(1, round(height)))
    return place(np.asarray(Image.fromarray(gray).resize(size, Image.BILINEAR)), rng)


def paper_photo(font_path: Path, digit: int, rng: np.random.Generator) -> bytes:
    """A font digit written dark on light paper under uneven light, blurred, noisy, JPEG: the photo's bytes."""
    ink = font_digit(font_path, digit, rng, 64).astype(np.float32) / 255
    side = int(rng.integers(*PAPER_SIDE_PX))
    height = side * float(rng.uniform(0.4, 0.8))
    scale = height / ink.shape[0]
    size = (max(1, round(ink.shape[1] * scale)), max(1, round(height)))
    ink = np.asarray(Image.fromarray((ink * 255).astype(np.uint8)).resize(size, Image.BILINEAR)) / 255.0
    h, w = ink.shape
    w = min(w, side - 2)
    coverage = np.zeros((side, side), dtype=np.float32)
    top, left = (side - h) // 2 + int(rng.integers(-side // 10, side // 10 + 1)), (side - w) // 2
    top = int(np.clip(top, 0, side - h))
    coverage[top : top + h, left : left + w] = ink[:, :w]
    ys, xs = np.mgrid[0:side, 0:side] / side
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xs + np.sin(angle) * ys + 1.5) / 3  # 0..1 across the page
    paper = PAPER_LIGHT[0] + (PAPER_LIGHT[1] - PAPER_LIGHT[0]) * ramp
    pen = float(rng.uniform(*PAPER_INK))
    gray = paper * (1 - coverage) + pen * coverage + rng.normal(0, PAPER_NOISE, (side, side))
    image = Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8)).convert("RGB")
    image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(*PAPER_BLUR_PX))))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=int(rng.integers(*PAPER_JPEG_QUALITY)))
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# Touching numbers


def enlarge_digit(digit: np.ndarray, height: float) -> np.ndarray:
    """A 28x28 uint8 MNIST digit cut to its ink and enlarged (bilinear) to `height` pixels."""
    crop = ink_box(digit)
    scale = height / crop.shape[0]
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(height)))
    return np.asarray(Image.fromarray(crop).resize(size, Image.BILINEAR))


def touching_shift(left: np.ndarray, right: np.ndarray, dy: int) -> int:
    """How far right of `left`'s left edge `right` goes so that their ink (>= TOUCH_INK_LEVEL) just touches,
    `right` being dy rows lower. Rows where both have ink decide; 0 when none do."""
    h = max(left.shape[0], right.shape[0] + dy, right.shape[0]) + abs(dy)
    a = np.zeros((h, left.shape[1]), bool)
    b = np.zeros((h, right.shape[1]), bool)
    top = max(0, -dy)
    a[top : top + left.shape[0]] = left >= TOUCH_INK_LEVEL
    b[top + dy : top + dy + right.shape[0]] = right >= TOUCH_INK_LEVEL
    both = a.any(1) & b.any(1)
    if not both.any():
        return 0
    last_a = a.shape[1] - 1 - np.argmax(a[both, ::-1], axis=1)  # rightmost ink of `left` per shared row
    first_b = np.argmax(b[both], axis=1)  # leftmost ink of `right`
    return int((last_a - first_b).max()) + 1


def touching_number(
    images: np.ndarray, labels: np.ndarray, rng: np.random.Generator, picks: tuple[int, int] | None = None
) -> tuple[np.ndarray, list[int]]:
    """Two MNIST digits side by side whose ink touches and overlaps by 1-6 px, on a 280x280 canvas."""
    if picks is None:
        picks = tuple(int(i) for i in rng.choice(len(images), size=2, replace=False))
    height = float(rng.uniform(*TOUCH_HEIGHT_PX))
    left, right = (enlarge_digit(images[i], height * rng.uniform(0.92, 1.08)) for i in picks)
    dy = int(round(rng.uniform(-TOUCH_VERTICAL_OFFSET, TOUCH_VERTICAL_OFFSET) * height))
    shift = max(1, touching_shift(left, right, dy) - int(rng.integers(*TOUCH_OVERLAP_PX, endpoint=True)))
    top = max(0, -dy)
    h = max(top + left.shape[0], top + dy + right.shape[0])
    w = max(left.shape[1], shift + right.shape[1])
    gray = np.zeros((h, w), dtype=np.uint8)
    gray[top : top + left.shape[0], : left.shape[1]] = left
    region = gray[top + dy : top + dy + right.shape[0], shift : shift + right.shape[1]]
    np.maximum(region, right, out=region)
    return place(gray, rng), [int(labels[i]) for i in picks]
