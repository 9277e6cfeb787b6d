"""Shared fixtures: real MNIST (via MNIST_DATA_DIR, else ../shared/mnist), a runs folder, seeded torch, no remembered
choices between tests. Plain helpers (data the tests write) are in helpers.py: `from helpers import ...`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from helpers import real_mnist_dir


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """Folder with the real MNIST files. In CI their absence is a failure, elsewhere a skip."""
    path = real_mnist_dir()
    if path is None:
        message = "real MNIST not found: set MNIST_DATA_DIR or put the files in ../shared/mnist"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def mnist_data(mnist_dir):
    """The real data set, loaded once per test session."""
    from mnist.data import load_mnist

    return load_mnist(mnist_dir, download=False)


@pytest.fixture
def runs_dir(tmp_path, monkeypatch) -> Path:
    """An empty runs folder, also set as MNIST_RUNS_DIR for code that uses the default."""
    path = tmp_path / "runs"
    monkeypatch.setenv("MNIST_RUNS_DIR", str(path))
    return path


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def forget_remembered_choices():
    """Each test starts with no visitor's remembered choices: studio.remembered keeps them per process, and
    tests that share a visitor token would otherwise start where the last one left off."""
    yield
    remembered = sys.modules.get("studio.remembered")  # not imported: nothing remembered
    if remembered is not None:
        remembered.store.clear()
