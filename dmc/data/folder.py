"""Image folders (torchvision ImageFolder): PATH/train/<class>/*.png and PATH/test/<class>/*.png (or val/).

Two augmentation policies: ``cifar`` (resize to the square image size, DARTS's padded random crop and horizontal
flip; every split is resized to the square) and ``imagenet``, the standard ImageNet protocol: random-resized crop
(scale 0.08-1, aspect 3/4-4/3) and horizontal flip for training; evaluation resizes the shorter side to
``round(image_size / center_crop)`` (256 for 224 at the usual 0.875) and takes the center ``image_size`` square.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image
from torchvision import datasets, transforms

from dmc.data.bundle import DataBundle
from dmc.data.normalization import IMAGENET_MEAN, IMAGENET_STD
from dmc.errors import InvalidInputError

LAYOUT_HINT = "expected PATH/train/<class>/<image> and PATH/test/<class>/<image> (or PATH/val/...)"
POLICIES = ("cifar", "imagenet")
CENTER_CROP = 0.875
"""The ImageNet evaluation crop: the shorter side is resized to ``image_size / 0.875`` (256 for 224)."""


def load_image(path: str) -> Image.Image:
    """torchvision's image loader; a file it cannot decode (truncated, not an image) is an invalid input naming
    the file, whenever the loader reaches it."""
    try:
        return datasets.folder.default_loader(path)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise InvalidInputError(f"{path}: not a readable image ({detail})", "remove or replace the file") from None


def first_image_side(root: str | Path) -> int | None:
    """The shorter side of the first training image (ImageFolder's order: classes, then files, sorted), read from
    its header only; None when there is none or it cannot be read (loading the dataset then says why)."""
    train = Path(root) / "train"
    try:
        for name in sorted(entry.name for entry in os.scandir(train) if entry.is_dir()):
            files = sorted(entry.name for entry in os.scandir(train / name)
                           if entry.is_file() and entry.name.lower().endswith(datasets.folder.IMG_EXTENSIONS))
            if files:
                with Image.open(train / name / files[0]) as image:
                    return min(image.size)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    return None


def folder_transforms(image_size: int, policy: str = "cifar", augment: bool = False,
                      center_crop: float = CENTER_CROP) -> tuple[transforms.Compose, transforms.Compose]:
    """The (training, evaluation) transforms of ``policy``; without ``augment`` training uses the evaluation one."""
    if policy not in POLICIES:
        raise InvalidInputError(f"unknown augmentation policy {policy!r}", f"choose one of: {', '.join(POLICIES)}")
    finish = [transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if policy == "imagenet":
        evaluation = [transforms.Resize(round(image_size / center_crop)), transforms.CenterCrop(image_size)]
        augmented = [transforms.RandomResizedCrop(image_size), transforms.RandomHorizontalFlip()]
    else:
        evaluation = [transforms.Resize((image_size, image_size))]
        augmented = evaluation + [transforms.RandomCrop(image_size, padding=image_size // 8),
                                  transforms.RandomHorizontalFlip()]
    return (transforms.Compose((augmented if augment else evaluation) + finish),
            transforms.Compose(evaluation + finish))


def split_folders(root: str | Path) -> tuple[Path, Path]:
    """The ``train`` and ``test`` (or ``val``) folders of an image-folder dataset, checked to hold the same class
    folders, each training class at least one image (the images are not listed: the search stops at the first)."""
    root = Path(root)
    if not root.is_dir():
        raise InvalidInputError(f"{root}: no such folder", LAYOUT_HINT)
    test_dir = next((root / name for name in ("test", "val") if (root / name).is_dir()), None)
    if not (root / "train").is_dir() or test_dir is None:
        raise InvalidInputError(f"{root}: not an image-folder dataset", LAYOUT_HINT)
    try:
        classes = [datasets.folder.find_classes(str(folder))[0] for folder in (root / "train", test_dir)]
    except (FileNotFoundError, OSError) as exc:
        raise InvalidInputError(f"{root}: {exc}", LAYOUT_HINT) from None
    if classes[0] != classes[1]:
        raise InvalidInputError(f"{root}: train and {test_dir.name} have different classes", LAYOUT_HINT)
    empty = next((c for c in classes[0] if not _holds_an_image(root / "train" / c)), None)
    if empty is not None:
        raise InvalidInputError(f"{root / 'train' / empty}: a class folder without images",
                                f"add its images or remove the folder; {LAYOUT_HINT}")
    return root / "train", test_dir


def _holds_an_image(folder: Path) -> bool:
    """Whether ImageFolder would find an image in ``folder`` (at any depth, links followed, as it walks)."""
    for _, _, files in os.walk(folder, followlinks=True):
        if any(datasets.folder.has_file_allowed_extension(f, datasets.folder.IMG_EXTENSIONS) for f in files):
            return True
    return False


def load_folder_bundle(root: str | Path, image_size: int = 32, augment: bool = False, policy: str = "cifar",
                       center_crop: float = CENTER_CROP) -> DataBundle:
    """An image-folder dataset at ``image_size`` with the ``policy``'s transforms (``augment``: on training)."""
    root = Path(root)
    train_dir, test_dir = split_folders(root)
    train_tf, test_tf = folder_transforms(image_size, policy, augment, center_crop)
    try:
        train = datasets.ImageFolder(str(train_dir), transform=train_tf, loader=load_image, allow_empty=False)
        test = datasets.ImageFolder(str(test_dir), transform=test_tf, loader=load_image)
    except (FileNotFoundError, RuntimeError) as exc:
        raise InvalidInputError(f"{root}: {exc}", LAYOUT_HINT) from None
    return DataBundle(f"folder:{root}", train, test, len(train.classes), 3, image_size, IMAGENET_MEAN, IMAGENET_STD)
