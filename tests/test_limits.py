"""Limits: damaged data files, form values at and beyond their bounds, and run names that try to escape.

Every bad input is refused before any work with an error that names the file or the field; valid
values right at the limits are accepted; no run name can create or delete anything outside the runs folder.
"""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import write_idx, write_small_mnist
from hypothesis import given, settings
from hypothesis import strategies as st

import mnist.train
from mnist.__main__ import main as cli_main
from mnist.checkpoint import CheckpointError, check_run_name, load_checkpoint, run_path, save_run
from mnist.config import MAX_BATCH_SIZE, MAX_EPOCHS, TrainConfig
from mnist.data import DATA_DIR_ENV, MnistData, load_mnist, read_idx, read_split
from mnist.errors import ConfigError, DataError, DataNotFoundError
from mnist.models import build_model
from mnist.records import RunMetrics
from mnist.runs import delete_run, list_runs
from mnist.train import train

SAVED_CONFIG = TrainConfig(arch="cnn-bn-fast")  # the config of the small cnn-bn-fast models these tests save

# ---------------------------------------------------------------- data files


def images(n: int = 5, h: int = 28, w: int = 28) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, h, w), dtype=np.uint8)


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    magic = magic if magic is not None else (0x08 << 8) | array.ndim
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def data_error(call, path: Path, *words: str) -> str:
    """Assert call() raises DataError naming the file and holding every word."""
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    assert str(path) in message, message
    for word in words:
        assert word in message, (word, message)
    return message


GOOD_IMAGES = idx_bytes(images())
DAMAGED_IMAGE_FILES = {
    "empty": (b"", ["0 bytes", "truncated"]),
    "header-only-part": (GOOD_IMAGES[:6], ["too short", "truncated"]),
    "header-only": (GOOD_IMAGES[:16], ["truncated"]),
    "truncated": (GOOD_IMAGES[:-1], ["truncated", "download it again"]),
    "half": (GOOD_IMAGES[: len(GOOD_IMAGES) // 2], ["truncated"]),
    "too-long": (GOOD_IMAGES + b"\0", ["longer than its header says"]),
    "label-magic": (idx_bytes(images(), magic=0x0801), ["wrong magic number 0x00000801", "0x00000803"]),
    "int32-magic": (idx_bytes(images(), magic=0x0C03), ["wrong magic number"]),
    "text-file": (b"<html>404 Not Found</html>", ["wrong magic number"]),
    "32x32": (idx_bytes(images(h=32, w=32)), ["32x32", "expected 28x28"]),
    "28x27": (idx_bytes(images(h=28, w=27)), ["28x27"]),
    "zero-items": (idx_bytes(np.zeros((0, 28, 28), np.uint8)), ["0 items"]),
    "huge-count": (struct.pack(">IIII", 0x0803, 2**32 - 1, 28, 28) + b"\0" * 784, ["truncated"]),
    "gzip-truncated": (gzip.compress(GOOD_IMAGES)[:-20], ["damaged gzip"]),
    "gzip-garbage": (b"\x1f\x8b\x08\x00" + b"\xff" * 200, ["damaged gzip"]),
    "gzip-of-nothing": (gzip.compress(b""), ["0 bytes"]),
    "gzip-of-truncated": (gzip.compress(GOOD_IMAGES[:-100]), ["truncated"]),
}


@pytest.mark.parametrize("name", list(DAMAGED_IMAGE_FILES))
def test_damaged_image_file_names_the_file(tmp_path, name):
    content, words = DAMAGED_IMAGE_FILES[name]
    path = tmp_path / f"{name}-train-images-idx3-ubyte"
    path.write_bytes(content)
    data_error(lambda: read_idx(path, 3), path, *words)


@pytest.mark.parametrize(
    ("labels", "magic", "words"),
    [
        (np.array([0, 1, 10, 2, 3]), None, ["label 10 is out of range 0..9"]),
        (np.array([255, 3, 0, 0, 0]), None, ["label 255"]),
        (np.array([1, 2, 3, 4]), None, ["5 images", "4 labels"]),  # one label short
        (np.array([1, 2, 3, 4, 5, 6]), None, ["5 images", "6 labels"]),
        (np.array([1, 2, 3, 4, 5]), 0x0803, ["wrong magic number", "label file"]),
    ],
)
def test_bad_labels_name_the_file(tmp_path, labels, magic, words):
    img = write_idx(tmp_path / "train-images-idx3-ubyte", images(5))
    lab = write_idx(tmp_path / "train-labels-idx1-ubyte", labels, magic=magic)
    message = data_error(lambda: read_split(img, lab), lab, *words)
    if "images" in words[0]:
        assert str(img) in message  # a count mismatch names both files


def test_swapped_files_are_caught_by_their_magic(tmp_path):
    img = write_idx(tmp_path / "train-images-idx3-ubyte", images(5))
    lab = write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(50) % 10)  # longer than an image header
    data_error(lambda: read_split(lab, img), lab, "wrong magic number", "image file")


def test_a_directory_in_place_of_a_file_is_a_data_error(tmp_path):
    folder = tmp_path / "train-images-idx3-ubyte"
    folder.mkdir()
    data_error(lambda: read_idx(folder, 3), folder, "cannot be read")


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize(
    "damaged",
    ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"],
)
def test_load_mnist_names_whichever_file_is_damaged(tmp_path, damaged, gz):
    write_small_mnist(tmp_path, n_train=20, n_test=10, gz=gz)
    path = tmp_path / (damaged + (".gz" if gz else ""))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 5])  # truncated (and, when gzipped, a damaged gzip stream)
    data_error(lambda: load_mnist(tmp_path, download=False), path)


