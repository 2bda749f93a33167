"""A cell, searched or derived: inputs mapped to one width, nodes that sum their edges, a concat of nodes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from dmc.ops.basic import FactorizedReduce
from dmc.ops.conv import ReLUConvBN

EdgeFactory = Callable[[int, int], nn.Module]
"""``make_edge(e, stride)``: the module of the cell's e-th edge (edges numbered node by node)."""
EdgeRunner = Callable[[int, nn.Module, torch.Tensor], torch.Tensor]
"""``run_edge(e, module, x)``: the e-th edge's output for its input state ``x``."""


class Cell(nn.Module):
    """One cell of the DARTS family (two inputs: the previous two cells) or NAS-Bench-201 (one input).

    Two-input cells first map both inputs to ``channels`` (a factorized reduce for an input from before a
    reduction). ``node_inputs[n]`` lists the states node n sums an edge from (0..inputs-1 are the cell
    inputs, then the nodes); edges from the cell inputs of a reduction cell have stride 2. The output
    concatenates the states in ``concat``. Search and deploy differ only in the edge modules
    (``make_edge``) and how an edge runs: each kind of cell is a subclass whose ``forward`` runs the cell on its
    own, ``cell(s0, s1)`` (``cell(s)`` for one-input cells), through :meth:`run`
    (:class:`dmc.compiler.cell.DerivedCell`, :class:`dmc.supernet.search_cell.SearchCell`).
    """

    def __init__(self, node_inputs: Sequence[Sequence[int]], concat: Sequence[int], inputs: int, channels: int,
                 in_channels: tuple[int, ...], make_edge: EdgeFactory, reduction: bool = False,
                 reduction_prev: bool = False, affine: bool = True):
        super().__init__()
        self.reduction = reduction
        self.inputs = inputs
        self.node_inputs = tuple(tuple(node) for node in node_inputs)
        self.concat = tuple(concat)
        self.out_channels = channels * len(self.concat)
        if inputs == 2:
            c_pp, c_p = in_channels
            self.preprocess = nn.ModuleList([
                FactorizedReduce(c_pp, channels, affine=affine) if reduction_prev
                else ReLUConvBN(c_pp, channels, 1, 1, 0, affine=affine),
                ReLUConvBN(c_p, channels, 1, 1, 0, affine=affine),
            ])
        else:
            if in_channels[0] != channels:
                raise ValueError(f"one-input cells keep their width: got {in_channels[0]} -> {channels}")
            self.preprocess = nn.ModuleList([nn.Identity()])
        inputs_of_edges = [j for node in self.node_inputs for j in node]
        self.edges = nn.ModuleList(make_edge(e, 2 if reduction and j < inputs else 1)
                                   for e, j in enumerate(inputs_of_edges))

    def run(self, inputs: Sequence[torch.Tensor], run_edge: EdgeRunner) -> torch.Tensor:
        """The cell's output for its input states, each edge run by ``run_edge``."""
        states = [pre(x) for pre, x in zip(self.preprocess, inputs)]
        e = 0
        for node in self.node_inputs:
            total = None
            for j in node:
                out = run_edge(e, self.edges[e], states[j])
                total = out if total is None else total + out
                e += 1
            states.append(total)
        if len(self.concat) == 1:
            return states[self.concat[0]]
        return torch.cat([states[i] for i in self.concat], dim=1)  # (B, len(concat) * C, H, W)
