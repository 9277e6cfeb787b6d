"""Shared fixtures: real MNIST (via MNIST_DATA_DIR, else ../shared/mnist), a runs folder, the app's environment
(`with_data`, for `open_app`), seeded torch, no remembered choices between tests. Plain helpers
(data and drawings the tests make, `open_app`) are in helpers.py: `from helpers import ...`.

The fast lane, under 3 minutes on 2 cores: `python -m pytest -m "not slow and not e2e"`. It leaves out the
browser tests (tests/e2e, marked e2e by tests/e2e/conftest.py) and the tests marked slow (training runs, whole
test-set evaluations, servers, load and fault runs); every module keeps fast tests in it. `python -m pytest`
(CI) runs everything.
"""

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


@pytest.fixture
def with_data(monkeypatch, mnist_dir, runs_dir) -> Path:
    """The app's environment: real MNIST (MNIST_DATA_DIR), never a download, an empty runs folder (its path)."""
    monkeypatch.setenv("MNIST_DATA_DIR", str(mnist_dir))
    monkeypatch.setattr("mnist.data.download_mnist", lambda root: pytest.fail("tests never download MNIST"))
    return runs_dir


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)


@pytest.fixture(scope="session", autouse=True)
def stop_background_work():
    """After the last test, end the app's background computations (a neighbour index runs ~110 s): Python
    would otherwise wait for them before the run can exit."""
    yield
    background = sys.modules.get("studio.background")  # not imported: nothing runs
    if background is not None:
        background.stop_all()


@pytest.fixture(autouse=True)
def forget_remembered_choices():
    """Each test starts with no visitor's remembered choices: studio.remembered keeps them per process, and
    tests that share a visitor token would otherwise start where the last one left off."""
    yield
    remembered = sys.modules.get("studio.remembered")  # not imported: nothing remembered
    if remembered is not None:
        remembered.store.clear()
