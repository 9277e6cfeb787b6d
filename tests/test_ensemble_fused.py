"""The fused forward of a same-architecture ensemble: the same numbers as member by member, on small batches."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mnist.ensemble import FUSED_MAX_BATCH, Ensemble, fuse_members, mean_log_probabilities
from mnist.models import ARCHS, build_model
from mnist.verdict import features_and_logits, member_features_and_logits


def trained_looking(arch: str) -> nn.Module:
    """A fresh model whose batch norms hold non-trivial statistics, as a trained model's do, in eval mode."""
    model = build_model(arch)
    for layer in model.modules():
        if isinstance(layer, nn.BatchNorm2d | nn.BatchNorm1d):
            layer.running_mean.normal_()
            layer.running_var.uniform_(0.5, 2.0)
            layer.weight.data.uniform_(0.5, 1.5)
            layer.bias.data.normal_()
    return model.eval()


def member_by_member(members: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    return mean_log_probabilities([m(x) for m in members])


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_every_architecture_fuses_to_the_same_output(arch):
    members = [trained_looking(arch) for _ in range(3)]
    ensemble = Ensemble(members).eval()
    x = torch.randn(FUSED_MAX_BATCH, 1, 28, 28)
    with torch.inference_mode():
        out = ensemble(x)
        expected = member_by_member(members, x)
    assert ensemble.fused_for(x) is not None, f"{arch} does not fuse: Sketch would run its members one by one"
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_fused_features_are_the_members_side_by_side():
    members = [trained_looking("cnn-bn") for _ in range(3)]
    ensemble = Ensemble(members).eval()
    x = torch.randn(4, 1, 28, 28)
    feats, logits = features_and_logits(ensemble, x)
    with torch.inference_mode():
        member_feats = torch.cat([member_features_and_logits(m, x)[0] for m in members], 1)
        torch.testing.assert_close(logits, member_by_member(members, x), atol=1e-5, rtol=1e-5)
    assert feats.shape == (4, 3 * 128)
    torch.testing.assert_close(feats, member_feats, atol=1e-5, rtol=1e-5)


def test_different_architectures_and_large_batches_go_member_by_member():
    mixed = [trained_looking("cnn-bn-fast"), trained_looking("cnn-bn-lite")]
    assert fuse_members(mixed) is None
    same = Ensemble([trained_looking("cnn-bn-fast") for _ in range(2)]).eval()
    big = torch.randn(FUSED_MAX_BATCH + 1, 1, 28, 28)
    assert same.fused_for(big) is None
    assert same.train().fused_for(big[:1]) is None  # training mode: the members' own batch statistics
    differently_shaped = [trained_looking("cnn-bn-fast"), trained_looking("cnn-bn-fast")]
    differently_shaped[1][0] = nn.Conv2d(1, 16, 5, padding=2, bias=False)  # same type, other kernel
    assert fuse_members(differently_shaped) is None


def test_new_weights_rebuild_the_fused_network():
    ensemble = Ensemble([trained_looking("cnn-bn-fast") for _ in range(2)]).eval()
    other = Ensemble([trained_looking("cnn-bn-fast") for _ in range(2)]).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.inference_mode():
        before = ensemble(x)
        ensemble.load_state_dict(other.state_dict())
        ensemble.eval()
        after = ensemble(x)
        torch.testing.assert_close(after, other(x), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(before, after)


def test_gradients_through_the_fused_network_match():
    """Saliency maps and attacks differentiate the model's output with respect to its input."""
    members = [trained_looking("cnn-bn-lite") for _ in range(2)]
    ensemble = Ensemble(members).eval()
    x = torch.randn(3, 1, 28, 28)
    with torch.inference_mode():
        ensemble(x)  # the fused network is built under inference mode, then used under autograd
    fused_x = x.clone().requires_grad_(True)
    (fused_grad,) = torch.autograd.grad(ensemble(fused_x)[:, 3].sum(), fused_x)
    loop_x = x.clone().requires_grad_(True)
    (loop_grad,) = torch.autograd.grad(member_by_member(members, loop_x)[:, 3].sum(), loop_x)
    torch.testing.assert_close(fused_grad, loop_grad, atol=1e-5, rtol=1e-4)
