"""What an exported detector needs from its MMDetection config: the trained model, the preprocessed images, and the
preprocessing written out for a deployment without mmdet.

    cfg, model = load_detector("retinanet_dmc.py", "work_dirs/digits/epoch_40.pth")
    for feed in preprocessed_batches(cfg, "val", limit=100):   # {"input": NCHW float32, "image_size": [[h, w]]}
        session.run(None, feed)

:func:`preprocessed_batches` runs the config's test pipeline (load, resize, pack) and the model's data preprocessor
(BGR to RGB, normalise, pad) on a split's images, exactly as ``dmc detect test`` feeds the model: the parity check
of the export uses it, and so can calibration (int8) on the val or train images.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

from dmc.detection.config_files import load_config
from dmc.detection.detector_checkpoints import check_checkpoint_fits, read_detector_checkpoint
from dmc.errors import InvalidInputError

INPUT_NAME = "input"
"""The exported detector's image input: a batch as mmdet's data preprocessor hands it to the model."""
SIZE_NAME = "image_size"
"""Its other input: [batch, 2] int64, each image's height and width before padding (mmdet's ``img_shape``)."""
SPLITS = ("train", "val", "test")

_EXPECTED = (
    (("model", "type"), ("RetinaNet",), "the detector"),
    (("model", "backbone", "type"), ("DmcBackbone",), "the backbone"),
    (("model", "bbox_head", "type"), ("RetinaHead",), "the head"),
    (("model", "bbox_head", "bbox_coder", "type"), ("DeltaXYWHBBoxCoder",), "the box coder"),
    (("model", "bbox_head", "anchor_generator", "type"), ("AnchorGenerator",), "the anchor generator"),
    (("model", "data_preprocessor", "type"), ("DetDataPreprocessor",), "the data preprocessor"),
    (("model", "test_cfg", "nms", "type"), ("nms",), "test_cfg.nms"),
)
"""The parts of a config :class:`dmc.detection.onnx_graph.DetectorGraph` exports, and the types it knows."""
_HINT = "export a RetinaNet with a dmc backbone, as `dmc detect config` writes it"


def quiet() -> contextlib.AbstractContextManager:
    """Keeps pycocotools' prints ("loading annotations into memory...") off the console."""
    return contextlib.redirect_stdout(io.StringIO())


def _type_name(value: Any) -> str:
    name = value if isinstance(value, str) else getattr(value, "__name__", repr(value))
    return name.split(".")[-1]  # "mmdet.RetinaNet" is mmdet's RetinaNet


def check_exportable(cfg: Config, source: str | Path) -> None:
    """Refuses configs whose detector :class:`~dmc.detection.onnx_graph.DetectorGraph` does not export (one line)."""
    model = cfg.get("model")
    if not isinstance(model, dict):
        raise InvalidInputError(f"{source}: not a detector config (it sets no model)", _HINT)
    for path, known, what in _EXPECTED:
        node: Any = model
        for key in path[1:]:
            node = node.get(key) if isinstance(node, dict) else None
        if node is None or _type_name(node) not in known:
            found = "none" if node is None else _type_name(node)
            raise InvalidInputError(f"{source}: {what} is {found}, and `dmc detect export` exports "
                                    f"{' or '.join(known)} only", _HINT)
    head, test_cfg = model["bbox_head"], model["test_cfg"]
    if not head.get("loss_cls", {}).get("use_sigmoid", False):
        raise InvalidInputError(f"{source}: the head's classifier uses softmax; the export decodes sigmoid scores",
                                _HINT)
    if test_cfg["nms"].get("class_agnostic", False):
        raise InvalidInputError(f"{source}: test_cfg.nms.class_agnostic is set; the export runs class-aware NMS",
                                "leave class_agnostic out of test_cfg.nms")
    if "iou_threshold" not in test_cfg["nms"] or "max_per_img" not in test_cfg:
        raise InvalidInputError(f"{source}: test_cfg needs nms.iou_threshold and max_per_img", _HINT)
    if model["data_preprocessor"].get("batch_augments"):
        raise InvalidInputError(f"{source}: the data preprocessor has batch augments", _HINT)


def load_detector(config: str | Path | Config, checkpoint: str | Path) -> tuple[Config, torch.nn.Module]:
    """The config and its detector in eval mode with the weights of ``checkpoint`` (read as data; refused unless it
    holds every weight of this config's model)."""
    cfg = load_config(config)
    check_exportable(cfg, cfg.filename or config)
    weights = read_detector_checkpoint(checkpoint)
    init_default_scope(cfg.get("default_scope", "mmdet"))
    from mmdet.registry import MODELS

    model = MODELS.build(copy.deepcopy(cfg.model))
    check_checkpoint_fits(model, weights, checkpoint)
    extra = sorted(set(weights) - set(model.state_dict()))
    if extra:  # a larger model's checkpoint: its other tensors would be left out of the export unnoticed
        raise InvalidInputError(f"{checkpoint}: not a checkpoint of this config's model: it holds {len(extra)} "
                                f"tensors the model lacks (e.g. {extra[0]})",
                                "pass a checkpoint written by training this config")
    model.load_state_dict(weights)
    return cfg, model.eval()


