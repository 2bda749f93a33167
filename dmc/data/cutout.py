"""Cutout (DeVries & Taylor, 2017), as DARTS applies it to training images."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from dmc.runtime import dataset_size


def cutout(image: torch.Tensor, length: int) -> torch.Tensor:
    """Zeroes one ``length`` x ``length`` square (clipped at the borders) centred at a random pixel."""
    h, w = image.shape[-2:]
    y, x = torch.randint(h, ()).item(), torch.randint(w, ()).item()
    image = image.clone()
    image[..., max(0, y - length // 2): y + length // 2, max(0, x - length // 2): x + length // 2] = 0
    return image


class CutoutDataset(Dataset):
    """Wraps an image dataset and applies :func:`cutout` to every image it yields."""

    def __init__(self, dataset: Dataset, length: int):
        self.dataset, self.length = dataset, length

    def __len__(self) -> int:
        return dataset_size(self.dataset)

    def __getitem__(self, index: int):
        image, label = self.dataset[index]
        return cutout(image, self.length), label
