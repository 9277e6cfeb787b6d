"""Sketch's Inside views of a model's own numbers: every layer's feature maps for the drawing, the first
layer's filters, and the image helpers the other Inside views share (colour tables, tiling, fast PNGs, the
inlined gallery).

Images are sent at their own size and enlarged by the browser without smoothing: enlarging them here made
their PNG encoding most of a stroke's cost (15 ms for the last layer's grid at 4x, 1 ms at 1x). Images of a
stroke are inlined in one st.html each (data: URIs), not st.image's media files: the browser fetched each of
those with an HTTP request the server answered, 14 requests per stroke with every view on.
"""

from __future__ import annotations

import base64
import html
import io
import math

import numpy as np
import streamlit as st
from PIL import Image
from plotly.colors import hex_to_rgb, sequential
from torch import nn

from mnist.inside import Filters, LayerActivation, extract_filters
from mnist.records import ModelRef
from studio import explain, registry

GAP = 1  # pixels between tiles, in the grid's own scale
FILTER_PIXELS = 36  # a 3x3 or 5x5 kernel shown this large
FILTERS_WIDTH = 480  # px in the page
MAP_IMAGE_PX = 300  # a layer's grid of feature maps is shown about this wide
PNG_LEVEL = 1  # zlib level: these images are a few KB, encoding speed matters more (on every stroke)
GALLERY_CSS = (
    "<style>.inside-gallery {display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start;}"
    ".inside-gallery figure {margin: 0;} .inside-gallery img {image-rendering: pixelated; display: block;}"
    ".inside-gallery figcaption {font-size: 0.8rem; opacity: 0.7; max-width: 22rem;}</style>"
)
SEQUENTIAL = sequential.Viridis  # activations: >= 0 after ReLU
DIVERGING = sequential.RdBu_r  # weights and signed maps: blue negative, red positive


# --- colour ----------------------------------------------------------------------------------


def colour_table(scale: list[str], size: int = 256) -> np.ndarray:
    """(size, 3) uint8 lookup table interpolating a plotly colour list (hex or rgb() strings)."""
    stops = np.array([parse_colour(c) for c in scale], np.float32)
    at = np.linspace(0, 1, len(stops))
    x = np.linspace(0, 1, size)
    return np.stack([np.interp(x, at, stops[:, c]) for c in range(3)], 1).round().astype(np.uint8)


def parse_colour(colour: str) -> tuple[int, int, int]:
    if colour.startswith("#"):
        return hex_to_rgb(colour)
    return tuple(int(float(v)) for v in colour[colour.index("(") + 1 : -1].split(",")[:3])


SEQUENTIAL_LUT = colour_table(SEQUENTIAL)
DIVERGING_LUT = colour_table(DIVERGING)


