"""Parameter-free building blocks: identity, zero, noise, and the factorized reduce."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """'none': zeros shaped like the (strided) input, with ``C_out`` channels."""

    def __init__(self, c_out: int, stride: int):
        super().__init__()
        self.c_out, self.stride = c_out, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]  # (B, C, H/s, W/s)
        shape = (x.shape[0], self.c_out, x.shape[2], x.shape[3])
        return x.new_zeros(shape) if x.shape[1] != self.c_out else x.mul(0.0)


class Noise(nn.Module):
    """'noise' (R-DARTS S4): standard normal noise shaped like the (strided) input; ignores its values."""

    def __init__(self, c_out: int, stride: int, mean: float = 0.0, std: float = 1.0):
        super().__init__()
        self.c_out, self.stride, self.mean, self.std = c_out, stride, mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        shape = (x.shape[0], self.c_out, x.shape[2], x.shape[3])
        return torch.randn(shape, dtype=x.dtype, device=x.device) * self.std + self.mean


class FactorizedReduce(nn.Module):
    """Halves the resolution with two offset stride-2 1x1 convs whose outputs are concatenated (DARTS).

    Needs an even input height and width: the two branches must produce the same size. The stride is
    taken before the 1x1 convs (same result as strided convs): less work, and it sidesteps an inductor CPU
    miscompile of the strided form's backward at odd batch sizes (torch 2.14). It is taken by 1x1 average pools
    at stride 2, which copy one pixel each (exact), not by slicing: a slice's backward writes its gradient in the
    contiguous layout whatever the input's, and in a channels-last supernet every op on that gradient then takes
    PyTorch's slow mixed-layout path (a DARTS search step was 20% slower for it; benchmarks/RESULTS.md).
    """

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    @property
    def norm(self) -> nn.Module:
        return self.bn

    def pre_norm(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        even = F.avg_pool2d(x, 1, 2)  # x[:, :, ::2, ::2]
        odd = F.avg_pool2d(F.pad(x, (-1, 1, -1, 1)), 1, 2)  # x[:, :, 1::2, 1::2]: drop the first row and column
        return torch.cat([self.conv_1(even), self.conv_2(odd)], dim=1)  # (B, C_out, H/2, W/2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.pre_norm(x))
