"""The embedded detection set: scikit-learn's digits pasted onto cluttered canvases, in COCO format.

    write_detection_demo("data/digits-coco")   # train/ and val/ PNGs, annotations/instances_{train,val}.json

Each image holds several non-overlapping digits, scaled and tinted, over a noisy background with random
strokes (clutter that looks like pen marks but is no digit). Categories are the digits 0-9. Real COCO
data works the same way: point the generated mmdet config at it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from dmc.errors import InvalidInputError
from dmc.io import WriteError, atomic_write_text

MAX_IMAGES = 100_000
"""Images per split: more is no longer a demo (each image is written to disk)."""
MAX_SIZE = 4096
"""Canvas side in pixels."""
CATEGORIES = [{"id": i + 1, "name": str(i), "supercategory": "digit"} for i in range(10)]


def split_files(split: str) -> tuple[str, str]:
    """(annotation file, image folder) of ``split`` (train, val), relative to the set's folder."""
    return f"annotations/instances_{split}.json", f"{split}/"


@dataclass(frozen=True)
class DemoSpec:
    train_images: int = 240
    val_images: int = 60
    size: int = 128
    digits_per_image: tuple[int, int] = (2, 4)
    digit_size: tuple[int, int] = (24, 52)
    clutter_strokes: int = 6
    seed: int = 0

    def __post_init__(self) -> None:
        low, high = self.digit_size
        for name, value, lo, hi in (("train_images", self.train_images, 1, MAX_IMAGES),
                                    ("val_images", self.val_images, 1, MAX_IMAGES),
                                    ("size", self.size, high + 1, MAX_SIZE)):
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise InvalidInputError(f"detection demo: {name} {value!r} must be an integer from {lo} to {hi}")
        if not (1 <= low <= high and 0 <= self.digits_per_image[0] <= self.digits_per_image[1]
                and self.clutter_strokes >= 0):
            raise InvalidInputError("detection demo: digit_size, digits_per_image and clutter_strokes must be "
                                    "ordered non-negative ranges")


def _place(rng: np.random.Generator, boxes: list, side: int, size: int) -> tuple[int, int] | None:
    for _ in range(50):
        x, y = int(rng.integers(0, size - side)), int(rng.integers(0, size - side))
        if all(x + side <= bx or bx + bw <= x or y + side <= by or by + bh <= y for bx, by, bw, bh in boxes):
            return x, y
    return None


def _render(rng: np.random.Generator, digits: np.ndarray, labels: np.ndarray, spec: DemoSpec):
    size = spec.size
    canvas = rng.normal(40, 12, (size, size, 3)).clip(0, 255)
    image = Image.fromarray(canvas.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(spec.clutter_strokes):  # pen-like strokes that are not digits
        points = [tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(2)]
        draw.line(points, fill=tuple(int(v) for v in rng.integers(60, 160, 3)), width=int(rng.integers(1, 3)))
    boxes: list[tuple[int, int, int, int]] = []
    annotations: list[dict[str, Any]] = []
    for _ in range(int(rng.integers(spec.digits_per_image[0], spec.digits_per_image[1] + 1))):
        side = int(rng.integers(spec.digit_size[0], spec.digit_size[1] + 1))
        spot = _place(rng, boxes, side, size)
        if spot is None:
            continue
        k = int(rng.integers(len(labels)))
        glyph = Image.fromarray((digits[k] / 16 * 255).astype(np.uint8)).resize((side, side), Image.Resampling.BILINEAR)
        alpha = np.asarray(glyph, dtype=np.float32) / 255
        color = rng.integers(150, 256, 3).astype(np.float32)
        region = np.asarray(image, dtype=np.float32)[spot[1]:spot[1] + side, spot[0]:spot[0] + side]
        blended = region * (1 - alpha[..., None]) + color * alpha[..., None]
        image.paste(Image.fromarray(blended.clip(0, 255).astype(np.uint8)), spot)
        # the box is the digit's ink, not the pasted square
        ys, xs = np.nonzero(alpha > 0.2)
        x0, y0 = spot[0] + int(xs.min()), spot[1] + int(ys.min())
        w, h = int(xs.max() - xs.min()) + 1, int(ys.max() - ys.min()) + 1
        boxes.append((spot[0], spot[1], side, side))
        annotations.append({"bbox": [x0, y0, w, h], "category_id": int(labels[k]) + 1, "area": w * h, "iscrowd": 0})
    return image, annotations


def write_detection_demo(out: str | Path, spec: DemoSpec = DemoSpec()) -> dict[str, Path]:
    """Writes the demo set under ``out``; returns the paths of the train and val annotation files.

    Refuses a folder that exists and is not empty (nothing is overwritten); the set is written beside it
    and moved into place when complete. Deterministic in ``spec``.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = ("already holds a dataset (annotations/)" if (out / "annotations").exists()
                else "exists and is not an empty folder")
        raise InvalidInputError(f"{out} {what}", "choose a new folder")
    partial = out.parent / f".{out.name}.{secrets.token_hex(4)}.partial"
    try:
        partial.mkdir(parents=True)
    except OSError as exc:
        raise WriteError(f"cannot create {out}: {exc.strerror or exc}",
                         "check that its folder is writable, or write elsewhere") from None
    try:
        paths = _write(partial, spec)
        os.replace(partial, out)  # the whole set appears at once: a crash leaves no half-written folder
    except BaseException as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(exc, OSError):  # disk full, folder removed under us, ...
            raise WriteError(f"cannot write {out}: {exc.strerror or exc}",
                             "check that its folder is writable and has free space, or write elsewhere") from None
        raise
    return {name: out / path.relative_to(partial) for name, path in paths.items()}


def _write(out: Path, spec: DemoSpec) -> dict[str, Path]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(spec.seed)
    # train and val paste different digit images: the val split is not a copy of train glyphs
    order = rng.permutation(len(digits.target))
    split = int(len(order) * 0.8)
    paths = {}
    for name, count, pool in (("train", spec.train_images, order[:split]), ("val", spec.val_images, order[split:])):
        annotation_file, image_folder = split_files(name)
        folder = out / image_folder
        folder.mkdir(parents=True, exist_ok=True)
        images: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        for i in range(count):
            image, anns = _render(rng, digits.images[pool], digits.target[pool], spec)
            file_name = f"{i:05d}.png"
            image.save(folder / file_name)
            images.append({"id": i + 1, "file_name": file_name, "width": spec.size, "height": spec.size})
            for ann in anns:
                annotations.append({**ann, "id": len(annotations) + 1, "image_id": i + 1})
        coco = {"info": {"description": f"dmc detection demo ({name}): digits on cluttered canvases"},
                "images": images, "annotations": annotations, "categories": CATEGORIES}
        paths[name] = atomic_write_text(out / annotation_file, json.dumps(coco))
    return paths
