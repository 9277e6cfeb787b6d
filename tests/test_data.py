import gzip

import numpy as np
import pytest
import torch
from helpers import write_idx, write_small_mnist

from mnist import data as data_mod
from mnist.constants import MNIST_MEAN, MNIST_STD
from mnist.data import (
    FILE_NAMES,
    augment_batch,
    background_value,
    find_mnist_files,
    load_mnist,
    normalize,
    read_idx,
)
from mnist.errors import DataError, DataNotFoundError

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_real_mnist_shapes_and_class_counts(mnist_data):
    assert mnist_data.train_images.shape == (60000, 28, 28)
    assert mnist_data.test_images.shape == (10000, 28, 28)
    assert mnist_data.train_images.dtype == torch.uint8
    assert torch.bincount(mnist_data.train_labels).tolist() == TRAIN_COUNTS
    assert torch.bincount(mnist_data.test_labels).tolist() == TEST_COUNTS


def test_real_mnist_pixel_statistics_match_normalisation_constants(mnist_data):
    x = mnist_data.train_images.float() / 255
    assert abs(float(x.mean()) - MNIST_MEAN) < 1e-3
    assert abs(float(x.std()) - MNIST_STD) < 1e-3


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("layout", ["flat", "MNIST/raw"])
def test_loads_files_written_by_the_test(tmp_path, gz, layout):
    folder = tmp_path if layout == "flat" else tmp_path / "MNIST" / "raw"
    arrays = write_small_mnist(folder, n_train=30, n_test=12, gz=gz)
    loaded = load_mnist(tmp_path, download=False)
    assert np.array_equal(loaded.train_images.numpy(), arrays["train"][0])
    assert loaded.train_labels.tolist() == arrays["train"][1].tolist()
    assert loaded.test_images.shape == (12, 28, 28)
    assert loaded.train_labels.dtype == torch.int64


def test_gzip_detected_by_content_not_name(tmp_path):
    write_small_mnist(tmp_path)
    path = tmp_path / FILE_NAMES["train_labels"]
    path.write_bytes(gzip.compress(path.read_bytes()))  # gzipped, but named like a raw file
    assert len(load_mnist(tmp_path, download=False).train_labels) == 50


def test_env_variable_selects_folder(tmp_path, monkeypatch):
    write_small_mnist(tmp_path, n_train=17)
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path))
    assert len(load_mnist(download=False).train_images) == 17


def test_missing_data_message_names_folder_files_and_variable(tmp_path, monkeypatch):
    def offline(root):
        raise OSError("no network")

    monkeypatch.setattr(data_mod, "download_mnist", offline)
    with pytest.raises(DataNotFoundError) as exc:
        load_mnist(tmp_path)
    message = str(exc.value)
    assert str(tmp_path) in message
    assert "MNIST_DATA_DIR" in message
    for name in FILE_NAMES.values():
        assert name in message


def test_download_is_used_when_files_are_missing(tmp_path, monkeypatch):
    def fake_download(root):
        write_small_mnist(root / "MNIST" / "raw", n_train=20)

    monkeypatch.setattr(data_mod, "download_mnist", fake_download)
    assert len(load_mnist(tmp_path).train_images) == 20
    assert find_mnist_files(tmp_path) is not None


def test_truncated_file_names_the_file(tmp_path):
    write_small_mnist(tmp_path)
    path = tmp_path / FILE_NAMES["test_images"]
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated") as exc:
        load_mnist(tmp_path, download=False)
    assert str(path) in str(exc.value)


def test_wrong_magic_and_dims(tmp_path):
    bad = write_idx(tmp_path / "bad", np.zeros((3, 28, 28)), magic=0x0000080A)
    with pytest.raises(DataError, match="magic"):
        read_idx(bad, 3)
    small = write_idx(tmp_path / "small", np.zeros((3, 20, 20)))
    with pytest.raises(DataError, match="20x20"):
        read_idx(small, 3)
    labels = write_idx(tmp_path / "labels", np.zeros(3))
    with pytest.raises(DataError, match="magic"):
        read_idx(labels, 3)  # a label file where images are expected


def test_label_out_of_range_and_count_mismatch(tmp_path):
    write_small_mnist(tmp_path)
    write_idx(tmp_path / FILE_NAMES["train_labels"], np.full(50, 12))
    with pytest.raises(DataError, match="out of range"):
        load_mnist(tmp_path, download=False)
    write_idx(tmp_path / FILE_NAMES["train_labels"], np.zeros(49))
    with pytest.raises(DataError, match="49 labels"):
        load_mnist(tmp_path, download=False)


def test_damaged_gzip_names_the_file(tmp_path):
    write_small_mnist(tmp_path, gz=True)
    path = tmp_path / (FILE_NAMES["train_images"] + ".gz")
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(DataError, match="gzip") as exc:
        load_mnist(tmp_path, download=False)
    assert str(path) in str(exc.value)


def test_normalize_uses_named_constants():
    x = torch.zeros(1, 28, 28, dtype=torch.uint8)
    x[0, 0, 1] = 255
    out = normalize(x)
    assert out.shape == (1, 1, 28, 28)
    assert torch.isclose(out[0, 0, 0, 0], torch.tensor(background_value()))
    assert torch.isclose(out[0, 0, 0, 1], torch.tensor((1 - MNIST_MEAN) / MNIST_STD))


def test_augmentation_is_per_sample_seeded_and_keeps_background(mnist_data):
    x = normalize(mnist_data.train_images[:8])
    batch = torch.cat([x[:1]] * 4)  # the same image four times
    out1 = augment_batch(batch, torch.Generator().manual_seed(1))
    out2 = augment_batch(batch, torch.Generator().manual_seed(1))
    assert out1.shape == batch.shape
    assert torch.equal(out1, out2)  # same seed, same transforms
    assert not torch.allclose(out1[0], out1[1])  # drawn per sample
    # Corners stay blank background: borders are filled with it, not with zeros.
    assert torch.allclose(out1[:, 0, 0, 0], torch.full((4,), background_value()), atol=1e-5)
    # Ink is moved, not destroyed: total ink stays within the rescale range.
    ink_in = (batch - background_value()).sum((1, 2, 3))
    ink_out = (out1 - background_value()).sum((1, 2, 3))
    assert torch.all((ink_out / ink_in - 1).abs() < 0.35)
