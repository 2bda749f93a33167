"""Writes one flat, readable MMDetection config: RetinaNet + FPN on a DmcBackbone, COCO-format data.

The backbone is a cell network (sized by channels and layers) or a chain network (sized by width). Its
stage outputs at strides 8, 16 and 32 (C3-C5, read from ``feature_info``) feed the FPN as mmdet's
RetinaNet does: P3-P5 from them, P6 and P7 from extra stride-2 convs on C5 (``add_extra_convs='on_input'``,
``num_outs=5``); FPN's ``in_channels`` and the anchor strides come from ``feature_info`` too. The schedule
defaults to the paper's 1x (12 epochs, batch 16 over 8 GPUs, lr 0.01, x0.1 at epochs 8 and 11).
"""

from __future__ import annotations

import dataclasses
import keyword
import math
import pprint
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dmc.compiler.saved import looks_like_network_file
from dmc.data.detection_demo import split_files
from dmc.detection.backbone import backbone_channels, build_backbone_network, detection_out_indices
from dmc.detection.coco import category_names
from dmc.errors import InvalidInputError, SettingError
from dmc.families.settings import SIZE_SETTINGS
from dmc.io import atomic_write_text
from dmc.outputs import refuse_overwriting_inputs
from dmc.version import __version__

COCO_FILES = {"train_ann": "annotations/instances_train2017.json", "val_ann": "annotations/instances_val2017.json",
              "train_img": "train2017/", "val_img": "val2017/"}
"""COCO 2017's annotation files and image folders in its folder."""
DEMO_FILES = {f"{split}_{kind}": path for split in ("train", "val")
              for kind, path in zip(("ann", "img"), split_files(split))}
"""Those of a folder written by `dmc data detection-demo`."""


@dataclass
class DetectionConfig:
    """The knobs of the generated config; defaults follow the paper's COCO setting."""

    data_root: str = "data/coco"
    train_ann: str | None = None
    """Train annotations, relative to ``data_root``; None: :data:`COCO_FILES`'s, or :data:`DEMO_FILES`'s in a
    folder that holds them (the same for ``val_ann``, ``train_img`` and ``val_img``)."""
    val_ann: str | None = None
    train_img: str | None = None
    val_img: str | None = None
    classes: list[str] | None = None
    """Category names; None reads them from the train annotation file when it exists (else COCO's 80)."""
    channels: int | None = None
    """Cell backbones: initial channels (None: the checkpoint's, else 16)."""
    layers: int | None = None
    """Cell backbones: cells (None: the checkpoint's, else 8)."""
    width: float | None = None
    """Chain backbones: width multiplier (None: the checkpoint's, else 1.0)."""
    out_indices: tuple[int, ...] | None = None
    """Backbone stages feeding the FPN; None: the stages at strides 8, 16, 32 (C3-C5)."""
    image_scale: tuple[int, int] = (1333, 800)
    epochs: int = 12
    milestones: tuple[int, ...] = (8, 11)
    batch_size: int = 2
    """Per GPU; the paper's 16 is 8 GPUs x 2."""
    lr: float = 0.01
    warmup_iters: int = 500
    grad_clip: float | None = 35.0
    """Gradient-norm clipping (mmdet's value for single-stage detectors); it keeps RetinaNet from collapsing
    to all-background early on small data or weakly pretrained backbones. None turns it off."""
    flip: bool = True
    """Random horizontal flips in training (off for data where mirroring changes the class, like digits)."""
    neck_channels: int = 256
    head_convs: int = 4
    num_workers: int = 2
    work_dir: str = "work_dirs/retinanet_dmc"
    extra: dict[str, Any] = field(default_factory=dict)

    def with_data_files(self) -> DetectionConfig:
        """This config with the data paths left None filled in: those of a `dmc data detection-demo` folder where
        ``data_root`` holds its train annotations (and not COCO's), else COCO 2017's."""
        demo = (Path(self.data_root) / DEMO_FILES["train_ann"]).is_file() \
            and not (Path(self.data_root) / COCO_FILES["train_ann"]).is_file()
        defaults = DEMO_FILES if demo else COCO_FILES
        return dataclasses.replace(self, **{name: getattr(self, name) or default for name, default in defaults.items()})

    def validate(self) -> DetectionConfig:
        """Refuses counts and sizes that cannot train (non-positive epochs, batch, channels, ...)."""
        at_least = {"epochs": 1, "batch_size": 1, "neck_channels": 1, "channels": 1, "layers": 1,
                    "warmup_iters": 0, "head_convs": 0, "num_workers": 0}
        for name, low in at_least.items():
            value = getattr(self, name)
            if not (value is None and name in ("channels", "layers")) and not (_is_int(value) and value >= low):
                raise InvalidInputError(f"detection config: {name} {value!r} must be an integer >= {low}")
        if len(self.image_scale) != 2 or not all(_is_int(v) and v >= 1 for v in self.image_scale):
            raise InvalidInputError(f"detection config: image_scale {tuple(self.image_scale)} must be two integers "
                                    ">= 1 (W, H)")
        if not all(_is_int(m) and 1 <= m <= self.epochs for m in self.milestones):
            raise InvalidInputError(f"detection config: milestones {tuple(self.milestones)} must be epochs from 1 "
                                    f"to {self.epochs}")
        for name in ("lr", "grad_clip", "width"):
            value = getattr(self, name)
            if not (value is None and name != "lr") and not (_is_number(value) and value > 0):
                raise InvalidInputError(f"detection config: {name} {value!r} must be a number > 0")
        return self


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _classes(cfg: DetectionConfig) -> list[str] | None:
    if cfg.classes is not None:
        return list(cfg.classes)
    ann = Path(cfg.data_root) / cfg.train_ann
    if ann.is_file():
        return category_names(ann)
    return None  # mmdet's CocoDataset knows COCO's 80 classes


