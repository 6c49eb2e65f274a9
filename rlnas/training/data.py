"""Data sets by name, held in memory as tensors, with a fixed seeded validation split.

The search only ever sees ``train`` and ``val`` (carved from the official training set); ``test`` is for
final models. Names: ``fashion-mnist``, ``mnist``, ``cifar10``, ``cifar100``, ``digits`` (scikit-learn,
offline) and ``imagefolder:PATH``.
"""

from __future__ import annotations

import gzip
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rlnas.config import DataConfig

FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# name -> (channels, height, width, classes) for the data sets whose shape is known without loading
KNOWN_SHAPES = {
    "fashion-mnist": (1, 28, 28, 10),
    "mnist": (1, 28, 28, 10),
    "cifar10": (3, 32, 32, 10),
    "cifar100": (3, 32, 32, 100),
    "digits": (1, 8, 8, 10),
}


class DataError(RuntimeError):
    """A data set could not be found or read; the message says where rlnas looked and how to get it."""


@dataclass
class Split:
    """Images ``x`` (N, C, H, W, float32, normalised) and labels ``y`` (N, int64)."""

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return len(self.y)

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[tuple[Tensor, Tensor]]:
        """One pass in random order when ``generator`` is given, in order otherwise."""
        order = torch.randperm(len(self), generator=generator) if generator is not None else torch.arange(len(self))
        for start in range(0, len(self), batch_size):
            idx = order[start : start + batch_size]
            yield self.x[idx], self.y[idx]


@dataclass
class DataSplits:
    """The three splits of a data set and its shape.

    ``mean``/``std``: the per-channel statistics (of the training split, as the loader reads the raw images)
    that every split was normalised with; a deployed model expects inputs normalised the same way.
    """

    train: Split
    val: Split
    test: Split
    input_shape: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()


def default_root() -> Path:
    """Where torchvision data sets are kept unless a preset names ``data.root`` (``$RLNAS_DATA`` overrides)."""
    return Path(os.environ.get("RLNAS_DATA", Path.home() / ".cache" / "rlnas" / "data"))


def dataset_shape(cfg: DataConfig) -> tuple[tuple[int, int, int], int]:
    """Input shape and number of classes, without loading the data set."""
    if cfg.name in KNOWN_SHAPES:
        c, h, w, k = KNOWN_SHAPES[cfg.name]
        return (c, h, w), k
    if cfg.name.startswith("imagefolder:"):
        train_dir = _imagefolder_dirs(Path(cfg.name.split(":", 1)[1]).expanduser())[0]
        size = cfg.image_size or 32
        return (3, size, size), len([d for d in train_dir.iterdir() if d.is_dir()])
    raise DataError(f"unknown data set {cfg.name!r}: use one of {', '.join(KNOWN_SHAPES)} or imagefolder:PATH")


def load_data(cfg: DataConfig) -> DataSplits:
    """Load a data set, normalise it with training-set statistics and carve the seeded validation split."""
    _, num_classes = dataset_shape(cfg)  # also fails early on an unknown name
    loader = _LOADERS.get(cfg.name, _load_imagefolder)
    x_train, y_train, x_test, y_test = loader(cfg)
    if cfg.val_size >= len(y_train):
        raise DataError(f"data.val_size={cfg.val_size} leaves no training data ({len(y_train)} examples in all)")
    order = np.random.default_rng(cfg.split_seed).permutation(len(y_train))
    val_idx, train_idx = order[: cfg.val_size], order[cfg.val_size :]
    if cfg.train_subset is not None:
        train_idx = train_idx[: cfg.train_subset]
    x_train = torch.as_tensor(x_train, dtype=torch.float32)
    mean = x_train[train_idx].mean(dim=(0, 2, 3), keepdim=True)
    std = x_train[train_idx].std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)

    def split(x: Tensor, y: np.ndarray) -> Split:
        return Split(((x - mean) / std).contiguous(), torch.as_tensor(y, dtype=torch.int64))

    x_test = torch.as_tensor(x_test, dtype=torch.float32)
    c, h, w = x_train.shape[1:]
    return DataSplits(
        train=split(x_train[train_idx], y_train[train_idx]),
        val=split(x_train[val_idx], y_train[val_idx]),
        test=split(x_test, y_test),
        input_shape=(c, h, w),
        num_classes=num_classes,
        mean=tuple(mean.flatten().tolist()),
        std=tuple(std.flatten().tolist()),
    )


