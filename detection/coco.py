"""COCO-format annotation files, checked before training: one error naming the file and the problem,
instead of a failure deep inside mmdet's data loader (or silently dropped boxes).

    categories = check_coco("data/coco/annotations/instances_val2017.json", images="data/coco/val2017")
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from dmc.errors import InvalidInputError
from dmc.io import read_json

HINT = "fix the annotation file (COCO format: images, annotations with bbox [x, y, width, height], categories)"


def _fail(path: Path, problem: str) -> InvalidInputError:
    return InvalidInputError(f"{path}: {problem}", HINT)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_coco(path: str | Path) -> dict[str, Any]:
    """Parses and checks the structure of a COCO annotation file; returns it."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such annotation file", "check data_root and ann_file in the config")
    data = read_json(path, "COCO annotation file")
    if not isinstance(data, dict):
        raise _fail(path, "expected a JSON object with images, annotations and categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise _fail(path, f"{key}: missing or not a list")
    category_ids = _ids(path, data["categories"], "categories", {"name": str})
    image_ids = _ids(path, data["images"], "images", {"file_name": str})
    for i, image in enumerate(data["images"]):
        for side in ("width", "height"):
            if side in image and not (_integer(image[side]) and image[side] > 0):
                raise _fail(path, f"images[{i}]: {side} {image[side]!r} is not a positive integer")
    for i, ann in enumerate(data["annotations"]):
        where = f"annotations[{i}]"
        if not isinstance(ann, dict):
            raise _fail(path, f"{where}: not an object")
        if not _integer(ann.get("image_id")) or ann["image_id"] not in image_ids:
            raise _fail(path, f"{where}: image_id {ann.get('image_id')!r} is not the id of an image in the file")
        if not _integer(ann.get("category_id")) or ann["category_id"] not in category_ids:
            raise _fail(path, f"{where}: category_id {ann.get('category_id')!r} is not one of the file's categories")
        box = ann.get("bbox")
        if not (isinstance(box, list) and len(box) == 4 and all(_number(v) for v in box)):
            raise _fail(path, f"{where}: bbox {box!r} is not four finite numbers [x, y, width, height]")
        if box[2] < 0 or box[3] < 0:
            raise _fail(path, f"{where}: bbox {box!r} has a negative width or height")
    return data


def _ids(path: Path, entries: list, key: str, fields: dict[str, type]) -> set[int]:
    ids: set[int] = set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not _integer(entry.get("id")):
            raise _fail(path, f"{key}[{i}]: missing an integer id")
        if entry["id"] in ids:
            raise _fail(path, f"{key}[{i}]: id {entry['id']} is used twice")
        for field, kind in fields.items():
            if not isinstance(entry.get(field), kind) or not entry[field]:
                raise _fail(path, f"{key}[{i}]: {field} is missing or not a {kind.__name__}")
        ids.add(entry["id"])
    return ids


def check_coco(path: str | Path, images: str | Path | None = None) -> dict[str, Any]:
    """:func:`read_coco`, and, with ``images`` (the image folder), that every image file is there."""
    data = read_coco(path)
    if images is not None:
        for image in data["images"]:
            if not (Path(images) / image["file_name"]).is_file():
                raise _fail(Path(path), f"image {image['file_name']!r} (id {image['id']}) is not in {images}")
    return data


def category_names(path: str | Path) -> list[str]:
    """The category names of an annotation file, in id order (the detector's classes)."""
    return [c["name"] for c in sorted(read_coco(path)["categories"], key=lambda c: c["id"])]


def coco_datasets(node: Any):
    """The ``CocoDataset`` configs in a dataloader config, through dataset wrappers (Repeat, Concat, ...)."""
    if isinstance(node, dict):
        if str(node.get("type", "")).rpartition(".")[2] == "CocoDataset":
            yield node
        yield from coco_datasets(node.get("dataset"))
        for child in node.get("datasets") or []:
            yield from coco_datasets(child)


def _join(root: str | None, path: str) -> str:
    # mmengine's BaseDataset joins relative paths to data_root the same way
    return str(Path(root) / path) if root and not Path(path).is_absolute() else path


def check_config_datasets(cfg, loaders: tuple[str, ...]) -> None:
    """Checks the annotation files and images of every COCO dataset of the ``loaders`` of an mmengine config
    (e.g. ``train_dataloader``); remote paths (``s3://``...) are left to mmengine."""
    for loader in loaders:
        for dataset in coco_datasets((cfg.get(loader) or {}).get("dataset")):
            root = dataset.get("data_root")
            ann = _join(root, str(dataset.get("ann_file", "")))
            images = _join(root, str((dataset.get("data_prefix") or {}).get("img", "")))
            if "://" not in ann + images:
                check_coco(ann, images)
