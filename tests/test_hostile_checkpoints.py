"""Uploaded and on-disk checkpoints from hostile or careless sources.

Only this project's format is accepted: safetensors weights with the MNIST Studio JSON (embedded in
the header or given beside it). Everything else (pickles that would run code, torch.save archives,
wrong architectures, shapes or dtypes, NaN weights, absurd headers, oversized files, bad JSON, random
bytes) is refused with a CheckpointError that says what is wrong, and nothing in it is ever executed.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shlex
import struct
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save as save_safetensors

from mnist.checkpoint import (
    MAX_CHECKPOINT_BYTES,
    MAX_JSON_BYTES,
    META_FILE,
    META_KEY,
    WEIGHTS_FILE,
    Checkpoint,
    CheckpointError,
    build_record,
    encode_weights,
    load_checkpoint,
    load_uploaded,
    save_run,
)
from mnist.config import TrainConfig
from mnist.errors import MnistError
from mnist.models import build_model, ready_for_inference
from mnist.records import RunMetrics
from mnist.runs import checkpoint_file_bytes, list_runs

SAVED_CONFIG = TrainConfig(arch="cnn-bn-fast")  # the config of the small cnn-bn-fast models these tests save

# ---------------------------------------------------------------- payloads that WOULD run code


class ExecPayload:
    """Unpickling this calls exec(), which creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


class SystemPayload:
    """Unpickling this runs a shell command through os.system."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(self.marker)}",))


def torch_save_bytes(obj, *, legacy: bool = False) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


def evil_variants(marker: Path, good_weights: bytes) -> dict[str, bytes]:
    """Every way we could think of to smuggle a code-running pickle in as a checkpoint."""
    variants = {f"pickle-protocol-{p}": pickle.dumps(ExecPayload(marker), protocol=p) for p in range(6)}
    variants["pickle-os-system"] = pickle.dumps(SystemPayload(marker), protocol=2)
    variants["torch-save-zip"] = torch_save_bytes({"state_dict": {"w": torch.zeros(2)}, "x": ExecPayload(marker)})
    variants["torch-save-legacy"] = torch_save_bytes({"x": ExecPayload(marker)}, legacy=True)
    # A valid safetensors file with a pickle glued on after it.
    variants["safetensors-then-pickle"] = good_weights + pickle.dumps(ExecPayload(marker), protocol=4)
    return variants


# ---------------------------------------------------------------- fixtures and helpers


def make_model(arch: str = "cnn-bn-fast") -> torch.nn.Module:
    """A model whose batch-norm statistics are not the defaults, so buffers must round-trip too."""
    torch.manual_seed(1)
    model = build_model(arch)
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 1, 28, 28) * 2 + 0.5)
    return ready_for_inference(model)  # the layout a loaded model computes in: outputs compare bit for bit


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    """A real run folder written by save_run, and the model it holds."""
    runs = tmp_path_factory.mktemp("runs")
    model = make_model()
    path = save_run(model, SAVED_CONFIG, RunMetrics(test_accuracy=0.5), runs_dir=runs, name="good")
    return path, model


@pytest.fixture(scope="module")
def good_weights(good_run) -> bytes:
    return (good_run[0] / WEIGHTS_FILE).read_bytes()


@pytest.fixture(scope="module")
def good_meta(good_run) -> dict:
    return json.loads((good_run[0] / META_FILE).read_text())


@pytest.fixture
def no_unpickling(monkeypatch):
    """Every unpickling entry point raises: a test passing with it proves nothing was unpickled."""
    calls = []

    def forbidden(*args, **kwargs):
        calls.append(args)
        raise AssertionError("checkpoint loading tried to unpickle")

    for target, attr in ((pickle, "loads"), (pickle, "load"), (pickle, "Unpickler"), (torch, "load")):
        monkeypatch.setattr(target, attr, forbidden)
    yield calls
    assert calls == []


def state_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def safetensors_bytes(state: dict[str, torch.Tensor], meta: dict | str | None) -> bytes:
    """A safetensors file; meta (dict or raw text) embedded under the project's key, or none."""
    if meta is None:
        return save_safetensors(state)
    text = meta if isinstance(meta, str) else json.dumps(meta)
    return save_safetensors(state, metadata={META_KEY: text})


def meta_for(good_meta: dict, **changes) -> dict:
    meta = json.loads(json.dumps(good_meta))
    for key, value in changes.items():
        if value is ...:
            meta.pop(key, None)
        else:
            meta[key] = value
    return meta