def _warmup(iterations: int) -> list[dict[str, Any]]:
    """Linear warm-up: ``iterations`` iterations at a reduced lr, the full lr from the next one on. mmengine's LinearLR
    moves from its start to its end factor over steps 0 .. end - 1, so ``end=1`` would hold the lr at 0.001x for
    good; it refuses ``end=0``."""
    if iterations == 0:
        return []
    return [dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=iterations + 1)]


def retinanet_config(source: str | Path, cfg: DetectionConfig) -> dict[str, Any]:
    """The config as a dict: ``source`` is a genotype (file or published name; cell or chain) or a
    `dmc train` / `dmc compile` network file."""
    cfg = cfg.with_data_files().validate()
    path = Path(source)
    is_checkpoint = path.is_file() and looks_like_network_file(path)
    backbone_args: dict[str, Any] = {"type": "DmcBackbone"}
    if is_checkpoint:
        backbone_args["checkpoint"] = str(path.resolve())
    else:
        backbone_args["genotype"] = str(path.resolve()) if path.exists() else str(source)
    network, _ = build_backbone_network(backbone_args.get("genotype"), backbone_args.get("checkpoint"),
                                        cfg.channels, cfg.layers, cfg.width)
    macro = network.build_args.macro
    backbone_args.update({k: getattr(macro, k) for k in network.family.settings if k in SIZE_SETTINGS})
    out_indices = detection_out_indices(network) if cfg.out_indices is None else \
        tuple(network.feature_info.take_indices(cfg.out_indices, "out_indices"))
    backbone_args.update(out_indices=out_indices, frozen_stages=-1, norm_eval=False)
    in_channels, strides = backbone_channels(network, out_indices)
    num_outs = 5
    anchor_strides = strides + [strides[-1] * 2 ** k for k in range(1, num_outs - len(strides) + 1)]
    classes = _classes(cfg)
    metainfo = {"classes": tuple(classes)} if classes else None
    num_classes = len(classes) if classes else 80
    data_root = str(Path(cfg.data_root).resolve())
    train_pipeline = [
        dict(type="LoadImageFromFile"), dict(type="LoadAnnotations", with_bbox=True),
        dict(type="Resize", scale=tuple(cfg.image_scale), keep_ratio=True),
        dict(type="RandomFlip", prob=0.5 if cfg.flip else 0.0), dict(type="PackDetInputs"),
    ]
    test_pipeline = [
        dict(type="LoadImageFromFile"), dict(type="Resize", scale=tuple(cfg.image_scale), keep_ratio=True),
        dict(type="LoadAnnotations", with_bbox=True),
        dict(type="PackDetInputs", meta_keys=("img_id", "img_path", "ori_shape", "img_shape", "scale_factor")),
    ]

    def dataset(ann: str, img: str, test: bool) -> dict[str, Any]:
        d = dict(type="CocoDataset", data_root=data_root, ann_file=ann, data_prefix=dict(img=img),
                 pipeline=test_pipeline if test else train_pipeline)
        if metainfo:
            d["metainfo"] = metainfo
        if test:
            d["test_mode"] = True
        else:
            d["filter_cfg"] = dict(filter_empty_gt=True, min_size=4)
        return d

    workers = dict(num_workers=cfg.num_workers, persistent_workers=cfg.num_workers > 0)
    val_dataloader = dict(batch_size=1, **workers, drop_last=False, sampler=dict(type="DefaultSampler", shuffle=False),
                          dataset=dataset(cfg.val_ann, cfg.val_img, test=True))
    evaluator = dict(type="CocoMetric", ann_file=str(Path(data_root) / cfg.val_ann), metric="bbox", format_only=False)
    return {
        "custom_imports": dict(imports=["dmc.detection.backbone"], allow_failed_imports=False),
        "default_scope": "mmdet",
        "model": dict(
            type="RetinaNet",
            data_preprocessor=dict(type="DetDataPreprocessor", mean=[123.675, 116.28, 103.53],
                                   std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32),
            backbone=backbone_args,
            # mmdet's RetinaNet feeds C2-C5 with start_level=1; the backbone returns only C3-C5, so level 0
            neck=dict(type="FPN", in_channels=in_channels, out_channels=cfg.neck_channels, start_level=0,
                      add_extra_convs="on_input", num_outs=num_outs),
            bbox_head=dict(
                type="RetinaHead", num_classes=num_classes, in_channels=cfg.neck_channels,
                stacked_convs=cfg.head_convs, feat_channels=cfg.neck_channels,
                anchor_generator=dict(type="AnchorGenerator", octave_base_scale=4, scales_per_octave=3,
                                      ratios=[0.5, 1.0, 2.0], strides=anchor_strides),
                bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[1.0] * 4),
                loss_cls=dict(type="FocalLoss", use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
                loss_bbox=dict(type="L1Loss", loss_weight=1.0)),
            train_cfg=dict(assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0,
                                         ignore_iof_thr=-1),
                           sampler=dict(type="PseudoSampler"), allowed_border=-1, pos_weight=-1, debug=False),
            test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05, nms=dict(type="nms", iou_threshold=0.5),
                          max_per_img=100)),
        "train_dataloader": dict(batch_size=cfg.batch_size, **workers,
                                 sampler=dict(type="DefaultSampler", shuffle=True),
                                 batch_sampler=dict(type="AspectRatioBatchSampler"),
                                 dataset=dataset(cfg.train_ann, cfg.train_img, test=False)),
        "val_dataloader": val_dataloader,
        "test_dataloader": val_dataloader,
        "val_evaluator": evaluator,
        "test_evaluator": evaluator,
        "train_cfg": dict(type="EpochBasedTrainLoop", max_epochs=cfg.epochs, val_interval=1),
        "val_cfg": dict(type="ValLoop"),
        "test_cfg": dict(type="TestLoop"),
        "param_scheduler": [
            *_warmup(cfg.warmup_iters),
            dict(type="MultiStepLR", begin=0, end=cfg.epochs, by_epoch=True, milestones=list(cfg.milestones),
                 gamma=0.1),
        ],
        "optim_wrapper": dict(type="OptimWrapper",
                              optimizer=dict(type="SGD", lr=cfg.lr, momentum=0.9, weight_decay=0.0001),
                              **({"clip_grad": dict(max_norm=cfg.grad_clip, norm_type=2)} if cfg.grad_clip else {})),
        "auto_scale_lr": dict(enable=False, base_batch_size=16),
        "default_hooks": dict(timer=dict(type="IterTimerHook"), logger=dict(type="LoggerHook", interval=50),
                              param_scheduler=dict(type="ParamSchedulerHook"),
                              checkpoint=dict(type="CheckpointHook", interval=1, max_keep_ckpts=3),
                              sampler_seed=dict(type="DistSamplerSeedHook"),
                              visualization=dict(type="DetVisualizationHook")),
        "env_cfg": dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
                        dist_cfg=dict(backend="nccl")),
        "visualizer": dict(type="DetLocalVisualizer", vis_backends=[dict(type="LocalVisBackend")], name="visualizer"),
        "log_processor": dict(type="LogProcessor", window_size=50, by_epoch=True),
        "log_level": "INFO",
        "load_from": None,
        "resume": False,
        "work_dir": cfg.work_dir,
        **cfg.extra,
    }


