"""A search cell: the shared :class:`dmc.network.Cell` with a mixed edge on every edge."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from dmc.network.cell import Cell
from dmc.supernet.mixed_edge import MixedEdge


class SearchCell(Cell):
    """A cell of :class:`MixedEdge` s, run on its own as ``cell(s0, s1, weights=w)`` (``cell(s, weights=w)`` for
    one-input cells), as the supernet runs it.

    ``weights`` (E, K): each edge's row of softmax weights over its candidates (:meth:`Supernet.mixing_weights`
    of the cell's type); ``beta`` scales every edge's auxiliary skip (None skips them: plain DARTS);
    ``edge_scales`` (E,), PC-DARTS's node-normalised edge weights, scale the edges' outputs (None: no scaling).
    Edges run with their own kernels and recomputation (:meth:`MixedEdge.run`).
    """

    def forward(self, *inputs: torch.Tensor, weights: torch.Tensor, beta: torch.Tensor | None = None,
                edge_scales: torch.Tensor | None = None) -> torch.Tensor:
        def run_edge(e: int, edge: nn.Module, x: torch.Tensor) -> torch.Tensor:
            out = cast(MixedEdge, edge).run(x, weights[e], beta)
            return out if edge_scales is None else out * edge_scales[e]

        return self.run(inputs, run_edge)