def lut_indices(values: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """(..., ) floats in [0, 1] -> (..., ) uint8 indices into a lookup table of at most 256 colours."""
    return (np.clip(values, 0, 1) * (len(lut) - 1)).astype(np.uint8)


def colourise(values: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """(..., ) floats in [0, 1] -> (..., 3) uint8 through a lookup table."""
    return lut[lut_indices(values, lut)]


def scale_each(values: np.ndarray, signed: bool) -> np.ndarray:
    """(C, H, W) -> [0, 1] per channel: 0..max for >= 0 maps, symmetric around 0.5 for signed ones."""
    flat = values.reshape(len(values), -1)
    if signed:
        peak = np.abs(flat).max(1).clip(min=1e-8)[:, None, None]
        return 0.5 + 0.5 * values / peak
    peak = flat.max(1).clip(min=1e-8)[:, None, None]
    return values / peak


def tile(images: np.ndarray, columns: int | None = None, background: float = 0.0) -> np.ndarray:
    """(C, H, W) -> one (rows*(H+GAP)-GAP, cols*(W+GAP)-GAP) grid, row by row."""
    count, h, w = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = np.full((rows * (h + GAP) - GAP, columns * (w + GAP) - GAP), background, np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        grid[r * (h + GAP) : r * (h + GAP) + h, c * (w + GAP) : c * (w + GAP) + w] = image
    return grid


def enlarge(rgb: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of an (H, W, 3) image."""
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)


# --- images of a model -------------------------------------------------------------------------


def activation_image(layer: LayerActivation) -> np.ndarray:
    """One layer's activations as an RGB grid at one pixel per value: every channel of a conv layer (C, H, W),
    or a hidden linear layer's units (U,) as a square-ish grid of one-pixel cells."""
    return colourise(*activation_grid(layer))


def activation_png(layer: LayerActivation) -> tuple[bytes, int]:
    """activation_image as a paletted PNG (the same pixels, a third of the encoding time and about half the
    bytes of an RGB one: on every stroke), and its width in pixels."""
    grid, lut = activation_grid(layer)
    return palette_png(lut_indices(grid, lut), lut), grid.shape[1]


def activation_grid(layer: LayerActivation) -> tuple[np.ndarray, np.ndarray]:
    """activation_image's grid of values in [0, 1], and the lookup table that colours it."""
    if layer.kind == "conv":
        signed = bool((layer.values < 0).any())  # lenet-dropout's maps are raw conv outputs, before ReLU
        grid = tile(scale_each(layer.values, signed), background=0.5 if signed else 0.0)
    else:
        units = layer.values
        side = math.ceil(math.sqrt(len(units)))
        cells = np.zeros(side * side, np.float32)
        cells[: len(units)] = units
        signed = bool((units < 0).any())
        grid = scale_each(cells.reshape(1, side, side), signed)[0]
    return grid, DIVERGING_LUT if signed else SEQUENTIAL_LUT


def gallery(images: list[tuple[bytes, int, str]]) -> str:
    """HTML of (png, width in px, caption) figures in a wrapping row (GALLERY_CSS), images inlined."""
    figures = "".join(
        f'<figure><img width="{width}" alt="{html.escape(caption)}" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode()}"><figcaption>{html.escape(caption)}'
        "</figcaption></figure>"
        for png, width, caption in images
    )
    return f'<div class="inside-gallery">{figures}</div>'


def png_bytes(rgb: np.ndarray) -> bytes:
    """An (H, W, 3) uint8 image as PNG, encoded fast (st.image would encode an array at level 6)."""
    return encode_png(Image.fromarray(rgb))


def palette_png(indices: np.ndarray, lut: np.ndarray) -> bytes:
    """An (H, W) uint8 image of indices into `lut` ((N <= 256, 3) uint8 colours) as a paletted PNG."""
    image = Image.fromarray(indices, mode="P")
    image.putpalette(lut.tobytes())
    return encode_png(image)


def encode_png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=PNG_LEVEL)
    return out.getvalue()


def layer_caption(layer: LayerActivation) -> str:
    shape = " × ".join(map(str, layer.shape))
    what = "channels" if layer.kind == "conv" else "units"
    return f"layer {layer.name} · {' → '.join(layer.stages)} · {shape} ({layer.shape[0]} {what})"


def filters_image(filters: Filters) -> np.ndarray:
    """The first layer's kernels (out, in, k, k; the inputs averaged) or a linear layer's (units, 28, 28)
    weights as one RGB grid on a diverging scale, each kernel scaled to its own largest |weight|."""
    weights = filters.weights.mean(1) if filters.kind == "conv" else filters.weights
    grid = tile(scale_each(weights, signed=True), background=0.5)
    factor = max(1, FILTER_PIXELS // weights.shape[-1])
    return enlarge(colourise(grid, DIVERGING_LUT), factor)


@st.cache_resource(show_spinner=False, max_entries=8)
def cached_filters_image(identity: str, _model: nn.Module) -> tuple[bytes, int, str, str]:
    """The filters' PNG (built once per model: the weights never change), its width, caption and explanation."""
    filters = extract_filters(_model)
    shape = " × ".join(map(str, filters.weights.shape))
    if filters.kind == "conv":
        caption = f"layer {filters.name}: {filters.total_units} kernels ({shape}), red positive, blue negative"
    else:
        caption = f"layer {filters.name}: each of {filters.total_units} units' weights on the 28×28 pixels ({shape})"
    rgb = filters_image(filters)
    kernel = filters.weights.shape[-1] if filters.kind == "conv" else None
    text = explain.filters_text(filters.total_units, kernel, filters.kind)
    return png_bytes(rgb), min(FILTERS_WIDTH, rgb.shape[1] * 2), caption, text


def kernel_size(model: nn.Module, name: str) -> int | None:
    """The side of a conv layer's square kernel (3 for 3x3), None when the layer has none."""
    size = getattr(dict(model.named_modules()).get(name), "kernel_size", None)
    return size[0] if isinstance(size, tuple) else size


def feature_maps_explanation(activations: list[LayerActivation], model: nn.Module) -> str:
    """The paragraph under the feature maps, with this drawing's numbers (studio.explain)."""
    conv = [a for a in activations if a.kind == "conv"]
    if not conv:
        hidden = activations[0].values if activations else np.zeros(0)
        return explain.hidden_units_text(len(hidden), int((hidden > 0).sum()))
    layers = [
        (a.name, a.shape[0], kernel_size(model, a.name), a.stages, explain.strongest_channel(a.values)) for a in conv
    ]
    return explain.feature_maps_text(layers)


def show_feature_maps(activations: list[LayerActivation], model: nn.Module) -> None:
    conv = [a for a in activations if a.kind == "conv"]
    layers = conv or activations  # a linear-only model (mlp): its hidden units
    st.markdown("**Feature maps**: what each layer computes for your drawing")
    if conv:
        st.caption("Every channel of every conv layer, each scaled to its own peak (bright: strongly active).")
    else:
        st.caption("This model has no conv layers: each hidden unit's activation, one cell per unit.")
    figures = []
    for layer in layers:
        png, width = activation_png(layer)
        figures.append((png, shown_width(width), layer_caption(layer)))
    st.html(gallery(figures))
    st.caption(feature_maps_explanation(activations, model))


def shown_width(pixels: int) -> int:
    """Page width (px) of an image `pixels` wide: enlarged a whole number of times to about MAP_IMAGE_PX."""
    return pixels * max(1, round(MAP_IMAGE_PX / pixels))


def show_filters(ref: ModelRef, model: nn.Module) -> None:
    st.markdown("**Filters**: the first layer's learned weights")
    png, width, caption, text = cached_filters_image(registry.model_identity(ref), model)
    st.html(gallery([(png, width, caption)]))
    st.caption(text)
