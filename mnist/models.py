"""Architectures by name, each returning logits, with parameter counts and a layer summary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .constants import IMAGE_SIZE, NUM_CLASSES
from .errors import ConfigError


@dataclass(frozen=True)
class ArchSpec:
    name: str
    description: str
    build: Callable[[], nn.Module]
    # Train in channels-last memory (mnist.train then gives it the inference layout): measured faster on a
    # 2-core CPU for these nets, slower for others. Inference is channels-last for all (ready_for_inference).
    channels_last: bool = False


@dataclass(frozen=True)
class LayerRow:
    """One row of a torchsummary-style table."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int


ARCHS: dict[str, ArchSpec] = {}
# Loaded models hold their conv weights channels-last: oneDNN then computes every layer in that layout.
# Measured (2026-12-02, 2 cores, AVX512, eval mode, each architecture NCHW against channels-last): batch 1
# 1.2-1.9x faster (cnn-bn-wide 3.9 -> 2.7 ms; an NCHW max-pool alone cost 1 ms of a fused ensemble's
# pass), batch 1000 1.5-2.8x; the mlp unchanged. A 1-channel input needs no conversion: the weights decide.
INFERENCE_MEMORY_FORMAT = torch.channels_last


def register(name: str, description: str, channels_last: bool = False):
    def wrap(build: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
        ARCHS[name] = ArchSpec(name, description, build, channels_last)
        return build

    return wrap


def conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    # No conv bias: the batch norm's shift makes it redundant.
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


@register("mlp", "Beginner's model: linear layers only, 784-256-128-10 with ReLU and dropout.")
def build_mlp() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(IMAGE_SIZE * IMAGE_SIZE, 256),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(256, 128),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(128, NUM_CLASSES),
    )


@register(
    "lenet-dropout",
    "The classic PyTorch tutorial CNN: conv 1-10 k5, conv 10-20 k5 with Dropout2d, max-pool after each, "
    "fc 320-50-10 with dropout.",
)
def build_lenet_dropout() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 10, 5),  # (10, 24, 24)
        nn.MaxPool2d(2),
        nn.ReLU(),
        nn.Conv2d(10, 20, 5),  # (20, 8, 8)
        nn.Dropout2d(0.5),
        nn.MaxPool2d(2),  # (20, 4, 4)
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(320, 50),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(50, NUM_CLASSES),
    )


@register(
    "seed-4conv",
    "Four unpadded 3x3 convs (32, 64, 128, 256 channels) with max-pools after the 2nd and 4th, "
    "then a 4096-50-10 dense head. Heavy for its accuracy: 593,200 parameters.",
)
def build_seed_4conv() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3),  # (32, 26, 26)
        nn.ReLU(),
        nn.Conv2d(32, 64, 3),  # (64, 24, 24)
        nn.ReLU(),
        nn.MaxPool2d(2),  # (64, 12, 12)
        nn.Conv2d(64, 128, 3),  # (128, 10, 10)
        nn.ReLU(),
        nn.Conv2d(128, 256, 3),  # (256, 8, 8)
        nn.ReLU(),
        nn.MaxPool2d(2),  # (256, 4, 4) = 4096 features
        nn.Flatten(),
        nn.Linear(4096, 50),
        nn.ReLU(),
        nn.Linear(50, NUM_CLASSES),
    )


@register(
    "cnn-bn-fast",
    "Small modern CNN for CPUs: three 3x3 conv + batch-norm stages (16, 32, 64 channels), each halving "
    "the image, and a linear head. Passes 99% in two epochs.",
)
def build_cnn_bn_fast() -> nn.Module:
    return nn.Sequential(
        *conv_bn(1, 16),
        nn.MaxPool2d(2),  # (16, 14, 14)
        *conv_bn(16, 32),
        nn.MaxPool2d(2),  # (32, 7, 7)
        *conv_bn(32, 64),
        nn.MaxPool2d(2),  # (64, 3, 3)
        nn.Flatten(),
        nn.Linear(64 * 3 * 3, NUM_CLASSES),
    )


