"""Uploading two checkpoints one after the other in Chromium: the second replaces the first and is active."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

try:
    from playwright.sync_api import expect
except ImportError:  # conftest.py skips every test with the reason (in CI: fails them)
    expect = None

from mnist.checkpoint import build_record, encode_weights
from mnist.config import TrainConfig
from mnist.models import build_model
from mnist.records import RunMetrics

from .helpers import open_app

pytestmark = pytest.mark.e2e

SETTINGS = "Model, device and your own checkpoint"  # the expander holding the uploaders
WEIGHTS_LABEL = "Upload a checkpoint (model.safetensors)"


def write_model(folder: Path, filename: str, arch: str, accuracy: float) -> Path:
    """An untrained model of `arch` saved as MNIST Studio saves one: its description embedded."""
    torch.manual_seed(0)
    model = build_model(arch).eval()
    record = build_record(model, TrainConfig(arch=arch), RunMetrics(test_accuracy=accuracy), filename)
    path = folder / filename
    path.write_bytes(encode_weights(model, record))
    return path


def test_a_second_upload_replaces_the_first(page, app_server, tmp_path):
    first = write_model(tmp_path, "first.safetensors", "cnn-bn-fast", 0.91)
    second = write_model(tmp_path, "second.safetensors", "mlp", 0.92)
    open_app(page, app_server.url)
    page.get_by_text(SETTINGS).click()
    uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text=WEIGHTS_LABEL)
    chips = uploader.locator('[data-testid="stFileChip"]')
    success = page.locator('[data-testid="stAlertContentSuccess"]')
    model_select = page.locator('[data-testid="stSidebar"]').get_by_role("combobox", name="Active model")

    uploader.locator('input[type="file"]').set_input_files(str(first))
    expect(success).to_contain_text("Loaded first.safetensors: cnn-bn-fast, 91.00% test accuracy")
    expect(model_select).to_have_value("uploaded first.safetensors")  # the rest: the caption below it

    uploader.locator('input[type="file"]').set_input_files(str(second))
    expect(success).to_contain_text("Loaded second.safetensors: mlp, 92.00% test accuracy")
    expect(chips).to_have_count(1)
    expect(chips).to_contain_text("second.safetensors")
    expect(model_select).to_have_value("uploaded second.safetensors")
    expect(page.locator('[data-testid="stAlertContentError"]')).to_have_count(0)
    expect(page.get_by_text(re.compile("now the active model"))).to_have_count(1)
    success.scroll_into_view_if_needed()  # the app scrolls inside its own container: a full page is the viewport
    path = tmp_path / "second-upload.png"
    page.screenshot(path=str(path), full_page=True, animations="disabled")
    print(f"screenshot: {path}")