def same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    x = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        return torch.equal(a(x), b(x))


def refused(call, *words: str) -> str:
    """Assert call() raises a CheckpointError whose message holds every word (case-insensitive)."""
    with pytest.raises(CheckpointError) as info:
        call()
    message = str(info.value)
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} not in {message!r}"
    return message


# ---------------------------------------------------------------- valid round trips


def test_upload_of_a_saved_run_round_trips_and_predicts_identically(good_run, good_weights, good_meta, no_unpickling):
    path, model = good_run
    uploaded = load_uploaded(good_weights, name="good.safetensors")
    from_disk = load_checkpoint(path)
    assert isinstance(uploaded, Checkpoint)
    assert uploaded.arch == "cnn-bn-fast"
    assert uploaded.record.to_dict() == good_meta
    assert uploaded.config == SAVED_CONFIG
    assert uploaded.record.metrics.test_accuracy == 0.5
    assert not uploaded.model.training
    assert same_outputs(model, uploaded.model)
    assert same_outputs(model, from_disk.model)
    for key, tensor in model.state_dict().items():  # buffers (BN statistics) included
        assert torch.equal(tensor, uploaded.model.state_dict()[key]), key


def test_upload_with_separate_json_and_download_bytes(good_run, good_weights, no_unpickling):
    path, model = good_run
    meta_json = (path / META_FILE).read_bytes()
    assert checkpoint_file_bytes(path) == good_weights
    assert same_outputs(model, load_uploaded(checkpoint_file_bytes(path), meta_json).model)


def test_bare_safetensors_needs_its_json(good_run, good_meta, no_unpickling):
    path, model = good_run
    bare = safetensors_bytes(state_of(model), None)
    refused(lambda: load_uploaded(bare, name="bare.safetensors"), "bare.safetensors", "no MNIST Studio description")
    loaded = load_uploaded(bare, json.dumps(good_meta).encode())
    assert same_outputs(model, loaded.model)


def test_valid_file_whose_header_length_starts_with_0x80_is_not_mistaken_for_a_pickle(tmp_path, no_unpickling):
    """safetensors pads its header to 8 bytes, so 1 legit file in 32 starts with byte 0x80 (the pickle opcode)."""
    model = make_model()
    base = build_record(model, SAVED_CONFIG, RunMetrics(), "run-0x80")
    # A description padded by n characters moves the header length through all 256 values of its first byte.
    padded = (replace(base, provenance=replace(base.provenance, versions={"pad": "x" * n})) for n in range(300))
    record = next(r for r in padded if encode_weights(model, r)[0] == 0x80)
    name = record.name
    path = tmp_path / name
    path.mkdir()
    (path / WEIGHTS_FILE).write_bytes(encode_weights(model, record))
    (path / META_FILE).write_text(record.to_json())
    weights = (path / WEIGHTS_FILE).read_bytes()
    assert weights[:1] == b"\x80"  # the precondition: looks like a pickle at first glance
    assert same_outputs(model, load_checkpoint(path).model)
    assert same_outputs(model, load_uploaded(weights).model)
    assert [run.name for run in list_runs(tmp_path)] == [name]


