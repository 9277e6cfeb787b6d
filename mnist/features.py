"""Penultimate features: the one function that reads them, for the verdict, its calibration and Inside.

A model's penultimate features are the input of its last Linear layer (`last_linear`); the layer maps them
to the 10 logits. `features_and_logits(model, x)` computes both in one forward pass:

- A registry model (an nn.Sequential ending in a Linear) runs its layers one by one and keeps the input of
  the last: no hooks, so the batch-1 pass of a Sketch stroke costs what a plain forward does (read_drawing's
  p50 in bench/verdicts.py), and it is thread-safe on a model other threads are running.
- Any other model with a Linear layer: a forward hook on its last Linear records the input, for the
  calling thread only (mnist.inside.recording).
- A model without a Linear layer: its logits stand for its features.
- An ensemble (mnist.ensemble): every member's features side by side, (B, D_1 + ... + D_K), and the log of
  the members' mean probabilities; through the fused network (one forward for all members) when it has one.
"""

from __future__ import annotations

import threading

import torch
from torch import nn

from .ensemble import Ensemble, StackedLinear, mean_log_probabilities, mean_of_side_by_side, members_of
from .errors import MnistError
from .predict import SMALL_BATCH, model_device, single_thread


def last_linear(model: nn.Module) -> nn.Module:
    """The model's last nn.Linear (in module order): its input is the penultimate feature vector."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise MnistError(f"{type(model).__name__} has no linear layer: no penultimate features to read")
    return linears[-1]


def split_model(model: nn.Module) -> tuple[list[nn.Module], nn.Module] | None:
    """(body layers, head) of an nn.Sequential whose last layer is a Linear (or a fused ensemble's
    StackedLinear: its body's output is the members' features side by side); None for any other model."""
    if isinstance(model, nn.Sequential) and len(model) > 1 and isinstance(model[-1], nn.Linear | StackedLinear):
        layers = list(model)
        return layers[:-1], layers[-1]
    return None


@torch.inference_mode()
def features_and_logits(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 1, 28, 28) normalised -> (B, D) penultimate features and (B, 10) logits, float32 on the CPU.

    The model must be in eval mode. An ensemble: its members' features side by side, and the log of their
    mean probabilities. Small CPU batches run on one thread (predict.SMALL_BATCH)."""
    device = model_device(model)
    with single_thread(device.type == "cpu" and len(x) <= SMALL_BATCH):
        h = x.to(device)
        fused = model.fused_for(h) if isinstance(model, Ensemble) else None
        if fused is not None:
            feats, stacked = member_features_and_logits(fused, h)  # (B, K * D), (B, K * 10)
            logits = mean_of_side_by_side(stacked, len(model.members))
        else:
            outputs = [member_features_and_logits(member, h) for member in members_of(model)]
            feats = torch.cat([f for f, _ in outputs], 1)
            logits = outputs[0][1] if len(outputs) == 1 else mean_log_probabilities([z for _, z in outputs])
    return feats.float().cpu(), logits.float().cpu()


def member_features_and_logits(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One network: (B, D) the input of its last Linear layer, and (B, 10) its logits."""
    split = split_model(model)
    if split is not None:
        body, head = split
        for layer in body:
            x = layer(x)
        feats = x.flatten(1)
        return feats, head(feats)
    if not any(isinstance(m, nn.Linear) for m in model.modules()):
        logits = model(x)
        return logits, logits
    return hooked_features_and_logits(model, x)


def hooked_features_and_logits(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The input of the last Linear layer read by a forward pre-hook that keeps the calling thread's only."""
    owner, seen = threading.get_ident(), []

    def keep(_module, args) -> None:
        if threading.get_ident() == owner:  # another thread's forward pass through the shared model
            seen.append(args[0])

    handle = last_linear(model).register_forward_pre_hook(keep)
    try:
        logits = model(x)
    finally:
        handle.remove()
    return seen[-1].flatten(1), logits
