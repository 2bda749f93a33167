"""Chain-space candidates: inverted-residual blocks (MobileNetV2 / FBNet / ProxylessNAS) and the chain skip.

Layer order follows the reference builders: torchvision's ``mobilenet_v2`` and ProxylessNAS/FairNAS
(1x1 expansion, BN, act, depthwise kxk, BN, act, [squeeze-excitation], 1x1 projection, BN; residual add
when the stride is 1 and the width is kept) and FBNet's builder (group 1x1 convs with a channel shuffle
after the expansion; expansion 1 keeps its 1x1 conv; a shape-changing skip is a 1x1 conv, BN, act).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from dmc.errors import InvalidInputError
from dmc.kernels.batchnorm_act import BatchNormAct, activation_name, foldable
from dmc.kernels.depthwise import DepthwiseConv
from dmc.kernels.select import REFERENCE, Kernels
from dmc.ops.fused import UsesKernels

ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "swish": nn.SiLU, "hardswish": nn.Hardswish}
SE_RATIO = 0.25


def activation(name: str) -> nn.Module:
    """A fresh activation module by name (relu, relu6, swish, hardswish)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise InvalidInputError(f"activation {name!r} is unknown (allowed: {', '.join(ACTIVATIONS)})") from None


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, affine: bool = True,
            act: str | None = None) -> nn.Sequential:
    """Conv (no bias, 'same' padding) -> BN -> optional activation."""
    layers = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
              nn.BatchNorm2d(c_out, affine=affine)]
    if act is not None:
        layers.append(activation(act))
    return nn.Sequential(*layers)


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: interleaves the channels of ``groups`` groups."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        return x.view(b, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class SqueezeExcite(nn.Module):
    """Squeeze-excitation on the expanded features: global pool, 1x1 reduce (``ratio`` of the block's input
    width), activation, 1x1 expand, sigmoid gate (MnasNet / EfficientNet)."""

    def __init__(self, channels: int, reduced: int, act: str):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.act = activation(act)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)  # (B, C, 1, 1)
        return x * self.expand(self.act(self.reduce(scale))).sigmoid()


class MBConv(UsesKernels, nn.Module):
    """Inverted residual: 1x1 expansion to ``round(c_in * expansion)`` channels, depthwise kxk (strided),
    optional squeeze-excitation, linear 1x1 projection; residual add when stride 1 and ``c_in == c_out``.

    ``groups=2`` makes both 1x1 convs group convs with a channel shuffle after the expansion (FBNet).
    ``depthwise`` (from ``kernels``, for 5x5 and 7x7 kernels): None runs the layers as they are; else a fused
    depthwise conv (:data:`dmc.kernels.DepthwiseConv`, without its ReLU) with the same math and the same parameters.
    ``batchnorm_act``: likewise, a fused training-mode ``BN -> ReLU/ReLU6`` (:data:`dmc.kernels.BatchNormAct`) for
    the expansion's and the depthwise conv's batch norms and activations, where they can be folded (a search's
    ``BatchNorm2d(affine=False)`` in training mode, :func:`dmc.kernels.batchnorm_act.foldable`).
    """

    depthwise: DepthwiseConv | None
    batchnorm_act: BatchNormAct | None

    def __init__(self, c_in: int, c_out: int, kernel: int, expansion: int, stride: int, groups: int = 1,
                 se: bool = False, act: str = "relu6", affine: bool = True, kernels: Kernels = REFERENCE):
        super().__init__()
        hidden = int(round(c_in * expansion))
        if groups > 1 and (c_in % groups or hidden % groups or c_out % groups):
            raise InvalidInputError(f"a {groups}-group MBConv needs widths divisible by {groups}, got "
                                    f"{c_in} -> {hidden} -> {c_out}")
        self.residual = stride == 1 and c_in == c_out
        self.kernel_size = kernel
        layers: list[nn.Module] = [conv_bn(c_in, hidden, 1, groups=groups, affine=affine, act=act)]
        if groups > 1:
            layers.append(ChannelShuffle(groups))
        self.depthwise_index = len(layers)
        layers.append(conv_bn(hidden, hidden, kernel, stride, groups=hidden, affine=affine, act=act))
        if se:
            layers.append(SqueezeExcite(hidden, max(1, int(c_in * SE_RATIO)), act))
        layers.append(conv_bn(hidden, c_out, 1, groups=groups, affine=affine))
        self.body = nn.Sequential(*layers)
        self.set_kernels(kernels)

    def set_kernels(self, kernels: Kernels) -> None:
        # 3x3 depthwise convs stay with oneDNN: with no ReLU to fold in, the fused op is slower there
        # (benchmarks/RESULTS.md)
        self.depthwise = kernels.depthwise if self.kernel_size >= 5 else None
        self.batchnorm_act = kernels.batchnorm_act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = self.depthwise is not None or self.batchnorm_act is not None
        out = self._forward_fused(x) if fused else self.body(x)
        return x + out if self.residual else out

    def _forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.body):
            if not isinstance(layer, nn.Sequential):  # the channel shuffle, squeeze-excitation
                x = layer(x)
                continue
            conv, norm, *act = layer
            if i == self.depthwise_index and self.depthwise is not None:
                conv = cast(nn.Conv2d, conv)
                x = self.depthwise(x, conv.weight, conv.stride[0], cast(int, conv.padding[0]), 1, False)
            else:
                x = conv(x)
            name = activation_name(act[0]) if act else None
            if self.batchnorm_act is not None and name is not None and foldable(norm):
                x = self.batchnorm_act(x, norm, name)
            else:
                for module in (norm, *act):
                    x = module(x)
        return x


def chain_skip(c_in: int, c_out: int, stride: int, affine: bool = True, act: str = "relu") -> nn.Module:
    """'skip' of a chain layer: the identity where the shape is kept, else a 1x1 conv (strided), BN, act
    (FBNet's builder; spaces without it offer 'skip' only where shapes match)."""
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return conv_bn(c_in, c_out, 1, stride, affine=affine, act=act)


class SeparableBlock(nn.Module):
    """The fixed first block of MobileNetV2-like networks: depthwise 3x3, BN, act, 1x1 projection, BN, and a
    residual add when the width is kept, as torchvision's expansion-1 block (at full width the published skeletons
    change it, 32 -> 16; narrower ones may not)."""

    def __init__(self, c_in: int, c_out: int, act: str, affine: bool = True):
        super().__init__()
        self.residual = c_in == c_out
        self.body = nn.Sequential(conv_bn(c_in, c_in, 3, groups=c_in, affine=affine, act=act),
                                  conv_bn(c_in, c_out, 1, affine=affine))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out
