"""An ensemble of models as one model: the mean of its members' probabilities.

Its forward returns log(mean_k softmax(member_k(x))), shape (B, 10), so every caller that treats a
model's output as logits (softmax, argmax, cross-entropy, integrated gradients) keeps working:
softmax(log p) = p because p sums to 1. Members may have different architectures.

Its state dict names each member's tensors `members.<k>.<name>` (nn.ModuleList): the weights file of an
ensemble run holds every member, so it is self-contained (mnist.checkpoint saves and loads it).

What an ensemble shows of itself where one network is needed (feature maps, filters, the digit map,
fool the model, the saliency map): its first member (`first_member`). The verdict's not-a-digit check
uses all members' features side by side (mnist.verdict).

Small batches (a sketch, a number's few digits) run fused when the members share one architecture made
of fusable layers (`fuse_members`): one network whose every layer computes all K members side by side,
convolutions grouped by member, so a 3-member cnn-bn pass runs 5 convolutions rather than 15. The output is the
same up to float rounding. Measured on 2 busy cores (bench/predict_latency.py,
2026-12-02): a sketch's prediction with the fused 3-member cnn-bn ensemble took 0.5-0.7x the p50 time of
member by member; at batch 500 fused took about 1.1x, so large batches keep the member-by-member pass.
Built on first use, in its members' memory layout (channels-last once loaded: mnist.models.ready_for_inference);
train(), .to() and load_state_dict drop it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from .errors import MnistError
from .models import build_model

MIN_MEMBERS = 2  # one model alone is a run, not an ensemble
MAX_MEMBERS = 16  # 16 of the largest architecture (2.4 MB) stay under the checkpoint size limit
FUSED_MAX_BATCH = 16  # up to this many images, an eval-mode forward runs fused (module docstring)
# Layers that act on each channel (or each value) alone: they serve all members side by side unchanged.
CHANNELWISE = (
    nn.ReLU,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.Identity,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,  # identities in eval mode, the only mode that fuses
)


class Ensemble(nn.Module):
    def __init__(self, members: Iterable[nn.Module], fuse: bool = True):
        """fuse=False always runs the members one by one (bench/predict_latency.py compares the two)."""
        super().__init__()
        self.fuse = fuse
        self.members = nn.ModuleList(members)
        if not MIN_MEMBERS <= len(self.members) <= MAX_MEMBERS:
            raise MnistError(f"an ensemble needs {MIN_MEMBERS} to {MAX_MEMBERS} models, got {len(self.members)}")
        self._fused: tuple[nn.Sequential | None] | None = None  # (fused network or None), built on first use

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) normalised -> (B, 10) log of the members' mean probabilities."""
        fused = self.fused_for(x)
        if fused is not None:
            return mean_of_side_by_side(fused(x), len(self.members))
        return mean_log_probabilities([member(x) for member in self.members])

    def fused_for(self, x: torch.Tensor) -> nn.Sequential | None:
        """The fused network for an eval-mode forward of `x`, or None: train mode, a large batch, or
        members that do not fuse. Thread-safe: concurrent builders each build and store a whole one."""
        if not self.fuse or self.training or len(x) > FUSED_MAX_BATCH:
            return None
        if self._fused is None:
            self._fused = (fuse_members(list(self.members)),)
        return self._fused[0]

    # An ensemble is never trained: its weights change only through these, which drop the fused copy.
    def train(self, mode: bool = True) -> Ensemble:
        if mode:  # eval() keeps it: evaluate() toggles the mode around every test-set pass
            self._fused = None
        return super().train(mode)

    def _apply(self, fn, recurse=True):  # .to(), .float(), .cuda(): the fused copy would stay behind
        self._fused = None
        return super()._apply(fn, recurse)

    def load_state_dict(self, state_dict, strict=True, assign=False):
        self._fused = None
        return super().load_state_dict(state_dict, strict, assign)


class StackedLinear(nn.Module):
    """K members' Linear layers, each on its own block of the features: (B, K * I) -> (B, K * O)."""

    def __init__(self, linears: list[nn.Linear]):
        super().__init__()
        self.register_buffer("weight", torch.stack([layer.weight for layer in linears]).transpose(1, 2))  # (K, I, O)
        zeros = linears[0].weight.new_zeros(linears[0].out_features)
        bias = [layer.bias if layer.bias is not None else zeros for layer in linears]
        self.register_buffer("bias", torch.stack(bias).unsqueeze(1))  # (K, 1, O)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, batch = len(self.weight), len(x)
        blocks = x.reshape(batch, k, -1).transpose(0, 1)  # (K, B, I)
        return torch.baddbmm(self.bias, blocks, self.weight).transpose(0, 1).reshape(batch, -1)


