import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO
from PIL import Image


def run_cli(*args, env_extra=None, timeout=300):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "mnist", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_archs_lists_parameter_counts():
    out = run_cli("archs", "--json")
    assert out.returncode == 0
    counts = {row["name"]: row["parameters"] for row in json.loads(out.stdout)}
    assert counts["lenet-dropout"] == 21_840 and counts["seed-4conv"] == 593_200


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


def test_train_evaluate_and_predict_end_to_end(mnist_dir, mnist_data, tmp_path):
    env = {"MNIST_DATA_DIR": str(mnist_dir)}
    out = run_cli(
        "train", "--arch", "mlp", "--epochs", "1", "--train-limit", "4000", "--lr", "0.002",
        "--optimizer", "adam", "--batch-size", "64", "--out", str(tmp_path / "runs"), "--json",
        env_extra=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
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
    assert [r["digit"] for r in results[:3]] == labels
    assert all(0.5 < r["probability"] <= 1 for r in results[:3])
    assert results[3]["empty"] and results[3]["digit"] is None


def test_predict_rejects_a_file_that_is_not_an_image(tmp_path):
    bogus = tmp_path / "notes.png"
    bogus.write_text("not an image")
    out = run_cli("predict", str(bogus))
    assert out.returncode == 2
    assert "not a readable image" in out.stderr and "Traceback" not in out.stderr
