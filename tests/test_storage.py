"""How loaded models are stored and laid out: float16 weight files, and channels-last inference."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save
from test_ensemble import TinyData, run_cli, save_member

from mnist.checkpoint import WEIGHTS_FILE, encode_weights, load_checkpoint, load_uploaded, save_ensemble, save_run
from mnist.config import TrainConfig
from mnist.data import normalize
from mnist.ensemble import Ensemble, members_of
from mnist.errors import CheckpointError
from mnist.models import ARCHS, build_model, ready_for_inference
from mnist.records import RunMetrics
from mnist.train import evaluate

CONV_ARCHS = ("cnn-bn-fast", "cnn-bn-lite")  # small, one plain and one pooled before batch norm


def stored_dtypes(path: Path) -> set[str]:
    with safe_open(str(path), framework="pt") as f:
        return {str(f.get_slice(k).get_dtype()) for k in f.keys()}


def trained_looking(arch: str, seed: int) -> torch.nn.Module:
    """A model with non-default batch-norm statistics (a fresh one's would hide rounding)."""
    torch.manual_seed(seed)
    model = build_model(arch).train()
    with torch.no_grad():
        model(torch.randn(32, 1, 28, 28) * 2 + 0.5)
    return model.eval()


@pytest.fixture
def members(runs_dir):
    paths = []
    for k, arch in enumerate(CONV_ARCHS * 2):
        config = TrainConfig(arch=arch)
        paths.append(save_run(trained_looking(arch, k), config, RunMetrics(test_accuracy=0.5), None, runs_dir, f"m{k}"))
    return [load_checkpoint(p) for p in paths]


def test_a_float16_ensemble_is_half_the_file_and_measured_as_stored(members, runs_dir):
    wide = save_ensemble(members, TinyData, runs_dir, "f32")
    half = save_ensemble(members, TinyData, runs_dir, "f16", storage="float16")
    assert stored_dtypes(wide / WEIGHTS_FILE) == {"F32", "I64"}  # I64: batch norm's counters stay integers
    assert stored_dtypes(half / WEIGHTS_FILE) == {"F16", "I64"}
    size_ratio = (half / WEIGHTS_FILE).stat().st_size / (wide / WEIGHTS_FILE).stat().st_size
    assert 0.45 < size_ratio < 0.6  # the JSON header stays the same size

    loaded = load_checkpoint(half)
    assert {p.dtype for p in loaded.model.state_dict().values() if p.is_floating_point()} == {torch.float32}
    x = normalize(TinyData.test_images)
    with torch.inference_mode():
        a, b = load_checkpoint(wide).model(x), loaded.model(x)
    assert not torch.equal(a, b)  # rounded...
    assert torch.allclose(a, b, atol=0.05)  # ...by float16's 3 decimal digits, no more
    recorded = loaded.record.metrics
    measured = evaluate(loaded.model, TinyData.test_images, TinyData.test_labels)
    assert (recorded.test_accuracy, recorded.test_loss) == pytest.approx((measured.accuracy, measured.loss), abs=1e-6)
    for member in members:  # the members the caller passed are not rounded
        assert stored_dtypes(member.path / WEIGHTS_FILE) == {"F32", "I64"}
        assert torch.equal(member.model[0].weight, load_checkpoint(member.path).model[0].weight)


def test_weights_beyond_float16_are_refused_not_saved_as_infinity(members):
    model = copy.deepcopy(members[0].model)
    norm = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    norm.running_var[0] = 1e6  # float16 tops out at 65,504
    record = members[0].record
    with pytest.raises(CheckpointError, match="beyond the range of torch.float16: store the weights as float32"):
        encode_weights(model, record, "float16")
    assert encode_weights(model, record)  # float32 keeps them


def test_a_float16_upload_loads_and_other_narrow_dtypes_are_refused(members):
    source = members[0]
    state = {k: v.half() if v.is_floating_point() else v for k, v in source.model.state_dict().items()}
    meta = (source.path / "meta.json").read_bytes()
    loaded = load_uploaded(save({k: v.contiguous() for k, v in state.items()}), meta)
    assert loaded.model[0].weight.dtype == torch.float32
    bf16 = {k: v.bfloat16() if v.is_floating_point() else v for k, v in source.model.state_dict().items()}
    with pytest.raises(CheckpointError, match="torch.bfloat16, architecture .* needs .* torch.float32"):
        load_uploaded(save({k: v.contiguous() for k, v in bf16.items()}), meta)


@pytest.mark.slow
def test_cli_ensemble_weights_dtype(mnist_dir, runs_dir):
    for k, arch in enumerate(("mlp", "cnn-bn-fast")):
        save_member(runs_dir, arch, f"m{k}")
    made = run_cli("ensemble", "m0", "m1", "--name", "half", "--weights-dtype", "float16", "--data-dir", str(mnist_dir))
    assert made.returncode == 0, made.stderr
    assert stored_dtypes(runs_dir / "half" / WEIGHTS_FILE) == {"F16", "I64"}
    bad = run_cli("ensemble", "m0", "m1", "--weights-dtype", "int8", "--data-dir", str(mnist_dir))
    assert bad.returncode == 2 and "invalid choice: 'int8'" in bad.stderr


@pytest.mark.parametrize("arch", [a for a in ARCHS if a != "mlp"])
def test_loaded_models_compute_channels_last_and_agree_with_nchw(arch, runs_dir):
    model = trained_looking(arch, 0)
    path = save_run(model, TrainConfig(arch=arch), RunMetrics(), None, runs_dir, "run")
    loaded = load_checkpoint(path).model
    convs = [m.weight for m in loaded.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert not all(w.is_contiguous() for w in convs)  # a real change of layout, not a no-op
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        assert torch.allclose(loaded(x), model(x), atol=1e-4)


def test_a_fused_ensemble_follows_its_members_layout(members):
    loaded = Ensemble(m.model for m in members[::2]).eval()  # both cnn-bn-fast: they fuse
    nchw = copy.deepcopy(loaded).to(memory_format=torch.contiguous_format)
    x = torch.randn(1, 1, 28, 28)
    for ensemble, channels_last in ((loaded, True), (nchw, False)):
        fused = ensemble.fused_for(x)
        weights = [m.weight for m in fused if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1]
        assert all(w.is_contiguous(memory_format=torch.channels_last) == channels_last for w in weights)
    with torch.inference_mode():
        assert torch.allclose(loaded(x), nchw(x), atol=1e-4)
    assert all(member[0].weight.dtype == torch.float32 for member in members_of(loaded))


def test_ready_for_inference_keeps_the_values(members):
    model = trained_looking(CONV_ARCHS[0], 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ready = ready_for_inference(model.train())
    assert not ready.training
    assert all(torch.equal(before[k], v) for k, v in ready.state_dict().items())