@torch.inference_mode(False)  # ordinary tensors, usable under autograd (saliency, attacks) too
@torch.no_grad()
def fuse_members(members: list[nn.Module]) -> nn.Sequential | None:
    """One eval-mode network computing K same-architecture members side by side, or None if they differ
    or hold a layer it cannot fuse. Its output is (B, K * 10), member k's logits at [10k, 10k + 10); the
    input of its last layer is the members' penultimate features side by side, as mnist.verdict takes them.

    Until the first layer with weights every member sees the same input: its weights are concatenated
    (K times the outputs). After it, each member's channels are a contiguous block, so convolutions are
    grouped by member, per-channel layers (batch norm's statistics too) are concatenated, and Linear layers
    are StackedLinear. Flatten keeps the blocks contiguous: it flattens each channel's pixels in turn.
    """
    if not all(isinstance(m, nn.Sequential) for m in members) or len({len(m) for m in members}) != 1:
        return None
    shared, layers = True, []
    for group in zip(*members, strict=True):
        first = group[0]
        if any(type(layer) is not type(first) or layer.extra_repr() != first.extra_repr() for layer in group):
            return None
        if isinstance(first, nn.Conv2d) and first.padding_mode == "zeros" and (shared is False or first.groups == 1):
            layers.append(fuse_convs(group, shared))
        elif isinstance(first, nn.Linear):
            layers.append(fuse_linears(group) if shared else StackedLinear(group))
        elif isinstance(first, nn.BatchNorm2d | nn.BatchNorm1d) and not shared and first.track_running_stats:
            layers.append(fuse_batch_norms(group))
        elif isinstance(first, CHANNELWISE) and getattr(first, "start_dim", 1) == 1:
            layers.append(first)
            continue
        else:
            return None
        shared = False
    if shared or not isinstance(layers[-1], StackedLinear):
        return None
    return nn.Sequential(*layers).to(memory_format=memory_format_of(members[0])).eval()


def memory_format_of(model: nn.Module) -> torch.memory_format:
    """channels_last if the model's conv weights are (a loaded model's are), else contiguous. A weight with
    one input channel is both at once, so the first conv with more decides."""
    weight = next((p for p in model.parameters() if p.dim() == 4 and p.shape[1] > 1), None)
    if weight is not None and weight.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def fuse_convs(convs: tuple[nn.Conv2d, ...], shared: bool) -> nn.Conv2d:
    c, k, has_bias = convs[0], len(convs), convs[0].bias is not None
    groups, in_channels = (c.groups, c.in_channels) if shared else (c.groups * k, c.in_channels * k)
    fused = nn.Conv2d(in_channels, c.out_channels * k, c.kernel_size, c.stride, c.padding, c.dilation, groups, has_bias)
    return concatenated_into(fused, convs, ("weight", "bias") if has_bias else ("weight",))


def fuse_linears(linears: tuple[nn.Linear, ...]) -> nn.Linear:
    """Linear layers on the same input: their outputs side by side."""
    first, has_bias = linears[0], linears[0].bias is not None
    fused = nn.Linear(first.in_features, first.out_features * len(linears), has_bias)
    return concatenated_into(fused, linears, ("weight", "bias") if has_bias else ("weight",))


def fuse_batch_norms(norms: tuple[nn.BatchNorm2d | nn.BatchNorm1d, ...]):
    first = norms[0]
    fused = type(first)(first.num_features * len(norms), first.eps, affine=first.affine)
    names = ("running_mean", "running_var") + (("weight", "bias") if first.affine else ())
    return concatenated_into(fused, norms, names).eval()


def concatenated_into(fused: nn.Module, layers: tuple[nn.Module, ...], names: tuple[str, ...]) -> nn.Module:
    """`fused` (on the layers' device) holding each named tensor of the layers concatenated, in order."""
    for name in names:
        getattr(fused, name).copy_(torch.cat([getattr(layer, name) for layer in layers]))
    return fused.to(getattr(layers[0], names[0]).device)


def mean_log_probabilities(logits: list[torch.Tensor]) -> torch.Tensor:
    """K tensors of (B, 10) logits -> (B, 10) log of their mean softmax, computed stably in log space."""
    log_probs = torch.stack([z.float().log_softmax(1) for z in logits])  # (K, B, 10)
    return torch.logsumexp(log_probs, 0) - math.log(len(logits))


def mean_of_side_by_side(logits: torch.Tensor, k: int) -> torch.Tensor:
    """(B, K * 10) a fused network's logits, member by member -> (B, 10) log of their mean probabilities."""
    return mean_log_probabilities(logits.view(len(logits), k, -1).unbind(1))


def build_ensemble(archs: Iterable[str]) -> Ensemble:
    """A freshly initialised ensemble of the named architectures, in order."""
    return Ensemble(build_model(arch) for arch in archs)


def first_member(model: nn.Module) -> nn.Module:
    """The network that stands for `model` where a single one is needed: an ensemble's first member."""
    return model.members[0] if isinstance(model, Ensemble) else model


def members_of(model: nn.Module) -> list[nn.Module]:
    """An ensemble's members, or [model] for a single model."""
    return list(model.members) if isinstance(model, Ensemble) else [model]
