"""Pooling candidates (padding 1, so stride 1 keeps the size and stride 2 halves it)."""

from __future__ import annotations

from torch import nn

from dmc.kernels.max_pool import MaxPool as MaxPoolFunction
from dmc.ops.conv import ReLUConvBN


def pool_3x3(kind: str, c_in: int, c_out: int, stride: int, affine: bool) -> nn.Module:
    """3x3 max or average pooling; averages exclude the padding, as in DARTS and NAS-Bench-201.

    A 1x1 ReLUConvBN adapts the channels first when ``c_in != c_out`` (NAS-Bench-201's rule).
    """
    pool = (nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False) if kind == "avg"
            else MaxPool(3, stride=stride, padding=1))
    if c_in == c_out:
        return pool
    return nn.Sequential(ReLUConvBN(c_in, c_out, 1, 1, 0, affine), pool)


class MaxPool(nn.MaxPool2d):
    """``nn.MaxPool2d`` (square, no dilation) whose implementation the supernet can set: ``function`` None runs
    PyTorch's; the supernet sets :func:`dmc.kernels.max_pool.recomputing_max_pool2d`, same math, less memory."""

    function: MaxPoolFunction | None = None

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
