"""Data sets: seeded validation splits, training-set normalisation, and clear errors when data is missing."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import rlnas.training.data as data_module
from rlnas.config import DataConfig
from rlnas.training.data import DataError, dataset_shape, load_data

DIGITS_TOTAL, DIGITS_TEST = 1797, 360  # scikit-learn's digits; rlnas documents a fixed 360-image test split


@pytest.fixture(scope="module")
def digits():
    return load_data(DataConfig(name="digits", val_size=300, split_seed=0))


def rows(x: torch.Tensor) -> set[bytes]:
    return {r.tobytes() for r in x.reshape(len(x), -1).numpy()}


# ----------------------------------------------------------------------------------------------- digits


def test_digits_split_sizes_and_shapes(digits):
    assert len(digits.val) == 300
    assert len(digits.test) == DIGITS_TEST
    assert len(digits.train) == DIGITS_TOTAL - DIGITS_TEST - 300
    assert digits.input_shape == (1, 8, 8) and digits.num_classes == 10
    assert dataset_shape(DataConfig(name="digits")) == ((1, 8, 8), 10)
    for split in (digits.train, digits.val, digits.test):
        assert split.x.shape[1:] == (1, 8, 8) and split.x.dtype == torch.float32
        assert split.y.dtype == torch.int64 and len(split.x) == len(split.y)
        assert set(split.y.tolist()) <= set(range(10))
    assert set(digits.train.y.tolist()) == set(range(10))


def test_digits_splits_are_disjoint(digits):
    train, val, test = rows(digits.train.x), rows(digits.val.x), rows(digits.test.x)
    assert len(train) == len(digits.train) and len(val) == len(digits.val)  # no duplicate images in digits
    assert not train & val
    assert not train & test and not val & test


def test_same_split_seed_same_split_other_seed_other_split(digits):
    again = load_data(DataConfig(name="digits", val_size=300, split_seed=0))
    torch.testing.assert_close(again.val.x, digits.val.x, rtol=0, atol=0)
    torch.testing.assert_close(again.train.y, digits.train.y, rtol=0, atol=0)
    other = load_data(DataConfig(name="digits", val_size=300, split_seed=1))
    assert rows(other.val.x) != rows(digits.val.x)
    assert len(other.val) == 300
    # the test split does not depend on split_seed (its normalisation does: other training statistics)
    assert torch.equal(other.test.y, digits.test.y)


def test_normalisation_uses_training_statistics(digits):
    x = digits.train.x
    assert abs(x.mean().item()) < 1e-4
    assert x.std().item() == pytest.approx(1.0, abs=1e-3)
    # the raw pixels are integers 0..16; undo the training-set affine map and every split must be integral again
    scale = 16.0 / (x.max() - x.min())
    offset = -x.min() * scale
    for split in (digits.train, digits.val, digits.test):
        raw = split.x * scale + offset
        assert raw.min() >= -1e-3 and raw.max() <= 16 + 1e-3
        assert torch.allclose(raw, raw.round(), atol=1e-3)
    # validation data was not normalised with its own statistics
    assert abs(digits.val.x.mean().item()) > 1e-3


def test_train_subset_limits_only_the_training_split():
    splits = load_data(DataConfig(name="digits", val_size=300, train_subset=100))
    assert len(splits.train) == 100
    assert len(splits.val) == 300 and len(splits.test) == DIGITS_TEST


def test_val_size_that_leaves_no_training_data_is_refused():
    with pytest.raises(DataError, match="val_size"):
        load_data(DataConfig(name="digits", val_size=DIGITS_TOTAL - DIGITS_TEST))


def test_batches_cover_the_split_once(digits):
    seen = [y for _, y in digits.val.batches(64, torch.Generator().manual_seed(0))]
    assert [len(y) for y in seen] == [64] * 4 + [300 - 256]
    assert sorted(torch.cat(seen).tolist()) == sorted(digits.val.y.tolist())
    in_order = torch.cat([y for _, y in digits.val.batches(64)])
    assert torch.equal(in_order, digits.val.y)


def test_unknown_data_set_name_lists_the_known_ones():
    with pytest.raises(DataError) as info:
        load_data(DataConfig(name="svhn"))
    message = str(info.value)
    assert "svhn" in message
    for name in ("fashion-mnist", "mnist", "cifar10", "digits", "imagefolder:PATH"):
        assert name in message


# ------------------------------------------------------------------------------------------ fashion-mnist


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) as a gzipped IDX file (the MNIST format: magic 0x0000 0x08 ndim, dims, data)."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_fake_fashion_mnist(folder: Path, n_train: int = 20, n_test: int = 10) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        write_idx(folder / name, array)
    return arrays


@pytest.fixture
def no_system_fashion_mnist(tmp_path, monkeypatch) -> Path:
    """Hide the system copy and point $RLNAS_DATA at an empty folder; return that folder."""
    monkeypatch.setattr(data_module, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "no-system-copy")
    cache = tmp_path / "rlnas-data"
    cache.mkdir()
    monkeypatch.setenv("RLNAS_DATA", str(cache))
    return cache


def test_missing_fashion_mnist_says_where_it_looked_and_how_to_get_it(tmp_path, no_system_fashion_mnist):
    root = tmp_path / "empty-root"
    root.mkdir()
    with pytest.raises(DataError) as info:
        load_data(DataConfig(name="fashion-mnist", root=str(root)))
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert str(root) in message
    assert str(tmp_path / "no-system-copy") in message
    assert str(no_system_fashion_mnist) in message
    assert "data.root" in message


@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_fashion_mnist_from_a_root_with_idx_files(tmp_path, no_system_fashion_mnist, layout):
    root = tmp_path / "fm"
    folder = root if layout == "flat" else root / "FashionMNIST" / "raw"
    written = write_fake_fashion_mnist(folder)
    splits = load_data(DataConfig(name="fashion-mnist", root=str(root), val_size=5))
    assert splits.input_shape == (1, 28, 28) and splits.num_classes == 10
    assert splits.train.x.shape == (15, 1, 28, 28)
    assert splits.val.x.shape == (5, 1, 28, 28)
    assert splits.test.x.shape == (10, 1, 28, 28)
    train_labels = sorted(torch.cat([splits.train.y, splits.val.y]).tolist())
    assert train_labels == sorted(written["train-labels-idx1-ubyte.gz"].tolist())
    assert splits.test.y.tolist() == written["t10k-labels-idx1-ubyte.gz"].tolist()  # test keeps its order
    # the test images are the written ones, under the training-set normalisation (an affine map)
    raw = written["t10k-images-idx3-ubyte.gz"].astype(np.float32).reshape(10, -1)
    normalised = splits.test.x.reshape(10, -1).numpy()
    slope, intercept = np.polyfit(raw.ravel(), normalised.ravel(), 1)
    np.testing.assert_allclose(normalised, slope * raw + intercept, atol=1e-4)
    assert slope > 0


def test_fashion_mnist_found_under_rlnas_data(no_system_fashion_mnist):
    write_fake_fashion_mnist(no_system_fashion_mnist / "FashionMNIST" / "raw")
    splits = load_data(DataConfig(name="fashion-mnist", val_size=4))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (16, 4, 10)


@pytest.mark.slow
def test_real_fashion_mnist():
    if not (data_module.FASHION_MNIST_SYSTEM_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST is not installed in {data_module.FASHION_MNIST_SYSTEM_DIR}")
    splits = load_data(DataConfig(name="fashion-mnist", val_size=5000))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (55000, 5000, 10000)
    assert splits.train.x.shape[1:] == (1, 28, 28)
    assert sorted(set(splits.test.y.tolist())) == list(range(10))


# ------------------------------------------------------------------------------------------- imagefolder


def write_images(folder: Path, per_class: dict[str, int], seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, count in per_class.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            if i % 2:  # a mix of grayscale and colour images of another size
                image = Image.fromarray(rng.integers(0, 256, (12, 10), dtype=np.uint8), mode="L")
            else:
                image = Image.fromarray(rng.integers(0, 256, (10, 14, 3), dtype=np.uint8), mode="RGB")
            image.save(folder / name / f"{i}.png")


def test_imagefolder_without_a_test_folder(tmp_path):
    write_images(tmp_path / "pics", {"cat": 4, "dog": 4, "eel": 4})
    cfg = DataConfig(name=f"imagefolder:{tmp_path / 'pics'}", image_size=8, val_size=2)
    assert dataset_shape(cfg) == ((3, 8, 8), 3)
    splits = load_data(cfg)
    assert splits.input_shape == (3, 8, 8) and splits.num_classes == 3
    total = len(splits.train) + len(splits.val) + len(splits.test)
    assert total == 12 and len(splits.val) == 2 and len(splits.test) >= 1
    for split in (splits.train, splits.val, splits.test):
        assert split.x.shape[1:] == (3, 8, 8)
    labels = torch.cat([splits.train.y, splits.val.y, splits.test.y]).tolist()
    assert sorted(labels) == [0] * 4 + [1] * 4 + [2] * 4


def test_imagefolder_with_train_and_test_folders(tmp_path):
    write_images(tmp_path / "pics" / "train", {"a": 3, "b": 5})
    write_images(tmp_path / "pics" / "test", {"a": 2, "b": 1}, seed=1)
    splits = load_data(DataConfig(name=f"imagefolder:{tmp_path / 'pics'}", image_size=8, val_size=2))
    assert (len(splits.train), len(splits.val)) == (6, 2)
    assert sorted(splits.test.y.tolist()) == [0, 0, 1]


def test_imagefolder_that_is_not_a_folder(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        load_data(DataConfig(name=f"imagefolder:{tmp_path / 'missing'}"))


def test_imagefolder_path_may_start_with_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    write_images(tmp_path / "pics", {"a": 3, "b": 3})
    splits = load_data(DataConfig(name="imagefolder:~/pics", image_size=8, val_size=1))
    assert splits.num_classes == 2
