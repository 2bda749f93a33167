"""An in-memory image dataset with tensor augmentation (no PIL round trips)."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2


class TensorImageDataset(Dataset):
    """Images (N, C, H, W) as uint8 or float in [0, 1], integer labels; normalised, optionally augmented
    with a padded random crop and (where ``flip``) a horizontal flip."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean, std, augment: bool = False,
                 flip: bool = True, crop_padding: int = 4):
        self.images = images
        self.labels = labels.long()
        self.normalize = v2.Normalize(list(mean), list(std))
        size = images.shape[-1]
        steps = [v2.RandomCrop(size, padding=crop_padding)] + ([v2.RandomHorizontalFlip()] if flip else [])
        self.augment = v2.Compose(steps) if augment else None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = self.images[index]
        image = image.float() / 255 if image.dtype == torch.uint8 else image
        if self.augment is not None:
            image = self.augment(image)
        return self.normalize(image), self.labels[index]
