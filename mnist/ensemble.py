"""An ensemble of models as one model: the mean of its members' probabilities.

Its forward returns log(mean_k softmax(member_k(x))), shape (B, 10), so every caller that treats a
model's output as logits (softmax, argmax, cross-entropy, integrated gradients) keeps working:
softmax(log p) = p because p sums to 1. Members may have different architectures.

Its state dict names each member's tensors `members.<k>.<name>` (nn.ModuleList): the weights file of an
ensemble run holds every member, so it is self-contained (mnist.checkpoint saves and loads it).

What an ensemble shows of itself where one network is needed (feature maps, filters, the digit map,
fool the model, the saliency map): its first member (`first_member`). The verdict's not-a-digit check
uses all members' features side by side (mnist.verdict).
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


class Ensemble(nn.Module):
    def __init__(self, members: Iterable[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)
        if not MIN_MEMBERS <= len(self.members) <= MAX_MEMBERS:
            raise MnistError(f"an ensemble needs {MIN_MEMBERS} to {MAX_MEMBERS} models, got {len(self.members)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) normalised -> (B, 10) log of the members' mean probabilities."""
        return mean_log_probabilities([member(x) for member in self.members])


def mean_log_probabilities(logits: list[torch.Tensor]) -> torch.Tensor:
    """K tensors of (B, 10) logits -> (B, 10) log of their mean softmax, computed stably in log space."""
    log_probs = torch.stack([z.float().log_softmax(1) for z in logits])  # (K, B, 10)
    return torch.logsumexp(log_probs, 0) - math.log(len(logits))


def build_ensemble(archs: Iterable[str]) -> Ensemble:
    """A freshly initialised ensemble of the named architectures, in order."""
    return Ensemble(build_model(arch) for arch in archs)


def first_member(model: nn.Module) -> nn.Module:
    """The network that stands for `model` where a single one is needed: an ensemble's first member."""
    return model.members[0] if isinstance(model, Ensemble) else model


def members_of(model: nn.Module) -> list[nn.Module]:
    """An ensemble's members, or [model] for a single model."""
    return list(model.members) if isinstance(model, Ensemble) else [model]
