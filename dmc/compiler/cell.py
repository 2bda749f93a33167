"""Derived blocks: the shared :class:`dmc.network.Cell` with each edge's chosen op (and DARTS's drop-path), and
a chain network's chosen layer."""

from __future__ import annotations

import torch
from torch import nn

from dmc.families.cell.genotype import CellGenotype
from dmc.families.cell.macro import CellSlot
from dmc.families.chain.genotype import ChainGenotype
from dmc.families.chain.macro import ChainMacro, LayerSlot
from dmc.network.cell import Cell
from dmc.ops import OPS
from dmc.ops.basic import Identity


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zeroes whole samples with probability ``drop_prob`` and rescales the rest (DARTS's drop-path)."""
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x / keep * mask


class DerivedCell(Cell):
    """The cell of a genotype at ``slot``: node n sums its chosen (op, input) edges. ``cell(s0, s1)`` (``cell(s)``
    for one-input cells) runs it; in training mode with ``drop_prob`` > 0, DARTS's drop-path acts on every edge that
    is not an identity (:attr:`dmc.compiler.CompiledNetwork.drop_path_prob` sets it on every cell)."""

    def __init__(self, genotype: CellGenotype, inputs: int, slot: CellSlot):
        ops = [op for op, _ in genotype.edges]
        c = slot.channels
        super().__init__([[j for _, j in node] for node in genotype.nodes], genotype.concat, inputs, c,
                         slot.in_channels, lambda e, stride: OPS[ops[e]].build(c, c, stride, affine=True),
                         slot.reduction, slot.reduction_prev, affine=True)
        self.drop_prob = 0.0

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        drop = self.drop_prob if self.training else 0.0
        if drop <= 0:
            return self.run(inputs, lambda e, op, x: op(x))
        return self.run(inputs, lambda e, op, x: x if isinstance(op, Identity) else drop_path(op(x), drop))


def derived_layer(genotype: ChainGenotype, macro: ChainMacro, slot: LayerSlot) -> nn.Module:
    """The chosen operation of the chain layer at ``slot`` (a 'skip' that keeps the shape is the identity)."""
    return OPS[genotype.layers[slot.index]].build(slot.c_in, slot.c_out, slot.stride, affine=True,
                                                  act=macro.activation)