def test_missing_data_is_a_clear_not_found_error(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    write_small_mnist(tmp_path, n_train=20, n_test=10)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataNotFoundError) as info:
        load_mnist(tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path) in message and "t10k-labels-idx1-ubyte" in message and DATA_DIR_ENV in message
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, DataError)


def test_small_valid_set_at_the_edges_loads(tmp_path):
    """One training image and one test image, labels 0 and 9: the smallest valid set."""
    write_idx(tmp_path / "train-images-idx3-ubyte", images(1))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([9]))
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images(1), gz=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([0]), gz=True)
    data = load_mnist(tmp_path, download=False)
    assert data.train_images.shape == (1, 28, 28) and data.train_labels.tolist() == [9]
    assert data.test_labels.tolist() == [0]


# ---------------------------------------------------------------- form values


INVALID_CONFIGS = [
    # epochs
    ({"epochs": 0}, "epochs"),
    ({"epochs": -1}, "epochs"),
    ({"epochs": MAX_EPOCHS + 1}, "epochs"),
    ({"epochs": 10**12}, "epochs"),
    ({"epochs": 2**63}, "epochs"),
    ({"epochs": 1.0}, "epochs"),
    ({"epochs": "2"}, "epochs"),
    ({"epochs": None}, "epochs"),
    ({"epochs": float("inf")}, "epochs"),
    # batch size
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": -128}, "batch_size"),
    ({"batch_size": MAX_BATCH_SIZE + 1}, "batch_size"),
    ({"batch_size": 64.5}, "batch_size"),
    # learning rate
    ({"lr": 0}, "lr"),
    ({"lr": 0.0}, "lr"),
    ({"lr": -0.01}, "lr"),
    ({"lr": -0.0}, "lr"),
    ({"lr": float("nan")}, "lr"),
    ({"lr": float("inf")}, "lr"),
    ({"lr": float("-inf")}, "lr"),
    ({"lr": 10.000001}, "lr"),
    ({"lr": 1e308 * 10}, "lr"),
    ({"lr": "0.01"}, "lr"),
    ({"lr": None}, "lr"),
    ({"lr": 1 + 0j}, "lr"),
    # other numbers
    ({"momentum": 1.5}, "momentum"),
    ({"momentum": 1.0}, "momentum"),
    ({"momentum": -0.1}, "momentum"),
    ({"momentum": float("nan")}, "momentum"),
    ({"label_smoothing": 0.9}, "label_smoothing"),
    ({"label_smoothing": 0.51}, "label_smoothing"),
    ({"label_smoothing": -0.1}, "label_smoothing"),
    ({"weight_decay": -1e-4}, "weight_decay"),
    ({"weight_decay": 2.0}, "weight_decay"),
    ({"weight_decay": float("inf")}, "weight_decay"),
    ({"gamma": 0.0}, "gamma"),
    ({"gamma": 1.5}, "gamma"),
    ({"step_size": 0}, "step_size"),
    ({"seed": -1}, "seed"),
    ({"seed": 2**31}, "seed"),
    ({"train_limit": -1}, "train_limit"),
    ({"train_limit": MAX_BATCH_SIZE + 1}, "train_limit"),
    ({"log_every": 0}, "log_every"),
    # choices
    ({"optimizer": "lbfgs"}, "optimizer"),
    ({"optimizer": "SGD"}, "optimizer"),
    ({"optimizer": ""}, "optimizer"),
    ({"optimizer": None}, "optimizer"),
    ({"arch": "resnet50"}, "arch"),
    ({"arch": "CNN-BN-FAST"}, "arch"),
    ({"arch": ""}, "arch"),
    ({"arch": ["cnn-bn"]}, "arch"),
    ({"scheduler": "linear"}, "scheduler"),
    ({"scheduler": "None"}, "scheduler"),
    ({"device": "tpu"}, "device"),
    ({"device": "cuda:0"}, "device"),
    ({"device": "CPU"}, "device"),
    # bool where a number is expected, and the reverse
    ({"epochs": True}, "epochs"),
    ({"batch_size": False}, "batch_size"),
    ({"seed": True}, "seed"),
    ({"step_size": True}, "step_size"),
    ({"train_limit": True}, "train_limit"),
    ({"log_every": True}, "log_every"),
    ({"lr": True}, "lr"),
    ({"momentum": False}, "momentum"),
    ({"nesterov": "yes"}, "nesterov"),
    ({"nesterov": 1}, "nesterov"),
    ({"augment": 0}, "augment"),
    ({"augment": "false"}, "augment"),
    # combinations
    ({"optimizer": "sgd", "nesterov": True, "momentum": 0.0}, "Nesterov"),
]