# ------------------------------------------------------------------------------------------------ loaders
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        _, _type_code, ndim = struct.unpack(">HBB", f.read(4))
        shape = struct.unpack(">" + "I" * ndim, f.read(4 * ndim))
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(shape).copy()


def _load_fashion_mnist(cfg: DataConfig) -> Arrays:
    candidates = [Path(cfg.root).expanduser()] if cfg.root else []
    candidates += [FASHION_MNIST_SYSTEM_DIR, default_root() / "FashionMNIST" / "raw"]
    for folder in candidates:
        for sub in (folder, folder / "FashionMNIST" / "raw"):
            if all((sub / f).is_file() for files in FASHION_MNIST_FILES.values() for f in files):
                (xtr, ytr), (xte, yte) = (
                    (_read_idx(sub / img), _read_idx(sub / lab)) for img, lab in FASHION_MNIST_FILES.values()
                )
                return xtr[:, None], ytr, xte[:, None], yte
    if cfg.download:
        return _load_torchvision(cfg, "FashionMNIST")
    looked = ", ".join(str(c) for c in candidates)
    raise DataError(
        f"Fashion-MNIST not found (looked in: {looked}). Fix: `apt-get install dataset-fashion-mnist` "
        "(Debian/Ubuntu), or put the four idx .gz files in a folder and set data.root to it, or set "
        "data.download: true when online. Offline alternative: the `digits` preset."
    )


def _load_torchvision(cfg: DataConfig, class_name: str) -> Arrays:
    import torchvision

    root = Path(cfg.root).expanduser() if cfg.root else default_root()
    cls = getattr(torchvision.datasets, class_name)
    try:
        train, test = (cls(str(root), train=flag, download=cfg.download) for flag in (True, False))
    except (RuntimeError, OSError) as err:
        hint = "set data.download: true (needs internet)" if not cfg.download else "check your connection"
        raise DataError(
            f"{cfg.name} not found under {root} ({err}). Fix: {hint}, or copy the torchvision {class_name} "
            f"files there, or set data.root / $RLNAS_DATA to where they are."
        ) from err

    def arrays(ds) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(ds.data)
        x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
        return x, np.asarray(ds.targets, dtype=np.int64)

    return (*arrays(train), *arrays(test))


def _load_digits(cfg: DataConfig) -> Arrays:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = digits.images[:, None].astype(np.float32), digits.target.astype(np.int64)
    order = np.random.default_rng(12345).permutation(len(y))  # fixed, documented test split: 360 images
    test, train = order[:360], order[360:]
    return x[train], y[train], x[test], y[test]


def _imagefolder_dirs(path: Path) -> tuple[Path, Path | None]:
    if not path.is_dir():
        raise DataError(f"imagefolder: {path} is not a folder; give imagefolder:PATH with one sub-folder per class")
    train = path / "train" if (path / "train").is_dir() else path
    test = next((path / n for n in ("test", "val") if (path / n).is_dir()), None)
    return train, test


def _load_imagefolder(cfg: DataConfig) -> Arrays:
    import torchvision
    from torchvision import transforms

    size = cfg.image_size or 32
    train_dir, test_dir = _imagefolder_dirs(Path(cfg.name.split(":", 1)[1]).expanduser())
    tf = transforms.Compose([transforms.Resize((size, size)), transforms.PILToTensor()])

    def arrays(folder: Path) -> tuple[np.ndarray, np.ndarray]:
        ds = torchvision.datasets.ImageFolder(str(folder), transform=tf)
        xs = [ds[i][0][:3].expand(3, -1, -1).numpy() for i in range(len(ds))]
        return np.stack(xs), np.asarray(ds.targets, dtype=np.int64)

    x, y = arrays(train_dir)
    if test_dir is not None:
        return (x, y, *arrays(test_dir))
    order = np.random.default_rng(12345).permutation(len(y))
    n_test = max(1, len(y) // 10)
    return x[order[n_test:]], y[order[n_test:]], x[order[:n_test]], y[order[:n_test]]


_LOADERS = {
    "fashion-mnist": _load_fashion_mnist,
    "mnist": lambda cfg: _load_torchvision(cfg, "MNIST"),
    "cifar10": lambda cfg: _load_torchvision(cfg, "CIFAR10"),
    "cifar100": lambda cfg: _load_torchvision(cfg, "CIFAR100"),
    "digits": _load_digits,
}