_COMMENTS = {
    "model": "RetinaNet + FPN (extra levels from stride-2 convs on the last backbone stage); the backbone's "
             "stages, channels and strides come from the dmc network's feature_info",
    "train_dataloader": "COCO-format data: point data_root / ann_file / data_prefix at your dataset",
    "param_scheduler": "1x schedule: linear warm-up, then x0.1 at the milestones",
    "optim_wrapper": "lr for a total batch of 16 (8 GPUs x 2), as in the paper; gradient-norm clipping for stability",
}


def write_retinanet_config(source: str | Path, out: str | Path, cfg: DetectionConfig = DetectionConfig()) -> Path:
    """Writes the config of :func:`retinanet_config` as a flat Python file (no ``_base_``); refuses to write
    over the source or the annotation files.

    The file is code that `dmc detect train` runs, so every value is written as a Python literal (``repr``) and
    must be plain data (text, numbers, booleans, None, lists, tuples, dicts); ``cfg.extra``'s names must be
    Python identifiers. The data root, its annotation files and its image folders must exist."""
    cfg = cfg.with_data_files()
    refuse_overwriting_inputs([out], [source if Path(source).exists() else None,
                                      Path(cfg.data_root) / cfg.train_ann, Path(cfg.data_root) / cfg.val_ann])
    config = retinanet_config(source, cfg)
    for key, value in config.items():
        if not key.isidentifier() or keyword.iskeyword(key):
            raise InvalidInputError(f"detection config: setting name {key!r} is not a Python identifier",
                                    "name extra settings like the config's own (letters, digits, '_')")
        _check_plain_data(value, key)
    _check_plain_data(str(source), "the source")
    _check_data_files(cfg)
    lines = [f"# RetinaNet with a dmc backbone, written by dmc {__version__} (`dmc detect config {str(source)!r}`).",
             "# Flat on purpose: every setting is here; train with `dmc detect train THIS_FILE`.", ""]
    for key, value in config.items():
        if key in _COMMENTS:
            lines += ["", f"# {_COMMENTS[key]}"]
        lines.append(f"{key} = {pprint.pformat(value, width=110, sort_dicts=False)}")
    return atomic_write_text(out, "\n".join(lines) + "\n")


