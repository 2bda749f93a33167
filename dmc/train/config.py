"""Training settings for derived networks: the paper's evaluation protocol, with small presets for digits."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from dmc.compiler.build_args import STYLES
from dmc.errors import InvalidInputError
from dmc.settings import check_settings, settings_from_dict


@dataclass
class TrainConfig:
    """DARTS's CIFAR evaluation protocol by default: 600 epochs, batch 96, 36 channels, 20 cells, SGD lr 0.025
    cosine to 0, momentum 0.9, weight decay 3e-4, auxiliary head weighted 0.4, drop-path 0.2 (ramped up
    linearly over the epochs), cutout 16, gradient clip 5. ``best.pt`` is selected on a held-out validation
    split (``val_portion`` of the training split, never the test split)."""

    dataset: str = "cifar10"
    data_root: str | None = None
    style: str | None = None
    """Network style (cifar, imagenet, nb201); None builds the genotype as searched (cifar for published cells)."""
    epochs: int = 600
    batch_size: int = 96
    channels: int = 36
    layers: int = 20
    lr: float = 0.025
    lr_min: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 3e-4
    auxiliary: bool = True
    auxiliary_weight: float = 0.4
    drop_path: float = 0.2
    cutout: int = 16
    augment: bool = True
    grad_clip: float = 5.0
    val_portion: float = 0.1
    """Fraction of the training split held out (seeded, unaugmented) to select ``best.pt``; 0 trains on the
    whole split as the paper does, and ``best.pt`` is then the last epoch's checkpoint."""
    seed: int = 0
    device: str = "auto"
    deterministic: bool = False
    num_workers: int = 0

    @classmethod
    def for_dataset(cls, dataset: str, **overrides: Any) -> TrainConfig:
        """Defaults for ``dataset``: the paper's for CIFAR and folders; a small, CPU-friendly preset for
        ``digits`` (30 epochs, 16 channels, 8 cells, cutout 8). ``overrides`` (None = not given) win."""
        base: dict[str, Any] = {"dataset": dataset}
        if dataset.partition(":")[0] == "digits":
            base.update(epochs=30, channels=16, layers=8, cutout=8)
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(base)

    def validate(self, source: str = "train config") -> TrainConfig:
        check_settings(self, source)
        checks = [
            (self.style is None or self.style in STYLES, f"style must be one of {', '.join(STYLES)}"),
            (self.epochs >= 1 and self.batch_size >= 1, "epochs and batch_size must be >= 1"),
            (self.channels >= 1 and self.layers >= 1, "channels and layers must be >= 1"),
            (0 <= self.drop_path < 1, "drop_path must be in [0, 1)"),
            (self.cutout >= 0, "cutout must be >= 0"),
            (self.lr > 0 and self.lr_min >= 0, "lr must be > 0 and lr_min >= 0"),
            (self.momentum >= 0 and self.weight_decay >= 0, "momentum and weight_decay must be >= 0"),
            (self.auxiliary_weight >= 0, "auxiliary_weight must be >= 0"),
            (self.grad_clip > 0, "grad_clip must be > 0"),
            (0 <= self.val_portion < 1, "val_portion must be in [0, 1)"),
            (self.num_workers >= 0, "num_workers must be >= 0"),
            (re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device) is not None, "device must be auto, cpu or cuda[:N]"),
        ]
        for ok, problem in checks:
            if not ok:
                raise InvalidInputError(f"{source}: {problem}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "train config") -> TrainConfig:
        """Settings from a mapping (a checkpoint's or config.json's); ``source`` names it in errors."""
        return settings_from_dict(cls, data, source).validate(source)