def test_upload_never_touches_the_disk(good_weights, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    load_uploaded(good_weights, name="../../escape")
    with pytest.raises(CheckpointError):
        load_uploaded(b"\x80\x04junk", name="../../escape2")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- code-running pickles


def test_payloads_are_live(tmp_path):
    """Control: the payloads really do create the marker when unpickled (so the tests below mean something)."""
    for payload in (ExecPayload, SystemPayload):
        marker = tmp_path / f"control-{payload.__name__}"
        pickle.loads(pickle.dumps(payload(marker)))
        assert marker.exists()
    marker = tmp_path / "control-torch"
    torch.load(io.BytesIO(torch_save_bytes({"x": ExecPayload(marker)})), weights_only=False)
    assert marker.exists()


def test_code_running_uploads_are_refused_and_never_executed(tmp_path, good_weights, good_run, no_unpickling):
    marker = tmp_path / "PWNED"
    meta_json = (good_run[0] / META_FILE).read_bytes()
    for label, payload in evil_variants(marker, good_weights).items():
        for meta in (None, meta_json):
            message = refused(lambda p=payload, m=meta, n=f"{label}.pt": load_uploaded(p, m, name=n), f"{label}.pt")
            assert "pickle" in message or "not a valid safetensors file" in message, (label, message)
            if payload.startswith((b"\x80", b"PK\x03\x04")):
                assert "never opened" in message and "safetensors" in message, (label, message)
        assert not marker.exists(), f"{label} ran code"


def test_code_running_files_on_disk_are_refused_and_never_executed(tmp_path, good_weights, good_run, no_unpickling):
    marker = tmp_path / "PWNED"
    meta_json = (good_run[0] / META_FILE).read_bytes()
    runs = tmp_path / "runs"
    for label, payload in evil_variants(marker, good_weights).items():
        # As a lone file, under both a misleading and an honest name.
        for filename in ("model.safetensors", "model.pt"):
            lone = tmp_path / label / filename
            lone.parent.mkdir(exist_ok=True)
            lone.write_bytes(payload)
            refused(lambda f=lone: load_checkpoint(f), str(lone))
        # As model.safetensors inside an otherwise valid run folder.
        run = runs / label
        run.mkdir(parents=True)
        (run / WEIGHTS_FILE).write_bytes(payload)
        (run / META_FILE).write_bytes(meta_json)
        refused(lambda r=run: load_checkpoint(r), WEIGHTS_FILE)
        assert not marker.exists(), f"{label} ran code"
    # The run list does not offer any of them, and says why.
    with pytest.warns(UserWarning, match="skipping damaged run folder") as record:
        assert list_runs(runs) == []
    assert len(record) == len(evil_variants(marker, good_weights))
    assert not marker.exists()


# ---------------------------------------------------------------- wrong architecture, shapes, dtypes, values


def test_weights_of_another_architecture_are_refused(good_meta, no_unpickling):
    mlp_state = state_of(build_model("mlp"))
    # Embedded description claims cnn-bn-fast, tensors are an MLP's.
    message = refused(
        lambda: load_uploaded(safetensors_bytes(mlp_state, good_meta), name="mlp.safetensors"),
        "mlp.safetensors",
        "do not fit architecture 'cnn-bn-fast'",
    )
    assert "missing:" in message and "unexpected:" in message
    # Separate JSON claims cnn-bn-fast for LeNet weights.
    lenet = safetensors_bytes(state_of(build_model("lenet-dropout")), None)
    refused(lambda: load_uploaded(lenet, json.dumps(good_meta).encode()), "do not fit architecture")


def test_unknown_or_inconsistent_architecture_is_refused(good_run, good_meta, no_unpickling):
    state = state_of(good_run[1])
    unknown = meta_for(good_meta, arch="resnet50", config={**good_meta["config"], "arch": "resnet50"})
    refused(lambda: load_uploaded(safetensors_bytes(state, unknown)), "arch must be one of", "resnet50")
    mixed = meta_for(good_meta, arch="mlp")  # config still says cnn-bn-fast
    refused(lambda: load_uploaded(safetensors_bytes(state, mixed)), "disagrees")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ("shape", ["needs", "(10, 576)"]),
        ("dtype", ["torch.float64", "needs"]),
        ("int-dtype", ["torch.int32", "needs"]),
        ("missing", ["missing: 13.bias"]),
        ("extra", ["unexpected: evil.extra"]),
        ("nan", ["NaN or infinite"]),
        ("inf", ["NaN or infinite"]),
        ("nan-buffer", ["1.running_var", "NaN or infinite"]),
        ("scalar", ["needs"]),
    ],
)
def test_wrong_tensors_are_refused(good_run, good_meta, no_unpickling, change, words):
    state = state_of(good_run[1])
    fc = "13.weight"  # the linear head of cnn-bn-fast: (10, 576)
    assert state[fc].shape == (10, 576)
    if change == "shape":
        state[fc] = torch.zeros(10, 575)
    elif change == "dtype":
        state[fc] = state[fc].double()
    elif change == "int-dtype":
        state[fc] = state[fc].to(torch.int32)
    elif change == "missing":
        del state["13.bias"]
    elif change == "extra":
        state["evil.extra"] = torch.zeros(3)
    elif change == "nan":
        state[fc][0, 0] = float("nan")
    elif change == "inf":
        state[fc][3, 7] = float("-inf")
    elif change == "nan-buffer":
        state["1.running_var"][0] = float("nan")
    elif change == "scalar":
        state[fc] = torch.tensor(1.0)
    refused(lambda: load_uploaded(safetensors_bytes(state, good_meta), name="bad.safetensors"), *words)


