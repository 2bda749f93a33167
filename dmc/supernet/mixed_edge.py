"""A DARTS- mixed edge: ``beta * aux(x) + sum_k softmax(alpha)_k * op_k(x)``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dmc.kernels import MixedSum, mixed_sum
from dmc.ops import OPS
from dmc.ops.basic import FactorizedReduce, Identity, Zero


def auxiliary_edge(channels: int, stride: int, conv1x1: bool) -> nn.Module:
    """DARTS-'s auxiliary skip: identity (or an identity-initialised 1x1 conv) at stride 1,
    a factorized reduce at stride 2."""
    if stride == 2:
        return FactorizedReduce(channels, channels, affine=False)
    if not conv1x1:
        return Identity()
    conv = nn.Conv2d(channels, channels, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(channels).view(channels, channels, 1, 1))
    return conv


class MixedEdge(nn.Module):
    """All candidate ops of one edge plus the auxiliary edge; weights and beta come from the supernet.

    'none' candidates are not computed: their output is zero, so they only take part through the
    softmax that normalises the other weights. ``mixed_sum`` is the weighted sum's implementation
    (:func:`dmc.kernels.select_mixed_sum`); the supernet sets it on every edge.
    """

    def __init__(self, op_names: Sequence[str], channels: int, stride: int, pool_batchnorm: bool = True,
                 aux_conv1x1: bool = False):
        super().__init__()
        self.op_names = tuple(op_names)
        self.computed = [k for k, name in enumerate(self.op_names) if not OPS[name].zero]
        ops = []
        for k in self.computed:
            spec = OPS[self.op_names[k]]
            op = spec.build(channels, channels, stride, affine=False)
            if spec.pool and pool_batchnorm:
                op = nn.Sequential(op, nn.BatchNorm2d(channels, affine=False))
            ops.append(op)
        self.ops = nn.ModuleList(ops)
        self.zero = Zero(channels, stride) if not ops else None  # an edge whose only candidate is 'none'
        self.aux = auxiliary_edge(channels, stride, aux_conv1x1)
        self.register_buffer("computed_index", torch.tensor(self.computed, dtype=torch.long), persistent=False)
        self.mixed_sum: MixedSum = mixed_sum

    def forward(self, x: torch.Tensor, weights: torch.Tensor, beta: torch.Tensor | None) -> torch.Tensor:
        """x: (B, C, H, W); weights: (K,) over all candidates; beta: scalar tensor, or None to skip aux."""
        if self.zero is not None:
            out = self.zero(x)
            return out if beta is None else out + beta * self.aux(x)
        outputs = [op(x) for op in self.ops]
        w = weights.index_select(0, self.computed_index)
        return self.mixed_sum(outputs, w, None if beta is None else self.aux(x), beta)
