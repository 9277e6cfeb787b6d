"""Ensembles: the mean of the members' probabilities, saved and loaded like any run, refused when damaged."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import random_mnist
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from mnist.checkpoint import META_FILE, META_KEY, WEIGHTS_FILE, load_checkpoint, load_uploaded, save_ensemble, save_run
from mnist.config import TrainConfig
from mnist.ensemble import Ensemble, members_of
from mnist.errors import CheckpointError, MnistError
from mnist.models import build_model, count_parameters
from mnist.predict import predict_tensor, saliency_map
from mnist.preprocess import CanvasImage
from mnist.records import RunMetrics, RunRecord
from mnist.runs import list_runs
from mnist.verdict import features_and_logits, read_drawing

ARCHS = ("mlp", "cnn-bn-fast")  # two small, different architectures


class TinyData:
    """The test split of a data set: 40 random images, enough to measure an ensemble."""

    test_images = torch.randint(0, 256, (40, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    test_labels = torch.arange(40) % 10


def save_member(runs_dir: Path, arch: str, name: str, accuracy: float = 0.5) -> Path:
    model = build_model(arch).eval()
    return save_run(model, TrainConfig(arch=arch), RunMetrics(test_accuracy=accuracy), None, runs_dir, name)


@pytest.fixture
def ensemble_dir(runs_dir) -> Path:
    members = [load_checkpoint(save_member(runs_dir, arch, f"m{k}")) for k, arch in enumerate(ARCHS)]
    return save_ensemble(members, TinyData, runs_dir, "ens", owner="someone")


def test_forward_is_the_log_of_the_mean_probability():
    a, b = build_model("mlp").eval(), build_model("cnn-bn-fast").eval()
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        expected = (a(x).softmax(1) + b(x).softmax(1)) / 2
        out = Ensemble([a, b])(x)
    assert out.shape == (5, 10)
    torch.testing.assert_close(out.exp(), expected)
    torch.testing.assert_close(out.softmax(1), expected)  # what every caller of a model's "logits" computes
    torch.testing.assert_close(predict_tensor(Ensemble([a, b]), x), expected)


def test_one_member_is_refused():
    with pytest.raises(MnistError, match="2 to 16 models, got 1"):
        Ensemble([build_model("mlp")])


def test_round_trip_keeps_every_member_and_the_description(ensemble_dir, runs_dir):
    ckpt = load_checkpoint(ensemble_dir)
    record = ckpt.record
    assert isinstance(ckpt.model, Ensemble) and not ckpt.model.training
    assert record.is_ensemble and record.arch == "ensemble"
    assert record.model_text == "ensemble of 2 · mlp + cnn-bn-fast"
    assert [m.name for m in record.members] == ["m0", "m1"]
    assert [m.arch for m in record.members] == list(ARCHS)
    assert [m.metrics.test_accuracy for m in record.members] == [0.5, 0.5]
    assert record.parameters == sum(count_parameters(build_model(a)) for a in ARCHS)
    assert record.provenance.owner == "someone"
    # Its metrics are its own, measured on the test split when it was made.
    x = TinyData.test_images.float().div(255)  # any input: the loaded weights must be the members' own
    members = [load_checkpoint(runs_dir / f"m{k}").model for k in range(2)]
    with torch.no_grad():
        torch.testing.assert_close(ckpt.model(x[:, None]), Ensemble(members)(x[:, None]))
    assert record.metrics.test_accuracy is not None and 0 <= record.metrics.test_accuracy <= 1
    # The weights file alone is enough (uploads): its description is embedded.
    upload = load_uploaded((ensemble_dir / WEIGHTS_FILE).read_bytes(), None, "ens.safetensors")
    assert upload.record == record
    # It is listed like any run.
    assert {r.name: r.record.is_ensemble for r in list_runs(runs_dir)} == {"ens": True, "m0": False, "m1": False}


def test_single_runs_load_as_before(runs_dir):
    record = load_checkpoint(save_member(runs_dir, "mlp", "single")).record
    assert not record.is_ensemble and record.arch == "mlp" and record.model_text == "mlp"
    assert "members" not in record.to_dict() and record.to_dict()["config"]["arch"] == "mlp"


def test_an_ensemble_given_as_a_member_adds_its_members(ensemble_dir, runs_dir):
    extra = load_checkpoint(save_member(runs_dir, "mlp", "m2", accuracy=0.7))
    bigger = load_checkpoint(save_ensemble([load_checkpoint(ensemble_dir), extra], TinyData, runs_dir, "trio"))
    record = bigger.record
    assert [m.name for m in record.members] == ["m0", "m1", "m2"]  # flat: no ensemble inside an ensemble
    assert [m.arch for m in record.members] == [*ARCHS, "mlp"]
    assert [m.metrics.test_accuracy for m in record.members] == [0.5, 0.5, 0.7]
    singles = [load_checkpoint(runs_dir / f"m{k}").model for k in range(3)]
    x = TinyData.test_images[:8, None].float().div(255)
    with torch.no_grad():
        torch.testing.assert_close(bigger.model(x), Ensemble(singles)(x))  # each member weighs a third


@pytest.mark.parametrize(("chosen", "which"), [(["m0", "m0"], "m0"), (["ens", "m1"], "m1"), (["ens", "ens"], "m0")])
def test_the_same_model_twice_is_refused(ensemble_dir, runs_dir, chosen, which):
    members = [load_checkpoint(runs_dir / name) for name in chosen]
    with pytest.raises(CheckpointError, match=rf"the same model comes twice \({which}, alone or inside an ensemble\)"):
        save_ensemble(members, TinyData, runs_dir, "twice")
    assert not (runs_dir / "twice").exists()


def test_a_copy_of_a_run_in_another_folder_is_the_same_model(ensemble_dir, runs_dir):
    shutil.copytree(runs_dir / "m0", runs_dir / "copy")  # the weights decide, not the folder
    members = [load_checkpoint(runs_dir / "m0"), load_checkpoint(runs_dir / "copy")]
    with pytest.raises(CheckpointError, match=r"twice \(m0, alone"):
        save_ensemble(members, TinyData, runs_dir, "twice")


def test_a_taken_name_is_refused_before_evaluating(ensemble_dir, runs_dir):
    members = [load_checkpoint(runs_dir / "m0"), load_checkpoint(runs_dir / "m1")]
    with pytest.raises(CheckpointError, match="already exists"):
        save_ensemble(members, None, runs_dir, "ens")  # no data: it would fail if it evaluated first


def test_verdict_and_saliency_work_through_an_ensemble(ensemble_dir):
    model = load_checkpoint(ensemble_dir).model
    x = torch.randn(3, 1, 28, 28)
    feats, logits = features_and_logits(model, x)
    member_feats = [features_and_logits(member, x)[0] for member in members_of(model)]
    torch.testing.assert_close(feats, torch.cat(member_feats, 1))  # side by side (mnist.verdict's docstring)
    with torch.no_grad():
        torch.testing.assert_close(logits, model(x))  # the ensemble's probabilities
    canvas = torch.zeros(280, 280)
    canvas[60:220, 130:150] = 255  # a thick vertical bar
    reading = read_drawing(model, canvas.numpy().astype("uint8"))
    assert reading.verdict in ("digit", "unsure", "not_a_digit")
    image = CanvasImage(torch.rand(28, 28).numpy())
    saliency = saliency_map(model, image, steps=2)
    assert saliency.shape == (28, 28) and 0 <= saliency.min() and saliency.max() <= 1


# --- damaged and inconsistent ensembles -------------------------------------------------------


def rewrite(folder: Path, change_meta=None, change_tensors=None) -> None:
    """Rewrite an ensemble's weights file (and meta.json) with its description and/or tensors changed."""
    raw = (folder / WEIGHTS_FILE).read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    meta = json.loads(header["__metadata__"][META_KEY])
    tensors = load_safetensors_bytes(raw)
    if change_meta:
        change_meta(meta)
    if change_tensors:
        change_tensors(tensors)
    (folder / WEIGHTS_FILE).write_bytes(save_safetensors_bytes(tensors, metadata={META_KEY: json.dumps(meta)}))
    (folder / META_FILE).write_text(json.dumps(meta))


