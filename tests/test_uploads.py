"""Uploading a checkpoint on the Sketch page, driven headless through AppTest.

The weights' embedded description is the truth: a meta.json of another run is refused, naming the field.
The uploader holds one file, and a new upload replaces the old one and becomes the active model. Every
refusal says in plain words what was wrong and what to upload instead, never a file format's internals.
"""

from __future__ import annotations

import json
import pickle
import struct

import pytest
import torch
from helpers import open_app
from safetensors.torch import save as save_safetensors
from streamlit.testing.v1 import AppTest

from mnist.checkpoint import CheckpointError, build_record, encode_weights, load_uploaded
from mnist.config import TrainConfig
from mnist.models import build_model
from mnist.records import ModelRef, RunMetrics, RunRecord

WEIGHTS = "checkpoint_upload"
JSON_0 = "checkpoint_upload_json_0"  # the .json uploader's first key (bumped when it is emptied)
# Words that belong to safetensors, torch or Python, not to a visitor's explanation.
INTERNALS = ("deserializ", "header", "safetensorerror", "error while", "traceback", "torch.", "running_var", ".weight")
INSTEAD = "Download a model from the Train page"


def model_file(arch: str = "cnn-bn-fast", name: str = "run-a", accuracy: float = 0.97, seed: int = 0):
    """(weights with their description embedded, that description), for an untrained model of `arch`."""
    torch.manual_seed(seed)
    model = build_model(arch).eval()
    record = build_record(model, TrainConfig(arch=arch), RunMetrics(test_accuracy=accuracy), name)
    return encode_weights(model, record), record


def bare_weights(weights: bytes) -> bytes:
    """The same tensors without an embedded description (a file saved by hand)."""
    return save_safetensors(tensors_of(weights))


def tensors_of(weights: bytes) -> dict[str, torch.Tensor]:
    """A loaded model's tensors as a file holds them: a loaded model's conv weights are channels-last, and
    safetensors saves contiguous tensors only."""
    return {k: v.contiguous().clone() for k, v in load_uploaded(weights).model.state_dict().items()}


def with_description(state: dict[str, torch.Tensor], record: RunRecord) -> bytes:
    return save_safetensors(state, metadata={"mnist_studio": json.dumps(record.to_dict())})


@pytest.fixture
def app(runs_dir, tmp_path, monkeypatch) -> AppTest:
    """The Sketch page with no saved runs and no MNIST: the bundled model (if any) is the only model."""
    empty = tmp_path / "no-mnist"
    empty.mkdir()
    monkeypatch.setenv("MNIST_DATA_DIR", str(empty))
    monkeypatch.setattr("mnist.data.download_mnist", lambda root: (_ for _ in ()).throw(OSError("no network")))
    return open_app(timeout=60)


def upload(at: AppTest, name: str, data: bytes, key: str = WEIGHTS) -> AppTest:
    at.file_uploader(key=key).upload(name, data).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def successes(at: AppTest) -> list[str]:
    return [s.value for s in at.success]


def active_label(at: AppTest) -> str:
    select = at.sidebar.selectbox(key="active_model")
    return select.format_func(select.value)


def assert_plain_refusal(at: AppTest, name: str, *words: str) -> str:
    """One error naming the file, in plain words (every word present, no internals), with what to do."""
    assert len(errors(at)) == 1, errors(at)
    message = errors(at)[0]
    assert message.startswith(f"{name} cannot be used."), message
    assert INSTEAD in message, message
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} not in {message!r}"
    for internal in INTERNALS:
        assert internal not in message.lower(), f"{internal!r} in {message!r}"
    assert not successes(at)
    return message


