"""Training settings for derived networks: two recipes, DARTS's CIFAR evaluation protocol (``darts``, with a small
preset for digits) and the MnasNet ImageNet protocol the DARTS- paper trains its ImageNet networks with
(``imagenet``)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from dmc.compiler.build_args import STYLES
from dmc.cuda_graphs.choice import CUDA_GRAPH_CHOICES
from dmc.distributed import MIN_BATCH
from dmc.errors import InvalidInputError
from dmc.settings import check_settings, settings_from_dict

RECIPES = ("darts", "imagenet")
AUGMENT_POLICIES = ("cifar", "imagenet")
OPTIMIZERS = ("sgd", "rmsprop")
SCHEDULES = ("cosine", "step-exp")
IMAGENET_MIN_SIDE = 64
"""Folder datasets whose images are at least this many pixels on their shorter side train with the imagenet
recipe by default (the image size when given, else the first training image's)."""
IMAGENET_LR_PER_256 = 0.016
"""The imagenet recipe's peak learning rate per 256 images of a batch (scaled linearly with the batch size)."""

IMAGENET_RECIPE: dict[str, Any] = dict(
    # DARTS's ImageNet network (mobile setting): two stride-2 stems, 48 channels, 14 cells, auxiliary head 0.4
    style="imagenet", channels=48, layers=14, drop_path=0.0, cutout=0,
    # MnasNet (Tan et al. 2019) / its TF reference: 350 epochs, RMSProp (decay 0.9, momentum 0.9, eps 1e-3),
    # lr 0.016 per 256 images, 5 warm-up epochs, lr x0.97 every 2.4 epochs, weight decay 1e-5 (not on batch-norm
    # parameters), label smoothing 0.1, dropout 0.2 before the classifier, weight EMA 0.9999
    epochs=350, batch_size=256, optimizer="rmsprop", momentum=0.9, rmsprop_decay=0.9, rmsprop_eps=1e-3,
    schedule="step-exp", warmup_epochs=5, lr_decay=0.97, lr_decay_epochs=2.4, weight_decay=1e-5,
    norm_weight_decay=False, label_smoothing=0.1, dropout=0.2, ema_decay=0.9999)
IMAGENET_FOLDER_DATA: dict[str, Any] = dict(augment_policy="imagenet", image_size=224)
"""What the imagenet recipe changes on folder datasets (digits and CIFAR keep their 32x32 CIFAR-like data)."""


@dataclass
class TrainConfig:
    """DARTS's CIFAR evaluation protocol by default (the ``darts`` recipe): 600 epochs, batch 96, 36 channels, 20
    cells, SGD lr 0.025 cosine to 0, momentum 0.9, weight decay 3e-4, auxiliary head weighted 0.4, drop-path 0.2
    (ramped up linearly over the epochs), cutout 16, gradient clip 5. ``best.pt`` is selected on a held-out
    validation split (``val_portion`` of the training split, never the test split).

    The ``imagenet`` recipe (:data:`IMAGENET_RECIPE`, see :meth:`for_dataset`) trains DARTS's ImageNet network
    with the MnasNet protocol the DARTS- paper follows on ImageNet."""

    dataset: str = "cifar10"
    data_root: str | None = None
    style: str | None = None
    """Network style (cifar, imagenet, nb201); None builds the genotype as searched (cifar for published cells)."""
    epochs: int = 600
    batch_size: int = 96
    channels: int = 36
    layers: int = 20
    lr: float = 0.025
    """Peak learning rate (after any warm-up); the imagenet recipe's default is 0.016 per 256 images of the batch."""
    lr_min: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 3e-4
    auxiliary: bool = True
    auxiliary_weight: float = 0.4
    width: float | None = None
    """Chain networks: width multiplier of the skeleton (None: 1, the skeleton's own widths). Cell networks use
    ``style``, ``channels``, ``layers`` and ``auxiliary`` instead, chain networks not."""
    drop_path: float = 0.2
    cutout: int = 16
    augment: bool = True
    grad_clip: float = 5.0
    recipe: str = "darts"
    """The preset the settings started from (darts, imagenet): a record; the fields below say what trains."""
    image_size: int = 32
    """Training and evaluation image size of digits and folder datasets (CIFAR is 32)."""
    augment_policy: str = "cifar"
    """cifar: resize, padded random crop, flip; imagenet (folders only): random-resized crop and flip for
    training, resize to ``round(image_size / center_crop)`` and center crop for evaluation."""
    center_crop: float = 0.875
    """The imagenet policy's evaluation crop: the center ``image_size`` square of the image resized to
    ``image_size / center_crop`` (256 for 224)."""
    label_smoothing: float = 0.0
    """Label smoothing of the training loss (main and auxiliary head), as ``F.cross_entropy`` applies it."""
    optimizer: str = "sgd"
    """sgd (with ``momentum``) or rmsprop (TensorFlow's RMSProp: ``rmsprop_eps`` inside the square root, mean
    square started at 1, learning rate inside the momentum buffer, as the MnasNet reference trains)."""
    rmsprop_decay: float = 0.9
    """RMSProp's discounting of the mean square (TF's ``decay``, torch's ``alpha``)."""
    rmsprop_eps: float = 1e-3
    """RMSProp's epsilon, added to the mean square under the square root (TF's semantics)."""
    norm_weight_decay: bool = True
    """Whether weight decay also applies to batch-norm parameters (the TF reference excludes them)."""
    schedule: str = "cosine"
    """cosine (per epoch, to ``lr_min``) or step-exp (per step: ``lr * lr_decay ** floor(step / (lr_decay_epochs
    * steps per epoch))``, counted from the first step as the TF reference does)."""
    warmup_epochs: int = 0
    """Linear warm-up from 0 to ``lr``, per step, over the first epochs (then the schedule's value)."""
    lr_decay: float = 0.97
    lr_decay_epochs: float = 2.4
    dropout: float = 0.0
    """Dropout on the pooled features before the classifier (training only)."""
    ema_decay: float = 0.0
    """Exponential moving average of the weights (and batch-norm statistics) after every step, 0 for none; its
    decay is ``min(ema_decay, (1 + t) / (10 + t))`` at step t (TF's ``num_updates``). With it, validation, test,
    ``best.pt`` and ``last.pt`` (export, profile, detection) use the averaged weights."""
    val_portion: float = 0.1
    """Fraction of the training split held out (seeded, unaugmented) to select ``best.pt``; 0 trains on the
    whole split as the paper does, and ``best.pt`` is then the last epoch's checkpoint."""
    seed: int = 0
    device: str = "auto"
    deterministic: bool = False
    cuda_graphs: str = "auto"
    """How the steps run (:mod:`dmc.cuda_graphs`): auto (captured as CUDA graphs on one GPU, eager elsewhere), on,
    off, or static (the captured step's code run eagerly, on any device)."""
    sync_bn: bool = False
    """Distributed runs: batch-norm statistics over the global batch (:class:`dmc.distributed.SyncBatchNorm2d`)
    instead of each process's share."""
    num_workers: int = 0

    @classmethod
    def for_dataset(cls, dataset: str, **overrides: Any) -> TrainConfig:
        """Defaults for ``dataset``: the paper's for CIFAR; a small, CPU-friendly preset for ``digits`` (30 epochs,
        16 channels, 8 cells, cutout 8); for folders of images at least 64 pixels on their shorter side (the
        ``image_size`` override when given, else the first training image's), the imagenet recipe at 224 pixels,
        the DARTS recipe at 32 otherwise. ``overrides`` (None = not given) win; the imagenet recipe's ``lr`` is
        0.016 per 256 images of the batch unless given."""
        given = {k: v for k, v in overrides.items() if v is not None}
        kind = dataset.partition(":")[0]
        recipe = given.get("recipe") or default_recipe(dataset, given.get("image_size"))
        base: dict[str, Any] = {"dataset": dataset, "recipe": recipe}
        if recipe == "imagenet":
            base.update(IMAGENET_RECIPE)
            if kind == "folder":
                base.update(IMAGENET_FOLDER_DATA)
        if kind == "digits":  # CPU-sized on either recipe
            base.update(epochs=30, channels=16, layers=8, cutout=8 if recipe == "darts" else 0)
        base.update(given)
        if recipe == "imagenet" and "lr" not in given and isinstance(base["batch_size"], int):
            base["lr"] = IMAGENET_LR_PER_256 * base["batch_size"] / 256
        return cls.from_dict(base)

    def validate(self, source: str = "train config") -> TrainConfig:
        check_settings(self, source)
        checks = [
            (self.style is None or self.style in STYLES, f"style must be one of {', '.join(STYLES)}"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.cuda_graphs in CUDA_GRAPH_CHOICES, f"cuda_graphs must be one of {', '.join(CUDA_GRAPH_CHOICES)}"),
            (self.batch_size >= MIN_BATCH, f"batch_size must be >= {MIN_BATCH} (batch norm needs more than one image "
                                           "per batch)"),
            (self.channels >= 1 and self.layers >= 1, "channels and layers must be >= 1"),
            (self.width is None or 0 < self.width <= 8, "width must be in (0, 8]"),
            (0 <= self.drop_path < 1, "drop_path must be in [0, 1)"),
            (self.cutout >= 0, "cutout must be >= 0"),
            (self.lr > 0 and self.lr_min >= 0, "lr must be > 0 and lr_min >= 0"),
            (self.momentum >= 0 and self.weight_decay >= 0, "momentum and weight_decay must be >= 0"),
            (self.auxiliary_weight >= 0, "auxiliary_weight must be >= 0"),
            (self.grad_clip > 0, "grad_clip must be > 0"),
            (0 <= self.val_portion < 1, "val_portion must be in [0, 1)"),
            (self.num_workers >= 0, "num_workers must be >= 0"),
            (self.recipe in RECIPES, f"recipe must be one of {', '.join(RECIPES)}"),
            (self.image_size >= 1, "image_size must be >= 1"),
            (self.image_size == 32 or self.dataset.partition(":")[0] not in ("cifar10", "cifar100"),
             f"image_size must be 32 on {self.dataset.partition(':')[0]} (its images are 32x32; digits and folder "
             "datasets are resized)"),
            (self.augment_policy in AUGMENT_POLICIES, f"augment_policy must be one of {', '.join(AUGMENT_POLICIES)}"),
            (self.augment_policy == "cifar" or self.dataset.partition(":")[0] == "folder",
             "augment_policy imagenet needs a folder:PATH dataset"),
            (0 < self.center_crop <= 1, "center_crop must be in (0, 1]"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (0 <= self.rmsprop_decay < 1, "rmsprop_decay must be in [0, 1)"),
            (self.rmsprop_eps > 0, "rmsprop_eps must be > 0"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
            (self.warmup_epochs >= 0, "warmup_epochs must be >= 0"),
            (0 < self.lr_decay <= 1 and self.lr_decay_epochs > 0, "lr_decay must be in (0, 1] and lr_decay_epochs > 0"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (0 <= self.ema_decay < 1, "ema_decay must be in [0, 1)"),
            (re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device) is not None, "device must be auto, cpu or cuda[:N]"),
        ]
        for ok, problem in checks:
            if not ok:
                raise InvalidInputError(f"{source}: {problem}")
        return self

    @property
    def per_step_schedule(self) -> bool:
        """True when the learning rate changes every step (warm-up, step-exp); False for DARTS's per-epoch cosine."""
        return self.schedule != "cosine" or self.warmup_epochs > 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str = "train config") -> TrainConfig:
        """Settings from a mapping (a checkpoint's or config.json's); ``source`` names it in errors."""
        return settings_from_dict(cls, data, source).validate(source)


def default_recipe(dataset: str, image_size: int | None = None) -> str:
    """imagenet for folder datasets of images at least :data:`IMAGENET_MIN_SIDE` pixels (``image_size`` when given,
    else the shorter side of the first training image), darts for everything else."""
    kind, _, path = dataset.partition(":")
    if kind != "folder" or not path:
        return "darts"
    if image_size is None:
        from dmc.data.folder import first_image_side

        image_size = first_image_side(path)
    return "imagenet" if isinstance(image_size, int) and image_size >= IMAGENET_MIN_SIDE else "darts"