def add_member(meta):  # described, but no tensors for it
    meta["members"].append(meta["members"][0])
    meta["parameters"] += meta["members"][0]["parameters"]


def one_member(meta):
    meta["members"] = meta["members"][:1]
    meta["parameters"] = meta["members"][0]["parameters"]


def swap_arch(meta):
    meta["members"][1]["arch"] = meta["members"][1]["config"]["arch"] = "lenet-dropout"


def wrong_total(meta):
    meta["parameters"] += 1


def wrong_member_size(meta):
    meta["members"][0]["parameters"] += 1
    meta["parameters"] += 1


def no_members(meta):
    del meta["members"]


def member_not_a_dict(meta):
    meta["members"][1] = "cnn-bn"


def drop_tensors(tensors):
    for key in [k for k in tensors if k.startswith("members.1.")]:
        del tensors[key]


def nan_member(tensors):
    key = next(k for k in tensors if k.startswith("members.1.") and tensors[k].is_floating_point())
    tensors[key] = torch.full_like(tensors[key], float("nan"))


@pytest.mark.parametrize(
    ("change_meta", "change_tensors", "message"),
    [
        (add_member, None, "'ensemble of 3 · mlp \\+ cnn-bn-fast'.*missing: members.2"),
        (one_member, None, "must list 2 to 16 members, got 1 members"),
        (swap_arch, None, "weights do not fit architecture 'ensemble of 2 · mlp \\+ lenet-dropout'"),
        (wrong_total, None, "its members have"),
        (wrong_member_size, None, "member 0 \\(mlp\\) is described with"),
        (no_members, None, "must list 2 to 16 members, got 'members' NoneType"),
        (member_not_a_dict, None, "member 1: must be a dict"),
        (None, drop_tensors, "do not fit architecture 'ensemble of 2 · mlp \\+ cnn-bn-fast'.*missing: members.1"),
        (None, nan_member, "members.1.* holds NaN"),
    ],
)
def test_a_damaged_ensemble_is_refused_with_a_clear_message(ensemble_dir, change_meta, change_tensors, message):
    rewrite(ensemble_dir, change_meta, change_tensors)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(ensemble_dir)


