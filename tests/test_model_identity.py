"""studio.registry.model_identity: one identity per model, a digest of its weights.

It keys every cached result of a model (its copy on a device, its evaluation, digit map, calibration...), so a
run retrained under the same name must get a new one, and the same bytes written again must keep theirs.
"""

from __future__ import annotations

import os

import pytest
import torch

from mnist.checkpoint import RUNS_DIR_ENV, WEIGHTS_FILE, save_run
from mnist.config import TrainConfig
from mnist.models import build_model
from mnist.records import ModelRef, RunMetrics
from mnist.store import digest_model
from studio import registry

RUN = "identity-run"


def save_mlp(runs_dir, name: str, seed: int):
    torch.manual_seed(seed)
    model = build_model("mlp")
    path = save_run(model, TrainConfig(arch="mlp"), RunMetrics(test_accuracy=0.9), None, runs_dir, name)
    return model, path


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(RUNS_DIR_ENV, str(tmp_path))
    return tmp_path


def bump_mtime(path) -> None:
    """A rewrite a second later: file systems with coarse timestamps would otherwise show no change."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_identity_is_the_weights_digest_and_follows_a_retrained_run(runs_dir):
    model, path = save_mlp(runs_dir, RUN, seed=0)
    ref = ModelRef.run(RUN)
    first = registry.model_identity(ref)
    assert first == digest_model(model), "the identity is the digest of the weights, not of where they are"

    weights = path / WEIGHTS_FILE
    same_bytes = weights.read_bytes()
    weights.write_bytes(same_bytes)  # saved again, unchanged
    bump_mtime(weights)
    assert registry.model_identity(ref) == first, "the same weights keep their identity (and their caches)"

    _, other = save_mlp(runs_dir, "identity-other", seed=1)
    weights.write_bytes((other / WEIGHTS_FILE).read_bytes())  # retrained under the same name
    bump_mtime(weights)
    assert registry.model_identity(ref) != first, "new weights under the same name must not reuse old results"
    assert registry.model_identity(ref) == registry.model_identity(ModelRef.run("identity-other"))


def test_an_upload_is_known_by_the_digest_in_its_ref_and_a_missing_run_by_nothing(runs_dir):
    upload = ModelRef.upload("0123456789abcdef")
    assert registry.model_identity(upload) == upload.key
    gone = registry.model_identity(ModelRef.run("never-saved"))
    assert gone != registry.model_identity(ModelRef.run("never-saved-either"))