@pytest.mark.parametrize(("changes", "field"), INVALID_CONFIGS, ids=[repr(c) for c, _ in INVALID_CONFIGS])
def test_invalid_form_values_are_config_errors_naming_the_field(changes, field):
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**changes)
    with pytest.raises(ConfigError, match=field):
        TrainConfig().replace(**changes)  # editing a valid config validates too
    with pytest.raises(ConfigError, match=field):
        TrainConfig.from_dict({**TrainConfig().to_dict(), **changes})  # as read from a checkpoint or form


VALID_LIMITS = [
    {"epochs": 1},
    {"epochs": MAX_EPOCHS},
    {"batch_size": 1},
    {"batch_size": MAX_BATCH_SIZE},
    {"lr": 1e-12},
    {"lr": 10.0},
    {"lr": 1},  # an int is a number too
    {"momentum": 0.0, "nesterov": False, "optimizer": "sgd"},
    {"momentum": 0.999},
    {"label_smoothing": 0.0},
    {"label_smoothing": 0.5},
    {"weight_decay": 1.0},
    {"gamma": 1.0},
    {"step_size": MAX_EPOCHS},
    {"seed": 0},
    {"seed": 2**31 - 1},
    {"train_limit": 0},
    {"train_limit": MAX_BATCH_SIZE},
    {"log_every": 10_000},
    {"device": "cpu"},
]


@pytest.mark.parametrize("changes", VALID_LIMITS, ids=[repr(c) for c in VALID_LIMITS])
def test_values_at_the_limits_are_accepted(changes):
    config = TrainConfig(**changes)
    for key, value in changes.items():
        assert getattr(config, key) == value
    assert TrainConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("values", [[], "cnn", None, 5, {"epochs": 2, "nonsense": 1}])
