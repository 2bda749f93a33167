"""CIFAR-10/100 from a folder in the standard python-pickle layout (no downloads).

The batches are pickles; they are read with an unpickler that only admits the plain containers and
numpy arrays the format uses, so a tampered file cannot run code.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import torch

from dmc.data.bundle import DataBundle
from dmc.data.normalization import CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD
from dmc.data.tensors import TensorImageDataset
from dmc.errors import InvalidInputError
from dmc.pickles import DataUnpickler

LAYOUTS = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels", 10,
                CIFAR10_MEAN, CIFAR10_STD),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels", 100, CIFAR100_MEAN, CIFAR100_STD),
}

_CIFAR_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
})


def read_batch(path: Path) -> dict:
    """One CIFAR batch file as a dict with bytes keys (b'data', b'labels' / b'fine_labels', ...)."""
    try:
        return DataUnpickler(io.BytesIO(path.read_bytes()), _CIFAR_GLOBALS, "CIFAR batches hold only arrays and lists",
                             encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise InvalidInputError(f"{path}: not a readable CIFAR batch ({exc})",
                                "re-extract the python version of the dataset") from None


def cifar_root(name: str, root: str | Path) -> Path:
    """The folder holding the batches; accepts the parent (as torchvision does) or the folder itself."""
    folder, train_files, test_files, *_ = LAYOUTS[name]
    root = Path(root)
    for candidate in (root / folder, root):
        if all((candidate / f).is_file() for f in train_files + test_files):
            return candidate
    raise InvalidInputError(
        f"{root}: no {name.upper()} data found",
        f"expected {root}/{folder}/ with {', '.join(train_files + test_files)} "
        f"(the 'python version' archive, unpacked)")


def _load_split(folder: Path, files: list[str], label_key: bytes, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for f in files:
        batch = read_batch(folder / f)
        try:
            data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            target = np.asarray(batch[label_key], dtype=np.int64)
        except (KeyError, IndexError, TypeError, ValueError, OverflowError) as exc:
            raise InvalidInputError(f"{folder / f}: malformed CIFAR batch ({type(exc).__name__}: {exc})",
                                    "re-extract the python version of the dataset") from None
        if target.ndim != 1 or len(data) != len(target):
            raise InvalidInputError(f"{folder / f}: {len(data)} images but labels of shape {target.shape}",
                                    "re-extract the python version of the dataset")
        outside = (target < 0) | (target >= classes)
        if outside.any():
            raise InvalidInputError(f"{folder / f}: label {int(target[outside][0])} is out of range "
                                    f"(this dataset has {classes} classes: 0..{classes - 1})",
                                    "re-extract the python version of the dataset")
        images.append(torch.from_numpy(data))
        labels.append(torch.from_numpy(target))
    return torch.cat(images), torch.cat(labels)


def load_cifar_bundle(name: str, root: str | Path, augment: bool = False) -> DataBundle:
    """CIFAR-10 or CIFAR-100; ``augment`` adds DARTS's padded random crop and horizontal flip to train."""
    _, train_files, test_files, label_key, classes, mean, std = LAYOUTS[name]
    folder = cifar_root(name, root)
    train_x, train_y = _load_split(folder, train_files, label_key, classes)
    test_x, test_y = _load_split(folder, test_files, label_key, classes)
    return DataBundle(name, TensorImageDataset(train_x, train_y, mean, std, augment),
                      TensorImageDataset(test_x, test_y, mean, std), classes, 3, 32, mean, std)
