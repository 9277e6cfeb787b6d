"""See inside a model: activation maps, learned filters and penultimate features, for any registered architecture.

Everything here reads a model and never changes it, so the app can call it on a model that other threads
are using at the same time (Sketch predictions, other visitors):

- Activations are captured with forward hooks that record only the calling thread's tensors
  (`recording`): another thread running the same model meanwhile passes through the hooks untouched.
  Penultimate features come from mnist.features.features_and_logits, the function the verdict uses.
- Nothing calls model.eval()/train() or touches .grad: the model must already be in eval mode (loaded
  checkpoints are).
- Thread counts are set for the calling thread only and restored (`limited_threads`); batch-1 work runs on
  one CPU thread like predict.single_thread.

Inputs. A drawing is a `CanvasImage` (what predict_canvas returns), or a (28, 28) array or tensor of pixels:
uint8 0..255 or float 0..1, white ink on black like MNIST (`to_input`). Batches of data-set images are
(N, 28, 28) uint8 tensors, as in MnistData.

API:
- `inspect_drawing(model, image) -> Inspection`: one forward pass giving every conv layer's activation maps
  and every hidden linear layer's units (`LayerActivation`), the penultimate features and the probabilities.
- `capture_activations(model, image) -> list[LayerActivation]`: the same, activations only.
- `extract_filters(model, max_units=None) -> Filters`: the first layer's learned weights: conv kernels
  (out, in, k, k), or for a linear-only model its first linear layer's weights as (units, 28, 28) images.
- `extract_features(model, images, ...) -> np.ndarray (N, D)`: penultimate features (the input of the last
  linear layer) of many images, in batches, with a bounded thread count; stop and progress for the app.
- `digest_model(model) -> str`: a hash of the weights, the key of everything stored per model (mnist.store).

The rest of "see inside the model" lives beside this module: mnist.digit_map (the test set in 2-D, place a
drawing on it), mnist.neighbours (the nearest training images), mnist.attack (fool the model) and
mnist.insight (per-epoch confusion, filters and panel predictions, saved with a run).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from .constants import IMAGE_SIZE
from .data import normalize
from .errors import MnistError
from .features import features_and_logits, last_linear
from .machine import limited_threads
from .preprocess import CanvasImage
from .store import digest_images, digest_model  # noqa: F401 - re-exported: stored files' identity (mnist.store)

FEATURE_BATCH = 250  # images per forward in extract_features: train.EVAL_BATCH's measured memory trade-off
# Layers that keep their input's shape and act element by element (or are identities in eval mode): the
# activation maps of a conv layer are taken after those that directly follow it, e.g. batch norm and ReLU.
ELEMENTWISE_LAYERS = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.ReLU,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Dropout,
    nn.Dropout2d,
    nn.Identity,
)

LayerKind = Literal["conv", "linear"]
Progress = Callable[[float], None]  # called with the fraction done, 0..1


class ComputationStopped(MnistError):
    """A long computation (features, digit map, neighbour index) was stopped through its `stop` event."""


@dataclass(frozen=True)
class LayerActivation:
    """One layer's output for one image, batch dimension dropped."""

    name: str  # the conv or linear module's name in model.named_modules(): "0", "4", ...
    kind: LayerKind  # "conv": values are (channels, H, W) maps; "linear": (units,) of a hidden layer
    shape: tuple[int, ...]  # values.shape
    values: np.ndarray  # float32
    # Module types the values went through, the layer first: ("Conv2d", "BatchNorm2d", "ReLU"). The values
    # are taken after the element-wise layers that directly follow the layer (batch norm, activation,
    # dropout), so a ReLU model's maps are >= 0; lenet-dropout pools before its ReLU, so its conv maps are
    # the raw, signed conv outputs ("Conv2d",).
    stages: tuple[str, ...]


@dataclass(frozen=True)
class Inspection:
    """One forward pass of one drawing, seen from inside."""

    activations: list[LayerActivation]  # conv layers then hidden linear layers, in the model's order
    features: np.ndarray  # (D,) float32: the input of the last linear layer (penultimate features)
    probabilities: np.ndarray  # (10,) float32, summing to 1

    @property
    def prediction(self) -> int:
        return int(self.probabilities.argmax())


@dataclass(frozen=True)
class Filters:
    """The first layer's learned weights, as images."""

    name: str  # the module's name in model.named_modules()
    kind: LayerKind
    # "conv": (out_channels, in_channels, k, k) kernels; "linear": (units, 28, 28), each unit's weights on
    # the input pixels. float32, in the weights' own units (signed: use a diverging colour scale).
    weights: np.ndarray
    total_units: int  # units or channels in the layer; weights holds the first max_units of them


@dataclass(frozen=True)
class _Capture:
    """Where one LayerActivation is read: the output of `source`, the last of `stages`."""

    name: str
    kind: LayerKind
    source: nn.Module
    stages: tuple[str, ...]


