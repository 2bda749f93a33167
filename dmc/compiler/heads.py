"""DARTS's auxiliary classifier heads (attached after the 2L/3 cell, used in training only)."""

from __future__ import annotations

from torch import nn


class AuxiliaryHeadCIFAR(nn.Sequential):
    """For 8x8 feature maps (CIFAR input 32): pool 5/3 -> 1x1 conv 128 -> 2x2 conv 768 -> linear.

    (The adaptive pooling is a no-op at 8x8; it lets other input sizes through.)
    """

    def __init__(self, channels: int, num_classes: int):
        super().__init__(
            nn.ReLU(inplace=True),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(channels, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(768, num_classes),
        )


class AuxiliaryHeadImageNet(nn.Sequential):
    """For 7x7 feature maps (ImageNet input 224): pool 5/2 -> 1x1 conv 128 -> 2x2 conv 768 -> linear.

    Without BatchNorm after the 768-channel conv, as in the DARTS paper's experiments (its code notes the
    omission); adaptive pooling before the linear layer lets other input sizes through.
    """

    def __init__(self, channels: int, num_classes: int):
        super().__init__(
            nn.ReLU(inplace=True),
            nn.AvgPool2d(5, stride=2, padding=0, count_include_pad=False),
            nn.Conv2d(channels, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(768, num_classes),
        )
