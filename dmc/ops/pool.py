"""Pooling candidates (padding 1, so stride 1 keeps the size and stride 2 halves it)."""

from __future__ import annotations

from torch import nn

from dmc.kernels.max_pool import MaxPoolFunction
from dmc.kernels.select import REFERENCE, Kernels
from dmc.ops.conv import ReLUConvBN
from dmc.ops.fused import UsesKernels


def pool_3x3(kind: str, c_in: int, c_out: int, stride: int, affine: bool, kernels: Kernels = REFERENCE) -> nn.Module:
    """3x3 max or average pooling; averages exclude the padding, as in DARTS and NAS-Bench-201. ``kernels``
    choose the max pooling's implementation (:class:`MaxPool`).

    A 1x1 ReLUConvBN adapts the channels first when ``c_in != c_out`` (NAS-Bench-201's rule).
    """
    pool = (nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False) if kind == "avg"
            else MaxPool(3, stride=stride, padding=1, kernels=kernels))
    if c_in == c_out:
        return pool
    return nn.Sequential(ReLUConvBN(c_in, c_out, 1, 1, 0, affine), pool)


class MaxPool(UsesKernels, nn.MaxPool2d):
    """``nn.MaxPool2d`` (square, no dilation) whose implementation ``kernels`` choose: ``function`` None runs
    PyTorch's; the fused kernels' is :func:`dmc.kernels.max_pool.recomputing_max_pool2d`, same math, less memory."""

    function: MaxPoolFunction | None

    def __init__(self, kernel_size: int, stride: int, padding: int = 0, kernels: Kernels = REFERENCE):
        super().__init__(kernel_size, stride=stride, padding=padding)
        self.set_kernels(kernels)

    def set_kernels(self, kernels: Kernels) -> None:
        self.function = kernels.max_pool

    def forward(self, x):
        if self.function is None:
            return super().forward(x)
        return self.function(x, self.kernel_size, self.stride, self.padding)


class WithBatchNorm(nn.Sequential):
    """``op -> BatchNorm2d``: DARTS's search-time batch norm after a pooling candidate (state-dict keys ``0.*``,
    ``1.*``); ``pre_norm`` and ``norm`` as the conv blocks expose them (:mod:`dmc.ops.conv`)."""

    def __init__(self, op: nn.Module, channels: int, affine: bool = False):
        super().__init__(op, nn.BatchNorm2d(channels, affine=affine))

    @property
    def norm(self) -> nn.Module:
        return self[1]

    def pre_norm(self, x):
        return self[0](x)