# --- a meta.json of another run ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("other", "field", "said", "saved"),
    [
        (dict(arch="mlp", name="run-a"), "arch", "'mlp'", "'cnn-bn-fast'"),
        (dict(arch="cnn-bn-fast", name="run-b"), "name", "'run-b'", "'run-a'"),
        (dict(arch="cnn-bn-fast", name="run-a", accuracy=0.5), "metrics.test_accuracy", "0.5", "0.97"),
    ],
)
def test_a_json_of_another_run_is_refused_naming_the_field(app, other, field, said, saved):
    weights, _ = model_file()
    _, other_record = model_file(**other)
    upload(app, "other.json", other_record.to_json().encode(), key=JSON_0)
    before = app.session_state["active_model"] if "active_model" in app.session_state else None
    upload(app, "model.safetensors", weights)
    message = assert_plain_refusal(app, "model.safetensors", "another run")
    assert f"the .json says {field} {said} but the weights were saved as {saved}" in message
    assert "Remove the .json" in message
    assert not any(k.kind == "upload" for k in app.session_state["uploaded_models"])
    assert (app.session_state["active_model"] if "active_model" in app.session_state else None) == before


def test_the_library_compares_every_field_and_names_the_first(tmp_path):
    weights, record = model_file()
    _, other = model_file(arch="mlp", name="run-z", accuracy=0.1)
    with pytest.raises(CheckpointError) as info:
        load_uploaded(weights, other.to_json().encode(), name="w.safetensors")
    assert info.value.kind == CheckpointError.MISMATCH
    assert str(info.value).startswith("w.safetensors: its .json describes another run: the .json says arch 'mlp'")
    assert "more field(s) differ" in str(info.value)  # name, metrics, parameters, config.arch's neighbours...
    # Its own description, given again as a .json, agrees field by field.
    assert load_uploaded(weights, record.to_json().encode()).record == record


def test_a_json_is_still_accepted_for_weights_without_a_description(app):
    weights, record = model_file(name="hand-saved")
    bare = bare_weights(weights)
    upload(app, "bare.safetensors", bare)
    assert_plain_refusal(app, "bare.safetensors", "no description", "meta.json")
    upload(app, "meta.json", record.to_json().encode(), key=JSON_0)
    assert not errors(app)
    assert successes(app) == [
        f"Loaded bare.safetensors with meta.json: {record.arch}, 97.00% test accuracy. "
        "It is now the active model (see the sidebar)."
    ]
    assert app.session_state["uploaded_models"][app.session_state["active_model"]][1].record == record


# --- one file at a time -----------------------------------------------------------------------------


def test_a_second_upload_replaces_the_first_and_becomes_active(app):
    first, _ = model_file("cnn-bn-fast", "first", 0.91)
    second, _ = model_file("mlp", "second", 0.92, seed=1)
    uploader = app.file_uploader(key=WEIGHTS)
    assert not uploader.accept_multiple_files
    upload(app, "first.safetensors", first)
    first_key = app.session_state["active_model"]
    assert active_label(app) == "uploaded first.safetensors"  # the sidebar's short label; the caption says more

    upload(app, "second.safetensors", second)
    assert not errors(app)
    assert app.file_uploader(key=WEIGHTS).value.name == "second.safetensors"  # one file: the new one
    assert app.session_state["active_model"] not in (ModelRef.bundled(), first_key)
    assert active_label(app) == "uploaded second.safetensors"
    assert successes(app) == [
        "Loaded second.safetensors: mlp, 92.00% test accuracy. It is now the active model (see the sidebar)."
    ]
    # The first stays in the sidebar's list, to switch back to.
    assert "uploaded first.safetensors" in app.sidebar.selectbox(key="active_model").options
    assert first_key in app.session_state["uploaded_models"]


def test_new_weights_drop_the_json_of_the_previous_ones(app):
    weights, record = model_file(name="bare-one")
    upload(app, "meta.json", record.to_json().encode(), key=JSON_0)
    upload(app, "bare.safetensors", bare_weights(weights))
    assert len(successes(app)) == 1 and not errors(app)
    # Self-describing weights of another run: the old .json would be refused as another run's, so it goes.
    other, _ = model_file("mlp", "other", 0.9)
    upload(app, "other.safetensors", other)
    assert not errors(app), errors(app)
    assert successes(app)[0].startswith("Loaded other.safetensors: mlp,")
    assert JSON_0 not in [u.key for u in app.file_uploader]


