import pytest
import torch

from mnist.errors import ConfigError
from mnist.models import ARCHS, build_model, count_parameters, summarize_model


def test_exact_parameter_counts():
    assert count_parameters(build_model("lenet-dropout")) == 21_840
    assert count_parameters(build_model("seed-4conv")) == 593_200


@pytest.mark.parametrize("arch", list(ARCHS))
def test_every_arch_returns_logits_and_summary_adds_up(arch):
    model = build_model(arch).eval()
    with torch.inference_mode():
        out = model(torch.randn(3, 1, 28, 28))
    assert out.shape == (3, 10)
    # Logits, not probabilities: rows do not sum to one.
    assert not torch.allclose(out.softmax(1).sum(1), out.sum(1))
    rows = summarize_model(model)
    assert sum(r.params for r in rows) == count_parameters(model)
    assert rows[-1].output_shape == (10,)
    assert ARCHS[arch].description


def test_seed_4conv_flattens_4096_features():
    rows = summarize_model(build_model("seed-4conv"))
    flatten = next(r for r in rows if r.kind == "Flatten")
    assert flatten.output_shape == (4096,)


def test_modern_arch_has_batch_norm_and_no_giant_dense_layer():
    model = build_model("cnn-bn")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    biggest_linear = max(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert biggest_linear <= 128 * 10


def test_unknown_arch_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown architecture 'resnet'"):
        build_model("resnet")
