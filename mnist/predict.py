"""Prediction and explanation for single drawings and image files."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .data import background_value
from .errors import MnistError
from .machine import limited_threads
from .preprocess import CanvasImage, preprocess_canvas

IG_STEPS = 16  # integrated-gradients path points by default, run as one batch
# Path points for a live view (Sketch explains every stroke). Each costs a forward and a backward pass: 16
# made the map most of a stroke's server CPU. With 4, over 30-60 test digits the map correlates r=0.96
# (median) with a 64-128-point one (16 points: 0.99; tests/test_saliency.py), no difference to the eye.
LIVE_IG_STEPS = 4
SMALL_BATCH = 16  # up to this many images, CPU prediction runs on one thread


@dataclass(frozen=True)
class Prediction:
    digit: int
    confidence: float  # probability of `digit`
    probabilities: tuple[float, ...]  # ten probabilities summing to 1


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def single_thread(enabled: bool = True):
    """Run tiny CPU work on one thread: on 2 busy cores, waking a second thread for a 1 ms forward pass
    costs more than it saves (bench/predict_latency.py: p99 52 -> 6 ms, p50 +0.2 ms)."""
    return limited_threads(1 if enabled else None)


@torch.inference_mode()
def predict_tensor(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, 1, 28, 28) normalised -> (B, 10) probabilities. The model must be in eval mode."""
    device = model_device(model)
    with single_thread(device.type == "cpu" and len(x) <= SMALL_BATCH):
        return model(x.to(device)).float().softmax(1).cpu()


def predict_canvas(model: nn.Module, array) -> tuple[CanvasImage, Prediction | None]:
    """Preprocess a drawing and predict it; (image, None) when the drawing is blank."""
    image = preprocess_canvas(array)
    if image.empty:
        return image, None
    probs = predict_tensor(model, image.to_tensor())[0]
    if not torch.isfinite(probs).all():
        raise MnistError("the model produced NaN probabilities; its weights are broken")
    digit = int(probs.argmax())
    return image, Prediction(digit, float(probs[digit]), tuple(float(p) for p in probs))


def saliency_map(model: nn.Module, image: CanvasImage, target: int | None = None, steps: int = IG_STEPS) -> np.ndarray:
    """Integrated gradients from a blank image to the drawing: (28, 28) in [0, 1], 1 = most evidence.

    Positive attributions only: the pixels that pushed the model towards `target` (default: its
    prediction). `steps` path points (a right Riemann sum of the path integral): each costs a forward
    and a backward pass of the model; fewer are cheaper and coarser.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    device = model_device(model)
    x = image.to_tensor().to(device)  # (1, 1, 28, 28) normalised
    baseline = torch.full_like(x, background_value())
    alphas = torch.linspace(1.0 / steps, 1.0, steps, device=device).view(-1, 1, 1, 1)
    path = (baseline + alphas * (x - baseline)).requires_grad_(True)  # (steps, 1, 28, 28)
    with torch.enable_grad(), single_thread(device.type == "cpu"):
        logits = model(path)
        if target is None:
            target = int(logits[-1].argmax())
        # Gradients w.r.t. the inputs only: the model's own .grad stays untouched (thread-safe).
        (grads,) = torch.autograd.grad(logits[:, target].sum(), path)
    attribution = ((x - baseline) * grads.mean(0, keepdim=True))[0, 0].clamp(min=0)
    peak = float(attribution.max())
    return (attribution / peak).cpu().numpy() if peak > 0 else np.zeros(attribution.shape, np.float32)
