"""Search cells: intermediate nodes that sum mixed edges from the cell inputs and earlier nodes."""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from dmc.ops.basic import FactorizedReduce
from dmc.ops.conv import ReLUConvBN
from dmc.space import SearchSpace
from dmc.supernet.mixed_edge import MixedEdge


class SearchCell(nn.Module):
    """One cell of a supernet, normal or reduction, following the space's node wiring.

    DARTS-family cells first map both inputs to ``channels`` (a factorized reduce for an input from
    before a reduction); edges from the cell inputs of a reduction cell have stride 2. With
    ``recompute_edges`` each mixed edge keeps only its input for backward and runs again there.
    """

    def __init__(self, space: SearchSpace, cell_type: str, channels: int, in_channels: tuple[int, ...],
                 reduction_prev: bool = False):
        super().__init__()
        self.reduction = cell_type == "reduce"
        self.node_inputs = space.node_inputs
        self.multiplier = space.multiplier
        if space.inputs == 2:
            c_pp, c_p = in_channels
            self.preprocess = nn.ModuleList([
                FactorizedReduce(c_pp, channels, affine=False) if reduction_prev
                else ReLUConvBN(c_pp, channels, 1, 1, 0, affine=False),
                ReLUConvBN(c_p, channels, 1, 1, 0, affine=False),
            ])
        else:
            if in_channels[0] != channels:
                raise ValueError(f"one-input cells keep their width: got {in_channels[0]} -> {channels}")
            self.preprocess = nn.ModuleList([nn.Identity()])
        self.recompute_edges = False
        self.edges = nn.ModuleList(
            MixedEdge(ops, channels, 2 if self.reduction and j < space.inputs else 1, space.pool_batchnorm,
                      space.aux_conv1x1)
            for ops, (_, j) in zip(space.cell(cell_type).edges, space.edges)
        )

    def forward(self, inputs: list[torch.Tensor], weights: list[torch.Tensor],
                beta: torch.Tensor | None) -> torch.Tensor:
        states = [pre(x) for pre, x in zip(self.preprocess, inputs)]
        e = 0
        for node_inputs in self.node_inputs:
            total = None
            for j in node_inputs:
                out = self._edge(self.edges[e], states[j], weights[e], beta)
                total = out if total is None else total + out
                e += 1
            states.append(total)
        if self.multiplier == 1:
            return states[-1]
        return torch.cat(states[-self.multiplier:], dim=1)  # (B, multiplier * C, H, W)

    def _edge(self, edge: MixedEdge, x: torch.Tensor, weights: torch.Tensor, beta: torch.Tensor | None):
        if not (self.recompute_edges and torch.is_grad_enabled()):
            return edge(x, weights, beta)
        return checkpoint(edge, x, weights, beta, use_reentrant=False,
                          context_fn=lambda: (contextlib.nullcontext(), _buffers_kept(edge)))


@contextlib.contextmanager
def _buffers_kept(module: nn.Module):
    """Runs the recomputation of ``module`` without a trace: batch-norm statistics stay as the first
    forward left them."""
    saved = [b.clone() for b in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            torch._foreach_copy_(list(module.buffers()), saved)
