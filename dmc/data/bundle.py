"""What a dataset loader returns: train and test splits plus the facts a network needs."""

from __future__ import annotations

from dataclasses import dataclass

from torch.utils.data import Dataset

from dmc.runtime import dataset_size


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
        return {"name": self.name, "train": dataset_size(self.train), "test": dataset_size(self.test),
                "classes": self.num_classes, "image_size": self.image_size, "in_channels": self.in_channels,
                "mean": list(self.mean), "std": list(self.std)}