def test_config_from_anything_but_a_known_dict_is_refused(values):
    with pytest.raises(ConfigError):
        TrainConfig.from_dict(values)


@pytest.fixture
def tiny_data() -> MnistData:
    g = torch.Generator().manual_seed(0)
    return MnistData(
        torch.randint(0, 256, (50, 28, 28), dtype=torch.uint8, generator=g),
        torch.randint(0, 10, (50,), generator=g),
        torch.randint(0, 256, (20, 28, 28), dtype=torch.uint8, generator=g),
        torch.randint(0, 10, (20,), generator=g),
        Path("tiny"),
    )


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"batch_size": 51}, "batch_size 51 is larger than the 50 training images"),
        ({"batch_size": MAX_BATCH_SIZE}, "larger than the 50 training images"),
        ({"batch_size": 33, "train_limit": 32}, "batch_size 33 is larger than the 32 training images"),
    ],
)
def test_batch_larger_than_the_set_fails_before_any_work(tiny_data, monkeypatch, changes, words):
    built = []
    monkeypatch.setattr(mnist.train, "build_model", lambda arch: built.append(arch) or build_model(arch))
    events = train(TrainConfig(device="cpu", **changes), tiny_data)
    with pytest.raises(ConfigError, match=words):
        next(events)
    assert built == []  # refused before a model was even built


def test_batch_equal_to_the_set_trains(tiny_data):
    events = list(train(TrainConfig(batch_size=50, epochs=1, device="cpu", log_every=1), tiny_data))
    done = events[-1]
    assert done.kind == "done" and done.steps_done == 1 and done.epochs_done == 1
    assert math.isfinite(done.test_loss)


