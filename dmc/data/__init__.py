"""Datasets: ``digits`` (embedded), ``cifar10`` / ``cifar100`` (python-pickle folders), ``folder:PATH``."""

from __future__ import annotations

from pathlib import Path

from dmc.data.bundle import DataBundle
from dmc.errors import InvalidInputError, SettingError

DATASETS = ("digits", "cifar10", "cifar100", "folder:PATH")


def load_dataset(spec: str, root: str | Path | None = None, augment: bool = False, image_size: int = 32,
                 policy: str = "cifar", center_crop: float = 0.875) -> DataBundle:
    """Loads a dataset by name: ``digits``, ``cifar10[:PATH]``, ``cifar100[:PATH]`` or ``folder:PATH``.

    CIFAR folders can also come from ``root``. ``augment`` turns on training-split augmentation. ``image_size``
    resizes digits and folders (CIFAR is 32x32); folders also take an augmentation ``policy`` (``cifar`` or
    ``imagenet``: random-resized crop, and ``center_crop`` for evaluation, see :mod:`dmc.data.folder`).
    """
    name, location = _source(spec, root, policy)
    if location is None:  # digits: embedded, no files
        from dmc.data.digits import load_digits_bundle

        return load_digits_bundle(image_size, augment)
    if name in ("cifar10", "cifar100"):
        from dmc.data.cifar import load_cifar_bundle

        return load_cifar_bundle(name, location, augment)
    from dmc.data.folder import load_folder_bundle

    return load_folder_bundle(location, image_size, augment, policy, center_crop)


def image_side(spec: str, image_size: int) -> int:
    """The side of the images :func:`load_dataset` gives for ``spec`` at ``image_size`` (CIFAR's are always 32)."""
    return 32 if spec.partition(":")[0] in ("cifar10", "cifar100") else image_size


def check_dataset(spec: str, root: str | Path | None = None, policy: str = "cifar") -> None:
    """What :func:`load_dataset` checks before it reads any image: the name, the path, a CIFAR folder's files, an
    image folder's layout and classes. Runs call it before they write anything into their folder."""
    name, location = _source(spec, root, policy)
    if location is None:  # digits: embedded, no files
        return
    if name in ("cifar10", "cifar100"):
        from dmc.data.cifar import cifar_root

        cifar_root(name, location)
    elif name == "folder":
        from dmc.data.folder import split_folders

        split_folders(location)


def _source(spec: str, root: str | Path | None, policy: str) -> tuple[str, str | Path | None]:
    """(dataset name, where its files are: None for digits) of ``spec``; an unknown name or a missing path is
    refused."""
    name, _, path = spec.partition(":")
    if policy != "cifar" and name in ("digits", "cifar10", "cifar100"):
        raise InvalidInputError(f"the {policy} augmentation policy needs a folder:PATH dataset, not {name}",
                                "use the cifar policy")
    if name == "digits":
        return name, None
    if name in ("cifar10", "cifar100"):
        if not (path or root):
            raise SettingError(f"{name} needs the folder holding it (no downloads)",
                               f"pass {{dataset}} {name}:PATH or {{data_root}} PATH")
        return name, path or root
    if name == "folder":
        if not path:
            raise SettingError("folder datasets need a path", "pass {dataset} folder:PATH")
        return name, path
    raise InvalidInputError(f"unknown dataset {spec!r}", f"choose one of: {', '.join(DATASETS)}")


__all__ = ["DATASETS", "DataBundle", "check_dataset", "image_side", "load_dataset"]
