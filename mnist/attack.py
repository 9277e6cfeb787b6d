"""Fool the model: the smallest-looking change to a drawing that makes the model see another digit.

`fool(model, image, target, budget, norm)` runs a targeted projected gradient descent (PGD; with the L-inf
norm, the iterative fast gradient sign method): from the drawing, repeatedly step against the gradient of
the cross-entropy towards `target`, with respect to the pixels, then project back into the budget (the
L-inf box or the L2 ball of radius `budget` around the drawing) and into the valid pixel range [0, 1]. It
stops at the first step whose image the model classifies as `target`; when the budget is not enough, the
result is the step that gave the target the highest probability, with success False.

Pixels are on the [0, 1] scale, before normalisation: the budget means what it says on the image (L-inf
0.1 = no pixel changes by more than a tenth of full ink). The model is read only: gradients are taken with
torch.autograd.grad with respect to the image alone, so the model's .grad is never touched and other
threads may use the model meanwhile; batch-1 work runs on one CPU thread (predict.single_thread). The
model must be in eval mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .constants import IMAGE_SIZE, NUM_CLASSES
from .data import normalize
from .errors import MnistError
from .predict import model_device, single_thread
from .preprocess import CanvasImage

Norm = Literal["linf", "l2"]
NORMS: tuple[Norm, ...] = ("linf", "l2")
DEFAULT_STEPS = 100
# Default step size: the budget crossed in STEP_FRACTION of the steps (Madry et al. use 2.5 * budget / steps;
# stopping at the first success rewards a quicker walk).
STEP_FRACTION = 0.25
GRADIENT_FLOOR = 1e-12  # an L2 step divides by the gradient's norm


@dataclass(frozen=True)
class AttackResult:
    """An attempt to make the model see `target`. Images are (28, 28) float32 pixels in [0, 1]."""

    original: np.ndarray
    perturbation: np.ndarray  # adversarial - original, signed, in [-budget, budget] (L-inf) or norm <= budget (L2)
    adversarial: np.ndarray
    probabilities: np.ndarray  # (10,) float32: the model's probabilities for `adversarial`
    original_probabilities: np.ndarray  # (10,) float32, for `original`
    target: int
    success: bool  # the model classifies `adversarial` as `target`
    norm: Norm
    budget: float
    linf: float  # the perturbation's largest absolute pixel change
    l2: float  # its Euclidean norm over the 784 pixels
    steps: int  # gradient steps taken (0: the original already was the target)

    @property
    def prediction(self) -> int:
        return int(self.probabilities.argmax())


def as_pixels(image: CanvasImage | np.ndarray | torch.Tensor) -> torch.Tensor:
    """(28, 28) float32 pixels in [0, 1] from a CanvasImage or an array (uint8 0..255 or float 0..1)."""
    if isinstance(image, CanvasImage):
        if image.pixels is None:
            raise MnistError("the drawing is empty: there is nothing to change")
        image = image.pixels
    pixels = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image).detach()
    if tuple(pixels.shape) != (IMAGE_SIZE, IMAGE_SIZE):
        raise MnistError(f"the image must be {IMAGE_SIZE}x{IMAGE_SIZE} pixels, got shape {tuple(pixels.shape)}")
    pixels = pixels.float() / 255.0 if pixels.dtype == torch.uint8 else pixels.float()
    if not torch.isfinite(pixels).all() or float(pixels.min()) < 0 or float(pixels.max()) > 1:
        raise MnistError("float pixels must be finite and in [0, 1]")
    return pixels.cpu()


def check_attack(target: int, budget: float, norm: str, steps: int, step_size: float | None) -> None:
    if not 0 <= target < NUM_CLASSES:
        raise MnistError(f"target must be a digit 0..9, got {target}")
    if norm not in NORMS:
        raise MnistError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
    if not budget > 0:
        raise MnistError(f"budget must be > 0, got {budget}")
    if steps < 1:
        raise MnistError(f"steps must be >= 1, got {steps}")
    if step_size is not None and not step_size > 0:
        raise MnistError(f"step_size must be > 0, got {step_size}")


def project(delta: torch.Tensor, original: torch.Tensor, budget: float, norm: Norm) -> torch.Tensor:
    """The nearest perturbation within the budget that keeps original + delta in [0, 1]."""
    if norm == "linf":
        delta = delta.clamp(-budget, budget)
    else:
        size = delta.norm()
        if size > budget:
            delta = delta * (budget / size)
    # Clipping to the pixel range only shrinks each |delta_i| (original is in [0, 1]): the budget still holds.
    return (original + delta).clamp(0, 1) - original


def descend(delta: torch.Tensor, grad: torch.Tensor, step_size: float, norm: Norm) -> torch.Tensor:
    """One step that lowers the loss: the gradient's sign (L-inf) or its unit direction (L2)."""
    if norm == "linf":
        return delta - step_size * grad.sign()
    return delta - step_size * grad / grad.norm().clamp(min=GRADIENT_FLOOR)


def fool(
    model: nn.Module,
    image: CanvasImage | np.ndarray | torch.Tensor,
    target: int,
    budget: float,
    norm: Norm = "linf",
    steps: int = DEFAULT_STEPS,
    step_size: float | None = None,
) -> AttackResult:
    """Targeted PGD within `budget` (pixel scale, in `norm`), at most `steps` steps of `step_size`
    (default: budget * 4 / steps), stopped at the first success. See the module docstring."""
    check_attack(target, budget, norm, steps, step_size)
    step_size = step_size if step_size is not None else budget / (STEP_FRACTION * steps)
    device = model_device(model)
    original = as_pixels(image).to(device)
    delta = torch.zeros_like(original)
    target_t = torch.tensor([target], device=device)
    best_delta, best_probs, best_p = delta, None, -1.0
    first_probs = None
    with torch.enable_grad(), single_thread(device.type == "cpu"):
        for step in range(steps + 1):
            x = (original + delta).requires_grad_(True)
            logits = model(normalize(x[None]))
            probs = logits.detach()[0].float().softmax(0)
            first_probs = probs if first_probs is None else first_probs
            if float(probs[target]) > best_p:
                best_delta, best_probs, best_p = delta, probs, float(probs[target])
            if int(probs.argmax()) == target:
                return attack_result(original, delta, probs, first_probs, target, True, norm, budget, step)
            if step == steps:
                break
            loss = F.cross_entropy(logits.float(), target_t)
            # Gradient with respect to the image only: the shared model's parameters keep their .grad.
            (grad,) = torch.autograd.grad(loss, x)
            delta = project(descend(delta, grad, step_size, norm), original, budget, norm).detach()
    return attack_result(original, best_delta, best_probs, first_probs, target, False, norm, budget, steps)


def attack_result(
    original: torch.Tensor,
    delta: torch.Tensor,
    probs: torch.Tensor,
    first_probs: torch.Tensor,
    target: int,
    success: bool,
    norm: Norm,
    budget: float,
    steps: int,
) -> AttackResult:
    delta = delta.detach().cpu()
    original = original.detach().cpu()
    return AttackResult(
        original=original.numpy(),
        perturbation=delta.numpy(),
        adversarial=(original + delta).numpy(),
        probabilities=probs.cpu().numpy(),
        original_probabilities=first_probs.cpu().numpy(),
        target=target,
        success=success,
        norm=norm,
        budget=budget,
        linf=float(delta.abs().max()),
        l2=float(delta.norm()),
        steps=steps,
    )