@contextmanager
def recording(
    outputs: dict[str, nn.Module], inputs: dict[str, nn.Module] | None = None
) -> Iterator[dict[str, list[torch.Tensor]]]:
    """Hooks that collect, per key, the outputs of `outputs` modules and the first input of `inputs`
    modules, for forward passes run by the calling thread only, until the block ends.

    Tensors are detached clones: an in-place ReLU later in the model would otherwise overwrite them.
    """
    owner = threading.get_ident()
    inputs = inputs or {}
    seen: dict[str, list[torch.Tensor]] = {key: [] for key in (*outputs, *inputs)}

    def keep(key: str, tensor: torch.Tensor) -> None:
        if threading.get_ident() == owner:  # another thread's forward pass through the shared model
            seen[key].append(tensor.detach().clone())

    handles = [m.register_forward_hook(lambda _m, _in, out, key=key: keep(key, out)) for key, m in outputs.items()]
    handles += [m.register_forward_pre_hook(lambda _m, args, key=key: keep(key, args[0])) for key, m in inputs.items()]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def plan_captures(model: nn.Module) -> list[_Capture]:
    """Every Conv2d, and every Linear but the last (the logits), with the element-wise layers after it.

    Module order is execution order for the registry's nn.Sequential models.
    """
    leaves = [(name, m) for name, m in model.named_modules() if not list(m.children())]
    final = last_linear(model)
    captures = []
    for i, (name, module) in enumerate(leaves):
        if isinstance(module, nn.Conv2d):
            kind: LayerKind = "conv"
        elif isinstance(module, nn.Linear) and module is not final:
            kind = "linear"
        else:
            continue
        source, stages = module, [type(module).__name__]
        for _, follower in leaves[i + 1 :]:
            if not isinstance(follower, ELEMENTWISE_LAYERS):
                break
            source = follower
            stages.append(type(follower).__name__)
        captures.append(_Capture(name, kind, source, tuple(stages)))
    return captures


def to_input(image: CanvasImage | np.ndarray | torch.Tensor) -> torch.Tensor:
    """A drawing as the model's (1, 1, 28, 28) normalised input.

    image: a CanvasImage, or (28, 28) pixels, uint8 0..255 or float 0..1, white ink on black.
    """
    if isinstance(image, CanvasImage):
        return image.to_tensor()
    pixels = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image)
    if tuple(pixels.shape) != (IMAGE_SIZE, IMAGE_SIZE):
        raise MnistError(f"a drawing must be {IMAGE_SIZE}x{IMAGE_SIZE} pixels, got shape {tuple(pixels.shape)}")
    if pixels.dtype != torch.uint8:
        pixels = pixels.float()
        if not torch.isfinite(pixels).all() or float(pixels.min()) < 0 or float(pixels.max()) > 1:
            raise MnistError("float pixels must be finite and in [0, 1]")
    return normalize(pixels[None])


def inspect_drawing(model: nn.Module, image: CanvasImage | np.ndarray | torch.Tensor) -> Inspection:
    """Activations of every conv and hidden linear layer, penultimate features and probabilities, in one
    forward pass. The model must be in eval mode; safe to call while other threads use it."""
    x = to_input(image)
    captures = plan_captures(model)
    with recording({c.name: c.source for c in captures}) as seen:
        feats, logits = features_and_logits(model, x)  # batch 1: on one CPU thread
    activations = []
    for c in captures:
        values = seen[c.name][0][0].float().cpu().numpy()
        activations.append(LayerActivation(c.name, c.kind, tuple(values.shape), values, c.stages))
    return Inspection(activations, feats[0].numpy(), logits[0].softmax(0).numpy())


def capture_activations(model: nn.Module, image: CanvasImage | np.ndarray | torch.Tensor) -> list[LayerActivation]:
    """Every conv layer's activation maps (all channels) and every hidden linear layer's units for one drawing."""
    return inspect_drawing(model, image).activations


def first_layer(model: nn.Module) -> tuple[str, nn.Module]:
    """The first Conv2d or Linear in module order: the layer that looks at the pixels."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            return name, module
    raise MnistError(f"{type(model).__name__} has no conv or linear layer")


def extract_filters(model: nn.Module, max_units: int | None = None) -> Filters:
    """The first layer's weights: conv kernels (out, in, k, k), or a first linear layer's weights as
    (units, 28, 28) images. max_units keeps the first that many kernels or units (None: all)."""
    name, layer = first_layer(model)
    weights = layer.weight.detach()[:max_units].float().cpu().clone()
    total = layer.weight.shape[0]
    if isinstance(layer, nn.Conv2d):
        return Filters(name, "conv", weights.numpy(), total)
    if layer.in_features != IMAGE_SIZE * IMAGE_SIZE:
        raise MnistError(f"first linear layer {name!r} takes {layer.in_features} inputs, not the 784 pixels")
    return Filters(name, "linear", weights.reshape(-1, IMAGE_SIZE, IMAGE_SIZE).numpy(), total)


def extract_features(
    model: nn.Module,
    images: torch.Tensor,
    *,
    threads: int | None = None,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """Penultimate features (N, D) float32 of (N, 28, 28) uint8 images (or normalised (N, 1, 28, 28) floats).

    The model must be in eval mode. threads: torch threads for this call (None: the caller's); the setting
    is the calling thread's only. Raises ComputationStopped when `stop` is set between batches.
    """
    with limited_threads(threads):
        return features_and_probabilities(model, images, stop=stop, progress=progress)[0]


def features_and_probabilities(
    model: nn.Module,
    images: torch.Tensor,
    *,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate features (N, D) and probabilities (N, 10), float32, of many images in one pass."""
    last_linear(model)  # MnistError for a model without one: it has no penultimate features
    features, probabilities = [], []
    for start in range(0, len(images), FEATURE_BATCH):
        if stop is not None and stop.is_set():
            raise ComputationStopped("stopped while computing features")
        chunk = images[start : start + FEATURE_BATCH]
        feats, logits = features_and_logits(model, normalize(chunk) if chunk.dtype == torch.uint8 else chunk)
        features.append(feats)
        probabilities.append(logits.softmax(1))
        if progress is not None:
            progress(min(1.0, (start + FEATURE_BATCH) / len(images)))
    if not features:
        raise MnistError("no images to compute features of")
    return torch.cat(features).numpy(), torch.cat(probabilities).numpy()
