"""Training settings for derived networks: the paper's evaluation protocol, with small presets for digits."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from dmc.compiler.build_args import STYLES
from dmc.errors import InvalidInputError, check_known_settings


@dataclass
class TrainConfig:
    """DARTS's CIFAR evaluation protocol by default: 600 epochs, batch 96, 36 channels, 20 cells, SGD lr 0.025
    cosine to 0, momentum 0.9, weight decay 3e-4, auxiliary head weighted 0.4, drop-path 0.2 (ramped up
    linearly over the epochs), cutout 16, gradient clip 5."""

    dataset: str = "cifar10"
    data_root: str | None = None
    style: str = "cifar"
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

    def validate(self) -> TrainConfig:
        checks = [
            (self.style in STYLES, f"style must be one of {', '.join(STYLES)}"),
            (self.epochs >= 1 and self.batch_size >= 1, "epochs and batch_size must be >= 1"),
            (0 <= self.drop_path < 1, "drop_path must be in [0, 1)"),
            (self.cutout >= 0, "cutout must be >= 0"),
            (self.lr > 0, "lr must be > 0"),
        ]
        for ok, problem in checks:
            if not ok:
                raise InvalidInputError(f"train config: {problem}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        check_known_settings(data, [f.name for f in dataclasses.fields(cls)], "train config")
        return cls(**data).validate()