def test_a_truncated_ensemble_is_skipped_by_list_runs(ensemble_dir, runs_dir):
    weights = ensemble_dir / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.warns(UserWarning, match="skipping damaged run folder"):
        assert "ens" not in [r.name for r in list_runs(runs_dir)]
    with pytest.raises(CheckpointError):
        load_checkpoint(ensemble_dir)


def test_members_on_a_single_model_are_refused():
    meta = {"format": "mnist-studio-checkpoint", "format_version": 1, "arch": "mlp", "config": {"arch": "mlp"}}
    meta["members"] = []
    with pytest.raises(CheckpointError, match="has 'members' but its arch is 'mlp'"):
        RunRecord.from_dict(meta, "meta.json")


# --- the command line -------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mnist", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_cli_ensemble_then_evaluate_json(mnist_dir, runs_dir):
    for k, arch in enumerate(ARCHS):
        save_member(runs_dir, arch, f"m{k}")
    made = run_cli("ensemble", "m0", str(runs_dir / "m1"), "--name", "cli-ens", "--data-dir", str(mnist_dir), "--json")
    assert made.returncode == 0, made.stderr
    assert "ensemble of 2 · mlp + cnn-bn-fast" in made.stderr  # with --json the summary line goes to stderr
    summary = json.loads(made.stdout)  # and stdout is the JSON alone
    assert summary["arch"] == "ensemble" and summary["member_runs"] == ["m0", "m1"]
    record = load_checkpoint(runs_dir / "cli-ens").record
    assert record.metrics.test_accuracy == summary["test_accuracy"]  # recorded with the run

    ev = run_cli("evaluate", str(runs_dir / "cli-ens"), "--data-dir", str(mnist_dir), "--json")
    assert ev.returncode == 0, ev.stderr
    out = json.loads(ev.stdout)
    assert out["model"] == "ensemble of 2 · mlp + cnn-bn-fast"
    assert out["test_accuracy"] == pytest.approx(record.metrics.test_accuracy)


@pytest.mark.slow
def test_cli_ensemble_refuses_one_run_and_a_missing_run(mnist_dir, runs_dir):
    save_member(runs_dir, "mlp", "m0")
    one = run_cli("ensemble", "m0", "--data-dir", str(mnist_dir))
    assert one.returncode == 2 and one.stderr.startswith("error: ") and "Traceback" not in one.stderr
    missing = run_cli("ensemble", "m0", "nope", "--data-dir", str(mnist_dir))
    assert missing.returncode == 2 and "no checkpoint at" in missing.stderr and "Traceback" not in missing.stderr