def test_a_refused_upload_keeps_the_model_in_use(app):
    good, _ = model_file(name="good")
    upload(app, "good.safetensors", good)
    key = app.session_state["active_model"]
    upload(app, "broken.safetensors", b"junk")
    assert_plain_refusal(app, "broken.safetensors")
    assert app.session_state["active_model"] == key


# --- bad files: plain words ---------------------------------------------------------------------


def truncated(weights: bytes) -> bytes:
    return weights[: len(weights) // 2]


def header_too_large(weights: bytes) -> bytes:
    return struct.pack("<Q", 2**40) + weights[8:]


def wrong_shapes(weights: bytes) -> bytes:
    state, record = tensors_of(weights), load_uploaded(weights).record
    state["13.weight"] = torch.zeros(10, 575)
    return with_description(state, record)


def another_architecture(weights: bytes) -> bytes:
    return with_description(tensors_of(model_file("mlp")[0]), load_uploaded(weights).record)


def nan_weights(weights: bytes) -> bytes:
    state, record = tensors_of(weights), load_uploaded(weights).record
    state["13.weight"][0, 0] = float("nan")
    return with_description(state, record)


def bad_description(weights: bytes) -> bytes:
    return save_safetensors(tensors_of(weights), metadata={"mnist_studio": '{"format": "mnist-studio-checkpoint"'})


BAD_FILES = {
    "random bytes": (lambda w: bytes(range(256)) * 8, ["not a model.safetensors saved by MNIST Studio"]),
    "pickle": (lambda w: pickle.dumps({"state_dict": [1, 2]}, protocol=4), ["pickle", "never opens"]),
    "torch.save": (lambda w: _torch_save({"w": torch.zeros(2)}), ["pickle", "never opens"]),
    "truncated": (truncated, ["could not be read as safetensors", "cut short"]),
    "header too large": (header_too_large, ["could not be read as safetensors"]),
    "empty": (lambda w: b"", ["could not be read as safetensors"]),
    "wrong shapes": (wrong_shapes, ["do not fit the architecture", "cnn-bn-fast"]),
    "another architecture": (another_architecture, ["do not fit the architecture", "cnn-bn-fast"]),
    "NaN weights": (nan_weights, ["not numbers (NaN or infinite)"]),
    "damaged description": (bad_description, ["description inside this file is damaged"]),
}


def _torch_save(obj) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_each_bad_file_gets_plain_words(app, kind):
    make, words = BAD_FILES[kind]
    good, _ = model_file()
    upload(app, "model.safetensors", make(good))
    assert_plain_refusal(app, "model.safetensors", *words)
    assert app.session_state["uploaded_models"] == {}


def test_a_bad_json_gets_plain_words(app):
    weights, _ = model_file()
    upload(app, "meta.json", b"{not json", key=JSON_0)
    upload(app, "bare.safetensors", bare_weights(weights))
    assert_plain_refusal(app, "bare.safetensors", "not a meta.json saved by MNIST Studio")


def test_the_library_keeps_its_precise_messages():
    """The command line still gets the exact reason; the kind is what the app explains."""
    weights, _ = model_file()
    cases = {
        header_too_large(weights): (CheckpointError.NOT_SAFETENSORS, "not a valid safetensors file (Error while"),
        pickle.dumps([1]): (CheckpointError.PICKLE, "pickle or torch.save archive"),
        nan_weights(weights): (CheckpointError.BAD_VALUES, "13.weight holds NaN"),
        wrong_shapes(weights): (CheckpointError.WRONG_TENSORS, "13.weight is (10, 575) torch.float32"),
        bare_weights(weights): (CheckpointError.NO_DESCRIPTION, "has no MNIST Studio description"),
        bad_description(weights): (CheckpointError.BAD_DESCRIPTION, "not valid JSON"),
    }
    for data, (kind, words) in cases.items():
        with pytest.raises(CheckpointError) as info:
            load_uploaded(data, name="f")
        assert info.value.kind == kind and words in str(info.value), (kind, str(info.value))