def _check_data_files(cfg: DetectionConfig) -> None:
    """Refuses a config whose data is not there, so that `dmc detect train` does not refuse it later; remote
    paths (``s3://``...) are left to mmengine."""
    hint = ("point {data_root} at a COCO-format dataset (`dmc data detection-demo DIR` writes one), and {train_ann}, "
            "{val_ann}, {train_img}, {val_img} at its files")
    if "://" in cfg.data_root:
        return
    root = Path(cfg.data_root)
    if not root.is_dir():
        raise SettingError(f"data root {root}: no such folder", hint)
    for name, is_there, what in (("train_ann", Path.is_file, "annotation file"),
                                 ("val_ann", Path.is_file, "annotation file"),
                                 ("train_img", Path.is_dir, "image folder"), ("val_img", Path.is_dir, "image folder")):
        path = root / getattr(cfg, name)
        if not is_there(path):
            raise SettingError(f"{path}: no such {what} ({name.replace('_', ' ')})", hint)


def _check_plain_data(value: Any, where: str) -> None:
    """Refuses what ``repr`` would not write as a literal that reads back as the same data: other types than the
    built-in ones (a subclass's repr is whatever it says), non-finite numbers, and text with ``{{`` (mmengine
    substitutes ``{{ ... }}`` templates in a Python config's text before running it, inside string literals too);
    and dict keys that mmengine's own writer would not quote safely."""
    kind = type(value)
    if kind is str:
        if "{{" in value:
            raise InvalidInputError(f"detection config: {where}: {value!r} contains '{{{{', which mmengine would "
                                    "substitute in the written config", "rename the path or setting")
    elif kind is float:
        if not math.isfinite(value):
            raise InvalidInputError(f"detection config: {where}: {value} is not a finite number")
    elif kind in (list, tuple):
        for i, item in enumerate(value):
            _check_plain_data(item, f"{where}[{i}]")
    elif kind is dict:
        for key, item in value.items():
            if type(key) not in (str, int):
                raise InvalidInputError(f"detection config: {where}: key {key!r} is not text or an integer")
            if type(key) is str and (not key.isprintable() or "'" in key or "\\" in key):
                # mmengine writes keys as '{key}' into the copy of the config a run saves (and may run later)
                raise InvalidInputError(f"detection config: {where}: key {key!r} holds a quote, a backslash or a "
                                        "control character", "rename the key")
            _check_plain_data(key, where)
            _check_plain_data(item, f"{where}.{key}")
    elif value is not None and kind not in (int, bool):
        raise InvalidInputError(f"detection config: {where}: a {kind.__name__} is not plain data",
                                "give text, numbers, booleans, None, lists, tuples or dicts")
