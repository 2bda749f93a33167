"""What a dataset loader returns: train and test splits plus the facts a network needs."""

from __future__ import annotations

from collections.abc import Sized
from dataclasses import dataclass
from typing import cast

from torch.utils.data import Dataset


@dataclass(frozen=True)
class DataBundle:
    """A classification dataset: ``train`` and held-out ``test`` splits yielding (image (C, H, W), label)."""

    name: str
    train: Dataset
    test: Dataset
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def describe(self) -> dict:
        # torch's Dataset type has no __len__; the splits are map-style datasets, which have one
        train, test = cast(Sized, self.train), cast(Sized, self.test)
        return {"name": self.name, "train": len(train), "test": len(test), "classes": self.num_classes,
                "image_size": self.image_size, "in_channels": self.in_channels, "mean": list(self.mean),
                "std": list(self.std)}