# ---------------------------------------------------------------- sizes


def test_oversized_uploads_are_refused_before_parsing(good_weights, good_run, no_unpickling):
    too_big = good_weights + b"\0" * (MAX_CHECKPOINT_BYTES + 1 - len(good_weights))
    refused(lambda: load_uploaded(too_big, name="big.safetensors"), "big.safetensors", "over the 50 MB limit")
    refused(lambda: load_uploaded(b"\x80" * (MAX_CHECKPOINT_BYTES + 1)), "limit")
    meta_json = (good_run[0] / META_FILE).read_bytes()
    huge_json = meta_json[:-1] + b" " * (MAX_JSON_BYTES + 1) + b"}"  # valid JSON, just too big
    refused(lambda: load_uploaded(good_weights, huge_json, name="m"), "m (JSON)", "over the 1 MB limit")


def test_oversized_files_on_disk_are_refused_without_reading(tmp_path, good_run, no_unpickling):
    big = tmp_path / "big.safetensors"
    with big.open("wb") as f:
        f.truncate(MAX_CHECKPOINT_BYTES + 1)  # sparse: costs no disk space
    refused(lambda: load_checkpoint(big), str(big), "limit")
    run = tmp_path / "run"
    run.mkdir()
    (run / WEIGHTS_FILE).write_bytes((good_run[0] / WEIGHTS_FILE).read_bytes())
    with (run / META_FILE).open("wb") as f:
        f.truncate(MAX_JSON_BYTES + 1)
    refused(lambda: load_checkpoint(run), META_FILE, "limit")


# ---------------------------------------------------------------- headers and raw bytes


@pytest.mark.parametrize(
    "header_len",
    [0, 1, 7, 2**63, 2**64 - 1, 10**9, MAX_CHECKPOINT_BYTES, "file-length", "header-minus-one", "header-plus-one"],
)
def test_absurd_header_lengths_are_refused(good_weights, no_unpickling, header_len):
    real = struct.unpack("<Q", good_weights[:8])[0]
    value = {
        "file-length": len(good_weights),
        "header-minus-one": real - 1,
        "header-plus-one": real + 1,
    }.get(header_len, header_len)
    forged = struct.pack("<Q", value) + good_weights[8:]
    refused(lambda: load_uploaded(forged), "not a valid safetensors file")


@pytest.mark.parametrize(
    "tensors",
    [
        {"w": {"dtype": "F32", "shape": [10**6, 10**6], "data_offsets": [0, 4 * 10**12]}},  # 4 TB claimed
        {"w": {"dtype": "F32", "shape": [2**62, 2**62], "data_offsets": [0, 16]}},  # overflowing shape
        {"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}},  # backwards offsets
        {"w": {"dtype": "EVIL", "shape": [2], "data_offsets": [0, 8]}},  # unknown dtype
        {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "__metadata__": {META_KEY: 5}},
    ],
)
def test_forged_headers_are_refused_without_allocating(tensors, no_unpickling):
    header = json.dumps(tensors).encode()
    forged = struct.pack("<Q", len(header)) + header + b"\0" * 16
    refused(lambda: load_uploaded(forged), "not a valid safetensors file")


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"", "not a valid safetensors file"),
        (b"\0", "not a valid safetensors file"),
        (b"\0" * 8, "not a valid safetensors file"),
        (b"not a checkpoint at all", "not a valid safetensors file"),
        (os.urandom(4096).lstrip(b"\x80P"), "not a valid safetensors file"),
        (b"\x80\x05K\x01.", "pickle"),
        (b"PK\x03\x04" + b"\0" * 100, "pickle"),
        (b'{"format": "mnist-studio-checkpoint"}', "not a valid safetensors file"),
    ],
)
def test_junk_bytes_are_refused(payload, words, no_unpickling):
    refused(lambda: load_uploaded(payload, name="junk"), "junk", words)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=2000))
