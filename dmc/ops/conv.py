"""Convolutional building blocks with the layer order of the DARTS and NAS-Bench-201 reference code.

Blocks that end with a batch norm expose it as ``norm`` and everything before it as ``pre_norm(x)``
(``block(x) == block.norm(block.pre_norm(x))``): the supernet folds those batch norms into its fused weighted sum
(:mod:`dmc.kernels.batchnorm_sum`).
"""

from __future__ import annotations

from typing import cast

from torch import nn

from dmc.kernels.batchnorm_act import BatchNormAct, foldable
from dmc.kernels.depthwise import DepthwiseConv
from dmc.kernels.select import REFERENCE, Kernels
from dmc.kernels.separable import SeparableConv
from dmc.ops.fused import UsesKernels


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv -> BN. ``bias`` is on for NAS-Bench-201's convs without affine BN (its reference code)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True,
                 dilation: int = 1, bias: bool = False):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation, bias=bias),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    @property
    def norm(self) -> nn.Module:
        return self[2]

    def pre_norm(self, x):
        return self[1](self[0](x))


class DilConv(UsesKernels, nn.Sequential):
    """ReLU -> dilated depthwise conv -> pointwise conv -> BN.

    ``depthwise`` (from ``kernels``): None runs the layers as they are; else a fused ``ReLU -> depthwise conv``
    (:data:`dmc.kernels.DepthwiseConv`) with the same math and the same parameters, so what was searched is still
    what is deployed. With it set, ``forward``/``pre_norm`` take ``activated``: ``relu(x)`` computed once by a mixed
    edge for all its candidates that start with this ReLU (:attr:`shares_input_relu`). ``separable``, set with it,
    runs the depthwise and the pointwise conv as one op (:data:`dmc.kernels.SeparableConv`) that stores no
    depthwise output for the backward.
    """

    depthwise: DepthwiseConv | None
    separable: SeparableConv | None

    @property
    def shares_input_relu(self) -> bool:
        """Whether ``activated=relu(x)`` saves this op a ReLU of its input."""
        return self.depthwise is not None

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int,
                 affine: bool = True, kernels: Kernels = REFERENCE):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=padding, dilation=dilation, groups=c_in,
                      bias=False),
            nn.Conv2d(c_in, c_out, 1, padding=0, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )
        self.set_kernels(kernels)

    def set_kernels(self, kernels: Kernels) -> None:
        self.depthwise, self.separable = kernels.depthwise, kernels.separable

    @property
    def norm(self) -> nn.Module:
        return self[3]

    def pre_norm(self, x, activated=None):
        relu, conv, pointwise, _ = self
        if self.depthwise is None:
            return pointwise(conv(relu(x)))
        return self._fused(self.depthwise, x, True, activated)

    def _fused(self, depthwise: DepthwiseConv, x, relu: bool, activated=None):
        _, conv, pointwise, _ = self
        conv, pointwise = cast(nn.Conv2d, conv), cast(nn.Conv2d, pointwise)
        args = conv.stride[0], cast(int, conv.padding[0]), conv.dilation[0], relu, activated
        if self.separable is not None:
            return self.separable(x, conv.weight, pointwise.weight, *args)
        return pointwise(depthwise(x, conv.weight, *args))

    def forward(self, x, activated=None):
        return self.norm(self.pre_norm(x, activated))

    def pre_norm_of_activated(self, activated):
        """``pre_norm(x)`` from ``activated = relu(x)`` alone: the depthwise conv reads it as it is."""
        _, conv, pointwise, _ = self
        if self.depthwise is None:
            return pointwise(conv(activated))
        return self._fused(self.depthwise, activated, False)


class SepConv(UsesKernels, nn.Sequential):
    """Two stacked (ReLU -> depthwise conv -> pointwise conv -> BN); only the first is strided.

    ``batchnorm_act`` (from ``kernels``, as the halves' own): None runs the halves as they are; else a fused
    training-mode ``BN -> ReLU`` (:data:`dmc.kernels.BatchNormAct`) for the first half's batch norm and the second
    half's ReLU, where the batch norm can be folded (:func:`dmc.kernels.batchnorm_act.foldable`): same math, one
    pass fewer each way.
    """

    batchnorm_act: BatchNormAct | None

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True,
                 kernels: Kernels = REFERENCE):
        super().__init__(
            DilConv(c_in, c_in, kernel, stride, padding, 1, affine, kernels),
            DilConv(c_in, c_out, kernel, 1, padding, 1, affine, kernels),
        )
        self.set_kernels(kernels)

    def set_kernels(self, kernels: Kernels) -> None:
        self.batchnorm_act = kernels.batchnorm_act

    @property
    def norm(self) -> nn.Module:
        return cast(DilConv, self[1]).norm

    @property
    def shares_input_relu(self) -> bool:
        """Whether ``activated=relu(x)`` saves the first half a ReLU of its input (:class:`DilConv`)."""
        return cast(DilConv, self[0]).shares_input_relu

    def pre_norm(self, x, activated=None):
        first, second = self
        if self.batchnorm_act is None or not foldable(first.norm):
            return second.pre_norm(first(x, activated))
        return second.pre_norm_of_activated(self.batchnorm_act(first.pre_norm(x, activated), first.norm, "relu"))

    def forward(self, x, activated=None):
        return self.norm(self.pre_norm(x, activated))


class Conv7x1_1x7(nn.Sequential):
    """ReLU -> 1x7 conv -> 7x1 conv -> BN (DARTS's 'conv_7x1_1x7')."""

    def __init__(self, c_in: int, c_out: int, stride: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
            nn.Conv2d(c_out, c_out, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    @property
    def norm(self) -> nn.Module:
        return self[3]

    def pre_norm(self, x):
        return self[2](self[1](self[0](x)))


class ResNetBasicBlock(nn.Module):
    """NAS-Bench-201's residual block between stages: two ReLUConvBN, avg-pool + 1x1 conv shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int, affine: bool = True):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride, 1, affine)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1, affine)
        self.downsample: nn.Module | None
        if stride == 2:
            self.downsample = nn.Sequential(nn.AvgPool2d(2, stride=2, padding=0),
                                            nn.Conv2d(c_in, c_out, 1, bias=False))
        elif c_in != c_out:
            self.downsample = ReLUConvBN(c_in, c_out, 1, 1, 0, affine)
        else:
            self.downsample = None

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        return residual + self.conv_b(self.conv_a(x))
