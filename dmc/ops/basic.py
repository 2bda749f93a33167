"""Parameter-free building blocks: identity, zero, noise, and the factorized reduce."""

from __future__ import annotations

import torch
from torch import nn

from dmc.kernels.layout import layout_of


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


def _pixel_grids(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The even and the odd pixels of ``x`` (rows and columns), as views."""
    return x[:, :, ::2, ::2], x[:, :, 1::2, 1::2]


class _PixelGrids(torch.autograd.Function):
    """:func:`_pixel_grids` with a backward that writes its gradient in ``x``'s memory format."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ctx.shape, ctx.layout = x.shape, layout_of(x)
        return _pixel_grids(x)

    @staticmethod
    def backward(ctx, grad_even: torch.Tensor | None, grad_odd: torch.Tensor | None) -> torch.Tensor | None:
        like = grad_even if grad_even is not None else grad_odd
        if like is None:  # neither output has a gradient
            return None
        grad = torch.empty(ctx.shape, dtype=like.dtype, device=like.device, memory_format=ctx.layout).zero_()
        # one view at a time: under create_graph (a Hessian) each write is recorded, and a view taken before the
        # first write would be a view of a leaf that now requires grad
        for offset, g in ((0, grad_even), (1, grad_odd)):
            if g is not None:
                grad[:, :, offset::2, offset::2] = g
        return grad


class FactorizedReduce(nn.Module):
    """Halves the resolution with two offset stride-2 1x1 convs whose outputs are concatenated (DARTS).

    Needs an even input height and width: the two branches must produce the same size. The stride is
    taken by slicing before the 1x1 convs (same result as strided convs): less work, and it sidesteps
    an inductor CPU miscompile of the strided form's backward at odd batch sizes (torch 2.14). In training the
    slices go through :class:`_PixelGrids`, whose backward writes the gradient in the input's layout: a slice's own
    backward writes a contiguous one, and in a channels-last supernet that costs a transposing copy per slice and
    sends every op after it down PyTorch's slow mixed-layout paths (benchmarks/RESULTS.md).
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
        even, odd = _PixelGrids.apply(x) if self.training and x.requires_grad else _pixel_grids(x)
        return torch.cat([self.conv_1(even), self.conv_2(odd)], dim=1)  # (B, C_out, H/2, W/2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.pre_norm(x))