def test_random_bytes_are_always_refused(no_unpickling, payload):
    with pytest.raises(CheckpointError):
        load_uploaded(payload)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_copies_of_a_good_file_load_or_are_refused(good_weights, no_unpickling, data):
    """Flip bytes anywhere (header or weights), cut or extend the file: a checkpoint or a CheckpointError."""
    raw = bytearray(good_weights)
    header_end = 8 + struct.unpack("<Q", good_weights[:8])[0]
    for _ in range(data.draw(st.integers(1, 4))):
        # Bias towards the header, where damage matters most.
        limit = header_end if data.draw(st.booleans()) else len(raw)
        raw[data.draw(st.integers(0, limit - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.sampled_from([None, "cut", "extend"]))
    if cut == "cut":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif cut == "extend":
        raw += data.draw(st.binary(min_size=1, max_size=64))
    try:
        checkpoint = load_uploaded(bytes(raw))
    except CheckpointError as exc:
        assert str(exc)
        return
    # Accepted: then it is a complete model of a known architecture with finite weights.
    assert isinstance(checkpoint, Checkpoint)
    assert checkpoint.arch == checkpoint.config.arch
    assert all(torch.isfinite(t).all() for t in checkpoint.model.state_dict().values() if t.is_floating_point())


# ---------------------------------------------------------------- bad JSON descriptions


BAD_DESCRIPTIONS = [
    (b"{not json", ["not valid JSON"]),
    (b"", ["not valid JSON"]),
    (b"\xff\xfe\x00garbage", ["not valid JSON"]),
    (b"[" * 100_000, ["not valid JSON"]),  # nesting deeper than the parser's recursion limit
    (b'{"a": ' + b"1" * 5000 + b"}", ["not valid JSON"]),  # integer too long to convert
    (b"[1, 2]", ["not an MNIST Studio checkpoint description"]),
    (b"null", ["not an MNIST Studio checkpoint description"]),
    (b'{"format": "pytorch"}', ["not an MNIST Studio checkpoint description"]),
    ({"format_version": 2}, ["version 2", "not supported"]),
    ({"format_version": "1"}, ["not supported"]),
    ({"arch": ...}, ["no 'arch'"]),
    ({"config": ...}, ["no 'config'"]),
    ({"config": ["cnn-bn-fast"]}, ["'config' must be a dict"]),
    ({"arch": ["cnn-bn-fast"]}, ["'arch' must be a str"]),
    ({"arch": {"__class__": "x"}}, ["'arch' must be a str"]),
    ({"metrics": [0.99]}, ["'metrics' must be a dict"]),
    ({"created": 5}, ["'created' must be a str"]),
    ({"config": {"arch": "cnn-bn-fast", "evil": 1}}, ["unknown config field", "evil"]),
    ({"config": {"arch": "cnn-bn-fast", "epochs": -1}}, ["epochs"]),
    ({"config": {"arch": "cnn-bn-fast", "lr": float("nan")}}, ["lr", "finite"]),
    ({"config": {"arch": "cnn-bn-fast", "batch_size": True}}, ["batch_size", "whole number"]),
    ({"arch": "mlp"}, ["disagrees"]),
]


@pytest.mark.parametrize(("spec", "words"), BAD_DESCRIPTIONS)
def test_bad_descriptions_are_refused_wherever_they_come_from(tmp_path, good_run, good_meta, spec, words):
    path, model = good_run
    raw = spec if isinstance(spec, bytes) else json.dumps(meta_for(good_meta, **spec)).encode()
    bare = safetensors_bytes(state_of(model), None)
    # 1. Uploaded beside bare weights.
    refused(lambda: load_uploaded(bare, raw, name="upload-7"), "upload-7", *words)
    # 2. Embedded in the weights' header (the one-file download format).
    if _is_utf8(raw):
        embedded = safetensors_bytes(state_of(model), raw.decode())
        refused(lambda: load_uploaded(embedded, name="emb"), "emb", *words)
    # 3. As meta.json of a run folder: loading refuses, listing skips it with a warning.
    runs = tmp_path / "runs"
    run = runs / "bad-meta"
    run.mkdir(parents=True)
    (run / WEIGHTS_FILE).write_bytes((path / WEIGHTS_FILE).read_bytes())
    (run / META_FILE).write_bytes(raw)
    refused(lambda: load_checkpoint(run), str(run / META_FILE), *words)
    with pytest.warns(UserWarning, match="skipping damaged run folder"):
        assert list_runs(runs) == []


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_all_errors_are_mnist_errors_and_value_errors():
    """The app catches MnistError / ValueError around uploads: CheckpointError must be both."""
    assert issubclass(CheckpointError, MnistError)
    assert issubclass(CheckpointError, ValueError)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError):
            load_uploaded(b"")