def test_pipeline(cfg: Config) -> list[dict]:
    """The test dataloader's pipeline (what deployment reproduces), annotation loading included (for evaluation)."""
    return copy.deepcopy(cfg.test_dataloader.dataset.pipeline)


def build_dataset(cfg: Config, split: str):
    """The dataset of ``split``'s dataloader (train, val or test) with the test pipeline: no random flips, the same
    resizing as at test time."""
    if split not in SPLITS:
        raise InvalidInputError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    loader = cfg.get(f"{split}_dataloader")
    if not isinstance(loader, dict) or not isinstance(loader.get("dataset"), dict):
        raise InvalidInputError(f"{cfg.filename}: the config has no {split}_dataloader with a dataset",
                                "export a config written by `dmc detect config`")
    from mmdet.registry import DATASETS

    dataset_cfg = copy.deepcopy(loader.dataset)
    dataset_cfg.pipeline = test_pipeline(cfg)
    dataset_cfg.test_mode = True  # keep every image (no filtering of images without boxes)
    dataset_cfg.pop("filter_cfg", None)
    init_default_scope(cfg.get("default_scope", "mmdet"))
    with quiet():
        return DATASETS.build(dataset_cfg)


def data_preprocessor(cfg: Config) -> torch.nn.Module:
    """The model's data preprocessor, alone (no weights: normalisation and padding only)."""
    init_default_scope(cfg.get("default_scope", "mmdet"))
    from mmdet.registry import MODELS

    return MODELS.build(copy.deepcopy(cfg.model.data_preprocessor)).eval()


def preprocessed_samples(cfg: Config, split: str = "val", limit: int | None = None,
                         preprocessor: torch.nn.Module | None = None) -> Iterator[dict]:
    """``{"inputs": [1, 3, H, W] float32 tensor, "data_samples": [DetDataSample]}`` per image of ``split``, in
    dataset order, at most ``limit`` of them: what the model's ``predict`` takes."""
    dataset = build_dataset(cfg, split)
    preprocessor = preprocessor or data_preprocessor(cfg)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    with torch.no_grad():
        for i in range(count):
            yield preprocessor(pseudo_collate([dataset[i]]), False)


def feeds(data: dict) -> dict[str, np.ndarray]:
    """The exported detector's inputs for a preprocessed batch (from :func:`preprocessed_samples`): the images and
    their sizes before padding."""
    sizes = [sample.metainfo["img_shape"][:2] for sample in data["data_samples"]]
    return {INPUT_NAME: data["inputs"].numpy(), SIZE_NAME: np.asarray(sizes, dtype=np.int64).reshape(-1, 2)}


def preprocessed_batches(cfg: Config | str | Path, split: str = "val",
                         limit: int | None = None) -> Iterator[dict[str, np.ndarray]]:
    """``{"input": float32 [1, 3, H, W], "image_size": int64 [1, 2]}`` per image of ``split`` (train, val or test): the
    exported detector's feeds, preprocessed as at test time (see :func:`preprocessed_samples`); e.g. calibration data
    for int8."""
    cfg = load_config(cfg)
    for data in preprocessed_samples(cfg, split, limit):
        yield feeds(data)


def _resize(cfg: Config) -> dict[str, Any] | None:
    """The test pipeline's Resize with mmcv's defaults filled in (keep_ratio: scale by min(long side / long edge,
    short side / short edge) of ``scale``, sizes rounded, as ``mmcv.imrescale``)."""
    for step in test_pipeline(cfg):
        if _type_name(step.get("type")) == "Resize":
            given = {k: (list(v) if isinstance(v, tuple) else v) for k, v in step.items() if k != "type"}
            return {"keep_ratio": False, "interpolation": "bilinear", "backend": "cv2", **given}
    return None


def class_names(cfg: Config) -> list[str]:
    """The categories, in label order: the test dataset's ``metainfo`` classes, else its dataset type's."""
    dataset = cfg.test_dataloader.dataset
    classes = (dataset.get("metainfo") or {}).get("classes")
    if classes is None:
        from mmdet.registry import DATASETS

        init_default_scope(cfg.get("default_scope", "mmdet"))
        classes = DATASETS.get(dataset.type).METAINFO["classes"]
    return [str(c) for c in classes]


def preprocessing(cfg: Config) -> dict[str, Any]:
    """What a deployment does to an image before the model, from the config: the test pipeline's Resize and the data
    preprocessor's settings (mmdet's defaults where the config leaves them out)."""
    pre = cfg.model.data_preprocessor
    return {
        "color": "RGB" if pre.get("bgr_to_rgb", False) else "BGR",
        "bgr_to_rgb": bool(pre.get("bgr_to_rgb", False)),
        "resize": _resize(cfg),
        "mean": [float(m) for m in pre.get("mean") or [0.0, 0.0, 0.0]],
        "std": [float(s) for s in pre.get("std") or [1.0, 1.0, 1.0]],
        "pad_size_divisor": int(pre.get("pad_size_divisor", 1)),
        "pad_value": float(pre.get("pad_value", 0)),
        "layout": "NCHW float32: (pixel - mean) / std per channel, then padded at the bottom and right with pad_value "
                  "to multiples of pad_size_divisor",
    }