def conv_pool_bn(c_in: int, c_out: int) -> list[nn.Module]:
    """3x3 conv, then the 2x2 max-pool, then batch norm and ReLU on a quarter of the pixels.

    Max-pool commutes with ReLU, so this is conv-BN-ReLU-pool with BN's statistics taken after pooling;
    BN, ReLU and their backward passes cost a quarter (they were half a CPU training step at 28x28).
    """
    return [
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.MaxPool2d(2),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


@register(
    "cnn-bn-lite",
    "Fastest to train on a CPU: three stages of 3x3 conv, max-pool, then batch norm and ReLU on the pooled "
    "image (16, 32, 64 channels), trained channels-last (vectorised pooling), and a linear head. "
    "99.2% in one epoch, about 8 s on 2 cores.",
    channels_last=True,
)
def build_cnn_bn_lite() -> nn.Module:
    return nn.Sequential(
        *conv_pool_bn(1, 16),  # (16, 14, 14)
        *conv_pool_bn(16, 32),  # (32, 7, 7)
        *conv_pool_bn(32, 64),  # (64, 3, 3)
        nn.Flatten(),
        nn.Linear(64 * 3 * 3, NUM_CLASSES),
    )


@register(
    "cnn-bn",
    "Modern CNN: five 3x3 conv + batch-norm layers (32, 32, 64, 64, 128 channels), two max-pools, "
    "global average pooling and a linear head; no giant dense layer. 99.6%+ with augmentation.",
    channels_last=True,  # a training step 0.80x the time (bench/train_speed.py's note in the README)
)
def build_cnn_bn() -> nn.Module:
    return nn.Sequential(
        *conv_bn(1, 32),
        *conv_bn(32, 32),
        nn.MaxPool2d(2),  # (32, 14, 14)
        *conv_bn(32, 64),
        *conv_bn(64, 64),
        nn.MaxPool2d(2),  # (64, 7, 7)
        *conv_bn(64, 128),
        nn.AdaptiveAvgPool2d(1),  # (128, 1, 1)
        nn.Flatten(),
        nn.Linear(128, NUM_CLASSES),
    )


@register(
    "cnn-bn-wide",
    "Wider modern CNN: five 3x3 conv layers (48, 48, 96, 96, 192 channels), batch norm after each, the "
    "second and fourth pooled before their batch norm (a quarter of the pixels), global average pooling "
    "and a linear head; trained channels-last. 99.7% with augmentation.",
    channels_last=True,
)
def build_cnn_bn_wide() -> nn.Module:
    # 1.5x cnn-bn's widths: 2.25x its multiply-adds, but a training step 1.83x its time on a 2-core CPU
    # (pooling before batch norm, as in cnn-bn-lite; /tmp measurement in the README's notes).
    return nn.Sequential(
        *conv_bn(1, 48),
        *conv_pool_bn(48, 48),  # (48, 14, 14)
        *conv_bn(48, 96),
        *conv_pool_bn(96, 96),  # (96, 7, 7)
        *conv_bn(96, 192),
        nn.AdaptiveAvgPool2d(1),  # (192, 1, 1)
        nn.Flatten(),
        nn.Linear(192, NUM_CLASSES),
    )


def build_model(arch: str) -> nn.Module:
    """A freshly initialised model for a registered architecture name."""
    if arch not in ARCHS:
        raise ConfigError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    return ARCHS[arch].build()


def ready_for_inference(model: nn.Module) -> nn.Module:
    """`model` in eval mode with its weights in the inference memory layout (the values are unchanged).

    Its state_dict's conv weights are then channels-last: safetensors saves contiguous tensors only, so call
    .contiguous() on each first (mnist.checkpoint.encode_weights does)."""
    return model.to(memory_format=INFERENCE_MEMORY_FORMAT).eval()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def summarize_model(model: nn.Module) -> list[LayerRow]:
    """Layer, output shape (batch dim dropped) and own parameter count of every leaf layer."""
    rows: list[LayerRow] = []
    hooks = []
    for name, module in model.named_modules():
        if list(module.children()):
            continue

        def hook(mod, _inputs, output, name=name):
            own = sum(p.numel() for p in mod.parameters(recurse=False))
            rows.append(LayerRow(name, type(mod).__name__, tuple(output.shape[1:]), own))

        hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    device = next(model.parameters()).device
    try:
        model.eval()
        with torch.inference_mode():
            model(torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE, device=device))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return rows
