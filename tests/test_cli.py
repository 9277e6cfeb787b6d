import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO
from PIL import Image

from mnist.__main__ import build_parser, main, train_config
from mnist.config import FIELD_SPECS, FieldSpec, TrainConfig, preset_config, range_text


def run_cli(*args, env_extra=None, timeout=300):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "mnist", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_archs_lists_parameter_counts():
    out = run_cli("archs", "--json")
    assert out.returncode == 0
    counts = {row["name"]: row["parameters"] for row in json.loads(out.stdout)}
    assert counts["lenet-dropout"] == 21_840 and counts["seed-4conv"] == 593_200


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, words",
    [
        (["train", "--epochs", "0"], "epochs must be between"),
        (["train", "--lr", "abc"], "invalid float value"),
        (["train", "--optimizer", "lbfgs"], "invalid choice"),
        (["evaluate", "/nonexistent/run"], "no checkpoint at"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_arguments_give_one_line_and_nonzero_exit(args, words):
    out = run_cli(*args)
    assert out.returncode != 0
    assert words in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_train_evaluate_and_predict_end_to_end(mnist_dir, mnist_data, tmp_path):
    env = {"MNIST_DATA_DIR": str(mnist_dir)}
    out = run_cli(
        "train", "--arch", "mlp", "--epochs", "1", "--train-limit", "4000", "--lr", "0.002",
        "--optimizer", "adam", "--batch-size", "64", "--out", str(tmp_path / "runs"), "--json",
        env_extra=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)  # with --json, stdout is the JSON alone: the summary line goes to stderr
    assert {"test_accuracy", "train_seconds", "checkpoint"} <= set(summary)
    assert summary["test_accuracy"] > 0.85
    evaluated = run_cli("evaluate", summary["checkpoint"], "--json", env_extra=env)
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["test_accuracy"] == pytest.approx(summary["test_accuracy"])
    assert len(report["per_class_accuracy"]) == 10

    # Real test digits as PNG files: one white-on-black and large, one black-on-white and small.
    paths, labels = [], []
    for i, (scale, invert) in enumerate([(10, False), (3, True), (6, False)]):
        digit = mnist_data.test_images[i].numpy()
        big = np.kron(digit, np.ones((scale, scale), dtype=np.uint8))
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(255 - big if invert else big).save(path)
        paths.append(str(path))
        labels.append(int(mnist_data.test_labels[i]))
    blank = tmp_path / "blank.png"
    Image.fromarray(np.zeros((50, 50), np.uint8)).save(blank)
    predicted = run_cli("predict", *paths, str(blank), "--json")
    assert predicted.returncode == 0, predicted.stderr
    results = json.loads(predicted.stdout)
    assert [r["path"] for r in results] == [*paths, str(blank)]
    assert [r["digit"] for r in results[:3]] == labels
    for r in results[:3]:
        assert r["verdict"] == "digit" and r["digits"] == [r["digit"]] and r["reason"] is None
        assert 0.6 <= r["confidence"] <= 1 and r["probabilities"][r["digit"]] == r["confidence"]
    assert results[3]["verdict"] == "not_a_digit" and results[3]["reason"] == "empty"
    assert results[3]["digit"] is None and results[3]["digits"] == [] and results[3]["confidence"] is None


def test_predict_gives_every_image_one_verdict(mnist_data, tmp_path, capsys):
    """A number (black on white), a horizontal line and a single digit, as files: one verdict each."""
    images, labels = mnist_data.test_images.numpy(), mnist_data.test_labels.numpy()
    number = np.zeros((120, 272), np.uint8)
    for slot, i in enumerate((0, 1, 2)):  # three test digits, 3x, 20 px apart
        number[18:102, 10 + slot * 84 : 94 + slot * 84] = np.kron(images[i], np.ones((3, 3), np.uint8))
    line = np.zeros((200, 200), np.uint8)
    line[95:110, 20:180] = 255
    files = {"number.png": 255 - number, "line.png": line, "digit.png": np.kron(images[3], np.ones((5, 5), np.uint8))}
    for name, pixels in files.items():
        Image.fromarray(pixels).save(tmp_path / name)
    paths = [str(tmp_path / name) for name in files]
    assert main(["predict", *paths, "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    digits = [int(d) for d in labels[:3]]
    assert [r["verdict"] for r in results] == ["several_digits", "not_a_digit", "digit"]
    assert results[0]["digits"] == digits and results[0]["digit"] is None and results[0]["probabilities"] is None
    assert results[1]["reason"] == "line" and results[1]["digits"] == []
    assert results[2]["digits"] == [results[2]["digit"]] == [int(labels[3])]
    assert main(["predict", *paths]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{paths[0]}: several_digits {''.join(map(str, digits))} (")
    assert lines[1] == f"{paths[1]}: not_a_digit (a line)"
    assert lines[2].startswith(f"{paths[2]}: digit {labels[3]} (")


@pytest.mark.slow
def test_predict_rejects_a_file_that_is_not_an_image(tmp_path):
    bogus = tmp_path / "notes.png"
    bogus.write_text("not an image")
    out = run_cli("predict", str(bogus))
    assert out.returncode == 2
    assert "not a PNG or JPEG picture" in out.stderr and "Traceback" not in out.stderr


def test_predict_reads_photos_of_paper_like_uploads(mnist_data, tmp_path, capsys):
    """A JPEG photo of a digit on unevenly lit paper, one of chalk on a board, one of blank paper, and a
    drawing on a transparent canvas: the command goes through mnist.photo as the app's uploads do."""
    from bench.photos import paper_photo

    rng = np.random.default_rng(0)
    images, labels = mnist_data.test_images.numpy(), mnist_data.test_labels.numpy()
    files = {
        "paper.jpg": paper_photo(images[0], "shadow", rng),
        "board.jpg": paper_photo(images[1], "chalk", rng),
        "blank.jpg": paper_photo(None, "plain", rng),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    canvas = np.zeros((280, 280, 4), np.uint8)
    canvas[..., 3] = np.kron(images[2], np.ones((10, 10), np.uint8))  # ink only in alpha, as the canvas saves it
    Image.fromarray(canvas).save(tmp_path / "canvas.png")
    paths = [str(tmp_path / name) for name in [*files, "canvas.png"]]
    assert main(["predict", *paths, "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["digit"] for r in results] == [int(labels[0]), int(labels[1]), None, int(labels[2])]
    assert results[2]["reason"] == "empty"


def test_predict_refuses_a_damaged_photo_in_plain_words(tmp_path, capsys):
    from bench.photos import paper_photo

    photo = paper_photo(None, "plain", np.random.default_rng(0))
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(photo[: len(photo) // 3])
    assert main(["predict", str(cut)]) == 2
    assert "cut short or damaged" in capsys.readouterr().err


# --- train's config flags are generated from TrainConfig's field specs -------------------------


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def other_value(spec: FieldSpec, current):
    """An allowed value other than current: the top of a range, the other bool, another choice."""
    if spec.kind == "bool":
        return not current
    if spec.kind == "choice":
        return next(c for c in reversed(spec.choices) if c != current)
    return spec.high


def argv_for(config: TrainConfig, base: TrainConfig) -> list[str]:
    argv = []
    for name, spec in FIELD_SPECS.items():
        value = getattr(config, name)
        if spec.kind == "bool":
            argv.append(flag(name) if value else "--no-" + flag(name)[2:])
        elif value != getattr(base, name):
            argv += [flag(name), str(value)]
    return argv


def test_every_config_field_is_a_flag_with_its_type():
    base = preset_config("fast")
    target = TrainConfig(**{name: other_value(spec, getattr(base, name)) for name, spec in FIELD_SPECS.items()})
    assert all(getattr(target, name) != getattr(base, name) for name in FIELD_SPECS)
    args = build_parser().parse_args(["train", *argv_for(target, base)])
    assert train_config(args) == target


def test_flags_override_the_preset_and_the_rest_stays():
    args = build_parser().parse_args(["train", "--preset", "best", "--batch-size", "64", "--no-augment"])
    assert train_config(args) == preset_config("best").replace(batch_size=64, augment=False)


@pytest.mark.parametrize("name", [n for n, s in FIELD_SPECS.items() if s.kind in ("int", "float")])
def test_an_out_of_range_flag_is_one_line_naming_the_field(name, tmp_path, capsys):
    spec = FIELD_SPECS[name]
    too_big = spec.high + 1 if spec.kind == "int" else math.nextafter(spec.high, math.inf)
    code = main(["train", flag(name), str(too_big), "--data-dir", str(tmp_path / "none"), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"error: {name} must be {range_text(spec)}, got") and len(err.splitlines()) == 1
