"""Image folders (torchvision ImageFolder): PATH/train/<class>/*.png and PATH/test/<class>/*.png (or val/)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from torchvision import datasets, transforms

from dmc.data.bundle import DataBundle
from dmc.errors import InvalidInputError

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
LAYOUT_HINT = "expected PATH/train/<class>/<image> and PATH/test/<class>/<image> (or PATH/val/...)"


def load_image(path: str) -> Image.Image:
    """torchvision's image loader; a file it cannot decode (truncated, not an image) is an invalid input naming
    the file, whenever the loader reaches it."""
    try:
        return datasets.folder.default_loader(path)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise InvalidInputError(f"{path}: not a readable image ({detail})", "remove or replace the file") from None


def load_folder_bundle(root: str | Path, image_size: int = 32, augment: bool = False) -> DataBundle:
    root = Path(root)
    if not root.is_dir():
        raise InvalidInputError(f"{root}: no such folder", LAYOUT_HINT)
    test_dir = next((root / name for name in ("test", "val") if (root / name).is_dir()), None)
    if not (root / "train").is_dir() or test_dir is None:
        raise InvalidInputError(f"{root}: not an image-folder dataset", LAYOUT_HINT)
    base = [transforms.Resize((image_size, image_size)), transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    extra = [transforms.RandomCrop(image_size, padding=image_size // 8), transforms.RandomHorizontalFlip()]
    train_tf = transforms.Compose(base[:1] + (extra if augment else []) + base[1:])
    try:
        train = datasets.ImageFolder(str(root / "train"), transform=train_tf, loader=load_image, allow_empty=False)
        test = datasets.ImageFolder(str(test_dir), transform=transforms.Compose(base), loader=load_image)
    except (FileNotFoundError, RuntimeError) as exc:
        raise InvalidInputError(f"{root}: {exc}", LAYOUT_HINT) from None
    if train.classes != test.classes:
        raise InvalidInputError(f"{root}: train and {test_dir.name} have different classes", LAYOUT_HINT)
    return DataBundle(f"folder:{root}", train, test, len(train.classes), 3, image_size, IMAGENET_MEAN, IMAGENET_STD)