@pytest.mark.slow
def test_cli_train_seeds_saves_the_runs_and_their_ensemble(mnist_dir, mnist_data, runs_dir, tmp_path):
    made = run_cli(
        "train", "--arch", "mlp", "--epochs", "1", "--train-limit", "1000", "--batch-size", "100", "--seed", "3",
        "--seeds", "2", "--name", "twin", "--data-dir", str(mnist_dir), "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    summary = json.loads(made.stdout)
    assert summary["member_runs"] == ["twin-seed3", "twin-seed4"]
    assert [m["checkpoint"] for m in summary["members"]] == [str(runs_dir / n) for n in ("twin-seed3", "twin-seed4")]
    ensemble = load_checkpoint(runs_dir / "twin")
    assert [m.config.seed for m in ensemble.record.members] == [3, 4]
    assert ensemble.record.metrics.test_accuracy == summary["test_accuracy"] > 0.5

    from PIL import Image

    path = tmp_path / "seven.png"
    Image.fromarray(mnist_data.test_images[0].numpy()).resize((140, 140)).save(path)
    predicted = run_cli("predict", str(path), "--checkpoint", str(runs_dir / "twin"), "--json")
    assert predicted.returncode == 0, predicted.stderr
    (result,) = json.loads(predicted.stdout)
    assert len(result["probabilities"]) == 10 and sum(result["probabilities"]) == pytest.approx(1, abs=1e-4)


@pytest.mark.slow
def test_cli_train_seeds_refuses_a_taken_name_before_training(mnist_dir, runs_dir):
    save_member(runs_dir, "mlp", "twin")
    out = run_cli("train", "--arch", "mlp", "--seeds", "2", "--name", "twin", "--data-dir", str(mnist_dir))
    assert out.returncode == 2 and "already exists" in out.stderr and "Traceback" not in out.stderr
    assert sorted(p.name for p in runs_dir.iterdir()) == ["twin"]  # nothing was trained


# --- N seeds through the job pool -------------------------------------------------------------

QUICK = TrainConfig(arch="mlp", epochs=1, batch_size=128, train_limit=256, log_every=1, device="cpu")


@pytest.fixture
def synthetic_data():
    return random_mnist(512, 50)


def wait_until(predicate, timeout: float = 120.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_job_pool_trains_seeds_then_saves_their_ensemble(synthetic_data, runs_dir):
    from mnist.jobs import DONE, JobManager

    manager = JobManager(lambda: synthetic_data, runs_dir, max_workers=1)
    try:
        group = manager.submit_seeds(QUICK.replace(seed=7), owner="visitor", seeds=3, name="trio")
        assert [j.config.seed for j in group.jobs] == [7, 8, 9]
        assert [j.name for j in group.jobs] == ["trio-seed7", "trio-seed8", "trio-seed9"]
        assert manager.groups_for("visitor") == [group] and manager.groups_for("other") == []
        wait_until(lambda: group.is_finished)
    finally:
        manager.shutdown()
    assert group.state == DONE, group.error
    assert all(j.state == DONE for j in group.jobs)  # each seed is a normal run
    record = load_checkpoint(group.run_dir).record
    assert group.run_dir == runs_dir / "trio"
    assert record.model_text == "ensemble of 3 · mlp" and record.provenance.owner == "visitor"
    assert [m.name for m in record.members] == ["trio-seed7", "trio-seed8", "trio-seed9"]


def test_a_stopped_seed_means_no_ensemble_and_says_why(synthetic_data, runs_dir):
    from mnist.jobs import FAILED, JobManager

    manager = JobManager(lambda: synthetic_data, runs_dir, max_workers=1)
    try:
        group = manager.submit_seeds(QUICK, owner="visitor", seeds=2)
        manager.stop(group.jobs[1].id)  # still queued behind the first: withdrawn
        wait_until(lambda: group.is_finished)
    finally:
        manager.shutdown()
    assert group.state == FAILED and group.run_dir is None
    assert "seed 1 did not finish, so no ensemble was saved" in group.error
    assert not any(r.record.is_ensemble for r in list_runs(runs_dir))


def test_a_bundled_ensemble_loads_as_the_default_model(ensemble_dir, monkeypatch):
    import shutil

    bundled = ensemble_dir.parent.parent / "default-model"
    shutil.copytree(ensemble_dir, bundled)
    monkeypatch.setattr("mnist.checkpoint.BUNDLED_DIR", bundled)
    ckpt = load_checkpoint()  # what evaluate, predict and the app use when no model is named
    assert ckpt.path == bundled and isinstance(ckpt.model, Ensemble)
    assert ckpt.record.model_text == "ensemble of 2 · mlp + cnn-bn-fast"
