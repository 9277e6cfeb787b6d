"""mnist.store: one identity, one file format and one load-or-compute for the files kept beside a model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from safetensors.torch import save as save_safetensors_bytes

from mnist import store
from mnist.checkpoint import BUNDLED_DIR, WEIGHTS_FILE, load_checkpoint
from mnist.inside import Filters
from mnist.insight import INSIGHT_FILE, EpochInsight, decode_insight, encode_insight, load_insight
from mnist.models import build_model
from mnist.store import Stored, StoreKey, digest_model, digest_weights_file, load_or_compute, read, write

FMT, VERSION = "mnist-studio-test", 3
KEY = StoreKey("model-a", "data-a")


def sample() -> Stored:
    return Stored({"x": torch.arange(6, dtype=torch.float32).reshape(2, 3)}, KEY, {"seconds": 1.5})


def test_a_stored_file_reads_back_only_for_its_format_version_model_and_data(tmp_path):
    path = tmp_path / "f.safetensors"
    write(path, sample(), FMT, VERSION)
    found = read(path, FMT, VERSION, KEY)
    assert torch.equal(found.tensors["x"], sample().tensors["x"]) and found.info == {"seconds": 1.5}
    assert found.key == KEY
    assert read(path, FMT, VERSION, StoreKey("model-a")) is not None  # no data digest asked: any data
    assert read(path, FMT, VERSION) is not None  # no key asked: any model
    assert read(path, FMT, VERSION, StoreKey("model-b")) is None
    assert read(path, FMT, VERSION, StoreKey("model-a", "data-b")) is None
    assert read(path, FMT, VERSION + 1, KEY) is None  # a newer version: recomputed once
    assert read(path, "other-format", VERSION, KEY) is None


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: b"\x00" * 100,
        lambda data: data[: len(data) // 2],
        lambda data: b"",
        lambda data: save_safetensors_bytes({"x": torch.zeros(1)}, metadata={"format": FMT}),
        lambda data: (8).to_bytes(8, "little") + b"[1,2,3] ",  # a header that is not a mapping
    ],
)
def test_a_damaged_file_reads_as_none_and_never_raises(tmp_path, damage):
    path = tmp_path / "f.safetensors"
    write(path, sample(), FMT, VERSION)
    path.write_bytes(damage(path.read_bytes()))
    assert read(path, FMT, VERSION, KEY) is None


def test_a_file_over_the_size_bound_is_not_read(tmp_path, monkeypatch):
    path = tmp_path / "f.safetensors"
    write(path, sample(), FMT, VERSION)
    monkeypatch.setattr(store, "MAX_STORED_BYTES", path.stat().st_size - 1)
    assert read(path, FMT, VERSION, KEY) is None


def test_load_or_compute_computes_once_then_reads_and_recomputes_a_stale_file(tmp_path):
    path, calls = tmp_path / "f.safetensors", []

    def compute(value: float):
        calls.append(value)
        return value

    def run(key: StoreKey, value: float) -> float:
        return load_or_compute(
            path,
            FMT,
            VERSION,
            key,
            lambda: compute(value),
            to_stored=lambda v: Stored({"v": torch.tensor([v])}, key),
            from_stored=lambda s: float(s.tensors["v"][0]),
        )

    assert run(KEY, 1.0) == 1.0 and run(KEY, 2.0) == 1.0  # the second call read the file
    assert calls == [1.0]
    assert run(StoreKey("model-b", "data-a"), 3.0) == 3.0  # another model: computed and stored again
    assert calls == [1.0, 3.0] and read(path, FMT, VERSION, KEY) is None


def test_load_or_compute_recomputes_what_from_stored_refuses_and_keeps_it_in_memory_when_unwritable(tmp_path):
    path = tmp_path / "f.safetensors"
    write(path, sample(), FMT, VERSION)
    value = load_or_compute(
        path, FMT, VERSION, KEY, lambda: "fresh", to_stored=lambda v: sample(), from_stored=lambda s: None
    )
    assert value == "fresh"
    (tmp_path / "a-file").write_text("not a folder")
    missing = tmp_path / "a-file" / "f.safetensors"  # cannot be written, even by root
    value = load_or_compute(
        missing, FMT, VERSION, KEY, lambda: "kept", to_stored=lambda v: sample(), from_stored=lambda s: None
    )
    assert value == "kept" and not missing.exists()


def test_the_model_digest_is_the_weights_not_their_layout_or_file():
    torch.manual_seed(0)
    model = build_model("cnn-bn-lite").eval()
    digest = digest_model(model)
    assert digest_model(model.to(memory_format=torch.channels_last)) == digest
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1e-3
    assert digest_model(model) != digest


def test_a_weights_file_digests_like_the_model_it_loads_as_float16_included(tmp_path):
    bundled = load_checkpoint()
    assert digest_weights_file(BUNDLED_DIR / WEIGHTS_FILE) == digest_model(bundled.model)
    run = tmp_path / "half"
    shutil.copytree(BUNDLED_DIR, run)
    tensors = load_file(run / WEIGHTS_FILE)
    save_file({k: t.half() if t.is_floating_point() else t for k, t in tensors.items()}, run / WEIGHTS_FILE)
    assert digest_weights_file(run / WEIGHTS_FILE) == digest_model(load_checkpoint(run).model)
    (run / WEIGHTS_FILE).write_bytes(b"not weights")
    assert digest_weights_file(run / WEIGHTS_FILE) is None


def one_epoch_insight() -> EpochInsight:
    weights = np.arange(2 * 1 * 3 * 3, dtype=np.float32).reshape(2, 1, 3, 3)
    return EpochInsight(
        epoch=1,
        confusion=np.eye(10, dtype=np.int64) * 7,
        filters=Filters("0", "conv", weights, 8),
        panel_indices=np.array([3, 2]),
        panel_labels=np.array([0, 1]),
        panel_probabilities=np.full((2, 10), 0.1, np.float32),
    )


def test_insight_is_a_store_file_and_files_written_before_the_store_still_load(tmp_path):
    new = encode_insight([one_epoch_insight()])
    stored = store.decode(new, "mnist-studio-insight", 1)
    assert stored.info["filters"] == {"name": "0", "kind": "conv", "total_units": 8}
    # The layout written before mnist.store: the filters' layer in a metadata entry of its own.
    filters = json.dumps({"name": "0", "kind": "conv", "total_units": 8})
    old = save_safetensors_bytes(
        stored.tensors, metadata={"format": "mnist-studio-insight", "format_version": "1", "filters": filters}
    )
    (tmp_path / INSIGHT_FILE).write_bytes(old)
    [epoch] = load_insight(tmp_path)
    assert epoch.filters.total_units == 8 and epoch.confusion[3, 3] == 7
    assert decode_insight(new)[0].filters.weights.shape == (2, 1, 3, 3)
    (tmp_path / INSIGHT_FILE).write_bytes(old[: len(old) // 2])
    assert load_insight(tmp_path) == []


def test_a_calibration_written_before_the_store_reads_as_stale_and_the_bundled_one_as_current(tmp_path):
    from mnist.verdict import CALIBRATION_FILE, load_calibration

    bundled = load_calibration(BUNDLED_DIR)
    assert bundled is not None and bundled.source == "stored with the model"
    run = tmp_path / "run"
    shutil.copytree(BUNDLED_DIR, run)
    tensors = {"means": bundled.means, "whiten": bundled.whiten}
    old = {"max_distance": repr(bundled.max_distance), "details": "{}", "weights_sha256": "d1cb44ad"}
    save_file(tensors, run / CALIBRATION_FILE, metadata=old)
    assert load_calibration(run) is None  # recomputed once by calibration_for, in the new format
