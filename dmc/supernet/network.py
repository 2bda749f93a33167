"""The supernet: a macro network of search cells, architecture logits ``alpha`` and the DARTS- ``beta``."""

from __future__ import annotations

import torch
from torch import nn

from dmc.derive import derive, edge_weights
from dmc.genotype import Genotype
from dmc.kernels import MixedSum
from dmc.network import Cell, CellNetwork, CellSlot
from dmc.space import SearchSpace
from dmc.supernet.mixed_edge import MixedEdge
from dmc.supernet.recompute import recomputed


class Supernet(CellNetwork):
    """A weight-sharing network over every architecture of ``space``, laid out by the space's macro exactly
    as a compiled network of the same macro (:class:`dmc.network.CellNetwork`).

    ``alpha_<cell>`` are the architecture logits, one row per edge, padded to the longest candidate
    list (padding is masked out of the softmax). ``beta`` scales the auxiliary skip on every mixed edge;
    :meth:`set_beta` sets it once per epoch, and beta = 0 skips the auxiliary edges (plain DARTS).

    Execution settings, none of which changes the result beyond float rounding: :meth:`set_kernels`
    (the mixed sum's implementation), :meth:`set_recompute_edges` (activation memory for compute),
    ``channels_last`` (memory format of the activations), :func:`dmc.supernet.compile_edges`.
    """

    def __init__(self, space: SearchSpace, num_classes: int, in_channels: int = 3, alpha_init_std: float = 1e-3):
        super().__init__()
        self.space = space
        self.num_classes = num_classes
        self.build_body(space.macro, in_channels, num_classes, self._search_cell)

        for cell_type in space.cell_types:
            ops = space.cell(cell_type).edges
            width = max(map(len, ops))
            mask = torch.tensor([[k < len(o) for k in range(width)] for o in ops])
            self.register_parameter(f"alpha_{cell_type}", nn.Parameter(alpha_init_std * torch.randn(len(ops), width)))
            self.register_buffer(f"mask_{cell_type}", mask, persistent=False)
        self.register_buffer("beta", torch.tensor(1.0), persistent=False)
        self._beta_value = 1.0
        self.channels_last = False
        self.recompute_edges = False

    def _search_cell(self, slot: CellSlot) -> Cell:
        space = self.space
        candidates = space.cell(slot.cell_type).edges
        return Cell(space.node_inputs, space.concat, space.inputs, slot.channels, slot.in_channels,
                    lambda e, stride: MixedEdge(candidates[e], slot.channels, stride, space.pool_batchnorm,
                                                space.aux_conv1x1),
                    slot.reduction, slot.reduction_prev, affine=False)

    # --------------------------------------------------------------------------------- architecture
    def arch_parameters(self) -> list[nn.Parameter]:
        return [getattr(self, f"alpha_{c}") for c in self.space.cell_types]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def alphas(self) -> dict[str, torch.Tensor]:
        return {c: getattr(self, f"alpha_{c}") for c in self.space.cell_types}

    def edge_weights(self) -> dict[str, list[torch.Tensor]]:
        """Softmax weights per edge over its own candidates, detached (for logging)."""
        return {c: edge_weights(a.detach(), self.space, c) for c, a in self.alphas().items()}

    def genotype(self) -> Genotype:
        return derive(self.alphas(), self.space)

    def set_beta(self, beta: float) -> None:
        self._beta_value = float(beta)
        self.beta.fill_(self._beta_value)

    # --------------------------------------------------------------------------------- execution
    def mixed_edges(self) -> list[MixedEdge]:
        return [m for m in self.modules() if isinstance(m, MixedEdge)]

    def set_kernels(self, mixed_sum: MixedSum) -> None:
        for edge in self.mixed_edges():
            edge.mixed_sum = mixed_sum

    def set_recompute_edges(self, enabled: bool) -> None:
        self.recompute_edges = enabled

    def set_channels_last(self, enabled: bool) -> None:
        self.channels_last = enabled
        self.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)

    # --------------------------------------------------------------------------------- forward
    def _weights(self, cell_type: str) -> torch.Tensor:
        alpha = getattr(self, f"alpha_{cell_type}")
        return alpha.masked_fill(~getattr(self, f"mask_{cell_type}"), float("-inf")).softmax(dim=-1)  # (E, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        weights = {c: self._weights(c) for c in self.space.cell_types}
        beta = self.beta if self._beta_value != 0 else None
        recompute = self.recompute_edges and torch.is_grad_enabled()

        def run_cell(cell: Cell, inputs: list[torch.Tensor]) -> torch.Tensor:
            w = weights["reduce" if cell.reduction else "normal"]  # (E, K)
            if recompute:
                return cell(inputs, lambda e, edge, h: recomputed(edge, h, w[e], beta))
            return cell(inputs, lambda e, edge, h: edge(h, w[e], beta))

        states = self.stem_states(x)
        for i in range(len(self.blocks)):
            states = self.run_block(i, states, run_cell)
        return self.logits(states[-1])


def build_supernet(space: SearchSpace, num_classes: int, in_channels: int = 3) -> Supernet:
    """The supernet of ``space`` for ``num_classes`` classes (see :class:`Supernet`)."""
    return Supernet(space, num_classes, in_channels)
