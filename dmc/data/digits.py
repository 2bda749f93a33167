"""The embedded default: scikit-learn's bundled 8x8 handwritten digits as CIFAR-like 3x32x32 images.

32x32 keeps every network, stride and compile default identical to CIFAR's, so what runs on the
demo runs unchanged on real data. The held-out test split is fixed (stratified, 20%, seed 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dmc.data.bundle import DataBundle
from dmc.data.tensors import TensorImageDataset

TEST_FRACTION = 0.2


def digits_images(image_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1797 digits as float images (N, 3, S, S) in [0, 1], and their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
    images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return images.clamp(0, 1).expand(-1, 3, -1, -1).contiguous(), torch.tensor(digits.target)


def load_digits_bundle(image_size: int = 32, augment: bool = False) -> DataBundle:
    from sklearn.model_selection import train_test_split

    images, labels = digits_images(image_size)
    train_idx, test_idx = train_test_split(torch.arange(len(labels)).numpy(), test_size=TEST_FRACTION,
                                           random_state=0, stratify=labels.numpy())
    train_images = images[train_idx]
    mean = tuple(train_images.mean(dim=(0, 2, 3)).tolist())
    std = tuple(train_images.std(dim=(0, 2, 3)).tolist())
    # digits are not mirror-symmetric: shift augmentation only
    train = TensorImageDataset(train_images, labels[train_idx], mean, std, augment, flip=False, crop_padding=2)
    test = TensorImageDataset(images[test_idx], labels[test_idx], mean, std)
    return DataBundle("digits", train, test, 10, 3, image_size, mean, std)