def test_train_limit_above_the_set_size_uses_the_whole_set(tiny_data):
    done = list(train(TrainConfig(train_limit=100, batch_size=16, epochs=1, device="cpu"), tiny_data))[-1]
    assert done.steps_done == 50 // 16


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--epochs", "0"], "epochs must be between 1 and 200"),
        (["--epochs", "201"], "epochs must be between 1 and 200"),
        (["--batch-size", "0"], "batch_size"),
        (["--lr", "nan"], "lr must be a finite number"),
        (["--lr", "-1"], "lr must be in"),
        (["--momentum", "1.5"], "momentum"),
        (["--label-smoothing", "0.9"], "label_smoothing"),
    ],
)
def test_cli_refuses_bad_values_in_one_line_before_loading_data(tmp_path, capsys, argv, words):
    missing = tmp_path / "no-data-here"  # would fail with "not found" if data loading came first
    code = cli_main(["train", *argv, "--data-dir", str(missing), "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "argv", [["--optimizer", "lbfgs"], ["--epochs", "two"], ["--device", "tpu"], ["--arch", "resnet50"]]
)
def test_cli_argument_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli_main(["train", *argv])
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith("error: ")


# ---------------------------------------------------------------- run names and paths


BAD_NAMES = [
    "../x",
    "../../etc/passwd",
    "/etc",
    "/tmp/x",
    "a/b",
    "a\\b",
    ".hidden",
    ".",
    "..",
    "...",
    "a..b",
    "x" * 101,
    "x" * 200,
    "",
    " ",
    "a b",
    "-rf",
    "_x",
    "abc\n",  # a regex `$` would let the trailing newline through
    "a\nb",
    "a\tb",
    "a\0b",
    "x\r",
    "é",
    "café",
    "ｘ",  # fullwidth x
    "a\u2215b",  # division slash, looks like "/"
    "a\uff0fb",  # fullwidth solidus
    "\u2024\u2024",  # one-dot leaders, look like ".."
    "a\u202eb",  # right-to-left override
    "a\u200bb",  # zero-width space
    "K\u212a",  # Kelvin sign, folds to "k"
    "~",
    "~root",
    "$HOME",
    "a*",
    "a:b",
    None,
    5,
    b"bytes",
    Path("x"),
]


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def sandbox(tmp_path) -> tuple[Path, Path]:
    """tmp/work/runs holding one run, with sentinels beside it that an escape would hit."""
    runs = tmp_path / "work" / "runs"
    save_run(build_model("cnn-bn-fast"), SAVED_CONFIG, RunMetrics(), runs_dir=runs, name="keep")
    for sentinel in (tmp_path / "work" / "x", tmp_path / "x", tmp_path / "work" / "b"):
        sentinel.mkdir(parents=True, exist_ok=True)
        (sentinel / "precious.txt").write_text("do not delete")
    return tmp_path, runs


@pytest.mark.parametrize("name", BAD_NAMES, ids=[repr(n)[:30] for n in BAD_NAMES])
def test_bad_run_names_are_refused_everywhere_and_touch_nothing(sandbox, name):
    root, runs = sandbox
    before = tree(root)
    with pytest.raises(CheckpointError, match="invalid run name"):
        check_run_name(name)
    with pytest.raises(CheckpointError):
        run_path(runs, name)
    with pytest.raises(CheckpointError):
        delete_run(runs, name)
    if name not in (None, ""):  # for save_run, no name means "make one up": see the next test
        with pytest.raises(CheckpointError):
            save_run(build_model("cnn-bn-fast"), SAVED_CONFIG, RunMetrics(), runs_dir=runs, name=name)
    assert tree(root) == before
    assert [run.name for run in list_runs(runs)] == ["keep"]


@pytest.mark.parametrize("name", [None, ""])
def test_save_run_without_a_name_makes_up_a_safe_one(tmp_path, name):
    runs = tmp_path / "runs"
    path = save_run(build_model("cnn-bn-fast"), SAVED_CONFIG, RunMetrics(), runs_dir=runs, name=name)
    assert path.parent == runs.resolve()
    assert check_run_name(path.name) == path.name and "cnn-bn-fast" in path.name
    assert [run.name for run in list_runs(runs)] == [path.name]


@pytest.mark.parametrize("name", ["a", "9", "x" * 100, "A.b_c-d", "20240101-120000-cnn-bn-fast-ab12", "run.v2"])
def test_good_run_names_work_end_to_end(tmp_path, name):
    runs = tmp_path / "runs"
    path = save_run(build_model("cnn-bn-fast"), SAVED_CONFIG, RunMetrics(), runs_dir=runs, name=name)
    assert check_run_name(name) == name
    assert path == run_path(runs, name) == (runs / name).resolve()
    assert load_checkpoint(path).record.name == name
    delete_run(runs, name)
    assert list(runs.iterdir()) == []


def test_a_symlink_out_of_the_runs_folder_is_refused(tmp_path):
    runs, outside = tmp_path / "runs", tmp_path / "outside"
    runs.mkdir()
    outside.mkdir()
    (outside / "precious.txt").write_text("do not delete")
    (runs / "evil").symlink_to(outside, target_is_directory=True)
    with pytest.raises(CheckpointError, match="outside the runs folder"):
        run_path(runs, "evil")
    with pytest.raises(CheckpointError):
        delete_run(runs, "evil")
    assert (outside / "precious.txt").read_text() == "do not delete"


def test_deleting_a_missing_run_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no run named 'ghost'"):
        delete_run(tmp_path, "ghost")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=120), st.text(alphabet="./\\-_aZ09\n\0 ", max_size=12)))
def test_any_accepted_name_stays_a_plain_child_of_the_runs_folder(tmp_path_factory, name):
    runs = tmp_path_factory.getbasetemp() / "names-runs"
    try:
        check_run_name(name)
    except CheckpointError:
        return
    assert 1 <= len(name) <= 100
    assert name.isascii() and all(c.isalnum() or c in "._-" for c in name)
    assert name[0].isalnum() and ".." not in name
    path = run_path(runs, name)
    assert path.parent == runs.resolve() and path.name == name
