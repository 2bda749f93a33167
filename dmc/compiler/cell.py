"""A derived cell: each node sums its chosen (op, input) edges; no supernet code involved."""

from __future__ import annotations

import torch
from torch import nn

from dmc.genotype import CellGenotype
from dmc.ops import OPS
from dmc.ops.basic import FactorizedReduce, Identity
from dmc.ops.conv import ReLUConvBN


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zeroes whole samples with probability ``drop_prob`` and rescales the rest (DARTS's drop-path)."""
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x / keep * mask


class DerivedCell(nn.Module):
    """A cell of a compiled network.

    ``inputs`` is 2 (DARTS family: the two previous cells, each mapped to ``channels`` first) or 1
    (NAS-Bench-201: the previous cell). Drop-path applies, in training only, to every op that is not
    an identity, as in DARTS.
    """

    def __init__(self, genotype: CellGenotype, inputs: int, channels: int, in_channels: tuple[int, ...],
                 reduction: bool = False, reduction_prev: bool = False):
        super().__init__()
        self.reduction = reduction
        self.inputs = inputs
        if inputs == 2:
            c_pp, c_p = in_channels
            self.preprocess = nn.ModuleList([
                FactorizedReduce(c_pp, channels) if reduction_prev else ReLUConvBN(c_pp, channels, 1, 1, 0),
                ReLUConvBN(c_p, channels, 1, 1, 0),
            ])
        else:
            self.preprocess = nn.ModuleList([nn.Identity()])
            channels_in = in_channels[0]
            if channels_in != channels:
                raise ValueError(f"one-input cells keep their width: got {channels_in} -> {channels}")
        self.node_edges = [[j for _, j in node] for node in genotype.nodes]
        self.ops = nn.ModuleList(
            nn.ModuleList(OPS[op].build(channels, channels, 2 if reduction and j < inputs else 1, affine=True)
                          for op, j in node)
            for node in genotype.nodes
        )
        self.droppable = [[not isinstance(op, Identity) for op in node] for node in self.ops]
        self.concat = list(genotype.concat)
        self.out_channels = channels * len(self.concat)

    def forward(self, inputs: list[torch.Tensor], drop_prob: float = 0.0) -> torch.Tensor:
        states = [pre(x) for pre, x in zip(self.preprocess, inputs)]
        for node_ops, node_inputs, droppable in zip(self.ops, self.node_edges, self.droppable):
            total = None
            for op, j, can_drop in zip(node_ops, node_inputs, droppable):
                h = op(states[j])
                if self.training and drop_prob > 0 and can_drop:
                    h = drop_path(h, drop_prob)
                total = h if total is None else total + h
            states.append(total)
        if len(self.concat) == 1:
            return states[self.concat[0]]
        return torch.cat([states[i] for i in self.concat], dim=1)  # (B, len(concat) * C, H, W)
