"""The supernet: a macro network of search cells or mixed chain layers, architecture logits ``alpha`` and the
DARTS- ``beta``."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from dmc.derive import derive
from dmc.families import AnyGenotype, AnySpace, SearchBlockOptions, family_of
from dmc.families.alpha_weights import edge_weights
from dmc.families.cell.derive import node_edge_weights
from dmc.families.cell.space import CellSpace
from dmc.kernels import Kernels
from dmc.kernels.select import REFERENCE
from dmc.network.body import MacroNetwork
from dmc.network.cell import Cell
from dmc.supernet.mixed_edge import MixedEdge

RECOMPUTE_MIN_SHARE = 0.5
"""Default of :meth:`Supernet.set_recompute_edges`: edges whose output is at least half the largest edge output's are
recomputed; the smaller ones (S0's last stage, a quarter of the first stage's size) keep their activations."""


class Supernet(MacroNetwork):
    """A weight-sharing network over every architecture of ``space``, laid out by the space's macro exactly
    as a compiled network of the same macro (:class:`dmc.network.MacroNetwork`).

    ``alpha_<group>`` are the architecture logits (``alpha_normal``/``alpha_reduce``: one row per cell edge;
    ``alpha_layers``: one row per chain layer), padded to the longest candidate list (padding is masked out
    of the softmax). ``beta`` scales the auxiliary skip on every mixed edge;
    :meth:`set_beta` sets it once per epoch, and beta = 0 skips the auxiliary edges (plain DARTS).
    PC-DARTS (cell spaces): ``partial_channels`` K > 1 sends 1/K of each edge's channels through its candidates
    (:class:`MixedEdge`), and ``edge_normalization`` adds ``edge_norm_<group>`` logits, one per edge, whose softmax
    over each node's incoming edges scales the edges.

    Execution settings, none of which changes the result beyond float rounding: ``kernels`` (fused or reference
    kernels, :func:`dmc.kernels.select_kernels`), which every mixed edge and its candidates are built with and keep
    (:meth:`set_kernels` switches them), :meth:`set_recompute_edges` (activation memory for compute),
    ``channels_last`` (memory format of the activations), :func:`dmc.supernet.compile_edges`.
    """

    beta: torch.Tensor

    def __init__(self, space: AnySpace, num_classes: int, in_channels: int = 3,
                 alpha_init_std: float = 1e-3, partial_channels: int = 1, channel_shuffle: bool = False,
                 edge_normalization: bool = False, kernels: Kernels = REFERENCE):
        super().__init__()
        family = family_of(space)
        options = SearchBlockOptions(partial_channels, channel_shuffle, kernels)
        family.check_search(space, "pc-darts" if partial_channels > 1 or edge_normalization else "darts", options)
        self.space = space
        self.num_classes = num_classes
        self.partial_channels, self.channel_shuffle = partial_channels, channel_shuffle
        self.build_body(space.macro, in_channels, num_classes, family.search_block(space, options))

        for group in space.alpha_groups:
            ops = space.candidates(group)
            width = max(map(len, ops))
            mask = torch.tensor([[k < len(o) for k in range(width)] for o in ops])
            self.register_parameter(f"alpha_{group}", nn.Parameter(alpha_init_std * torch.randn(len(ops), width)))
            self.register_buffer(f"mask_{group}", mask, persistent=False)
        self.edge_normalization = edge_normalization
        if edge_normalization:  # PC-DARTS's edge weights, named apart from DARTS-'s beta
            for group in space.alpha_groups:
                self.register_parameter(f"edge_norm_{group}",
                                        nn.Parameter(alpha_init_std * torch.randn(len(space.candidates(group)))))
        self.register_buffer("beta", torch.tensor(1.0), persistent=False)
        self._beta_value = 1.0
        self.channels_last = False
        self.recompute_edges = False
        self.recompute_min_share = RECOMPUTE_MIN_SHARE
        self.kernels = kernels

    # --------------------------------------------------------------------------------- architecture
    def arch_parameter_names(self) -> list[str]:
        """The alphas (and PC-DARTS's edge-normalisation logits): what the architecture step trains."""
        names = [f"alpha_{g}" for g in self.space.alpha_groups]
        return names + ([f"edge_norm_{g}" for g in self.space.alpha_groups] if self.edge_normalization else [])

    def arch_parameters(self) -> list[nn.Parameter]:
        return [getattr(self, name) for name in self.arch_parameter_names()]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def alphas(self) -> dict[str, torch.Tensor]:
        return {g: getattr(self, f"alpha_{g}") for g in self.space.alpha_groups}

    def edge_norms(self) -> dict[str, torch.Tensor] | None:
        """PC-DARTS's edge-normalisation logits per cell type, (E,) each; None without edge normalisation."""
        if not self.edge_normalization:
            return None
        return {g: getattr(self, f"edge_norm_{g}") for g in self.space.alpha_groups}

    def edge_weights(self) -> dict[str, list[torch.Tensor]]:
        """Softmax weights per edge (or chain layer) over its own candidates, detached (for logging)."""
        return {g: edge_weights(a.detach(), self.space, g) for g, a in self.alphas().items()}

    def genotype(self) -> AnyGenotype:
        return derive(self.alphas(), self.space, self.edge_norms())

    def set_beta(self, beta: float) -> None:
        self._beta_value = float(beta)
        self.beta.fill_(self._beta_value)

    # --------------------------------------------------------------------------------- execution
    def mixed_edges(self) -> list[MixedEdge]:
        return [m for m in self.modules() if isinstance(m, MixedEdge)]

    def row_edges(self) -> dict[str, list[list[MixedEdge]]]:
        """The mixed edges that each row of ``alpha_<group>`` weighs (a cell type's row e: edge e of every cell of
        that type; a chain layer's: its one edge), as :meth:`forward` hands the rows out."""
        rows: dict[str, list[list[MixedEdge]]] = {g: [[] for _ in self.space.candidates(g)]
                                                 for g in self.space.alpha_groups}
        for block in self.blocks:
            if isinstance(block, MixedEdge):  # a chain layer
                assert block.row is not None, "a chain layer knows its row"
                rows["layers"][block.row].append(block)
            elif isinstance(block, Cell):
                group = "reduce" if block.reduction else "normal"
                for e, edge in enumerate(block.edges):
                    rows[group][e].append(cast(MixedEdge, edge))
        return rows

    def set_kernels(self, kernels: Kernels) -> None:
        """Switches every mixed edge to ``kernels`` (:meth:`MixedEdge.set_kernels`): its weighted sum (with the
        candidates' final batch norms folded in where the kernels have a ``batchnorm_mixed_sum``), the
        ``ReLU -> depthwise conv -> pointwise conv`` of every separable and dilated conv and the ``BN -> ReLU``
        between a separable conv's halves, the depthwise conv of every inverted residual with a 5x5 or 7x7 kernel and
        its ``BN -> ReLU6`` layers, and every max-pool candidate (:mod:`dmc.ops.fused`). The Hessian tracker runs the
        reference kernels for a while (:func:`dmc.search.hessian.hessian_eigenvalue`)."""
        self.kernels = kernels
        for edge in self.mixed_edges():
            edge.set_kernels(kernels)

    def set_skip_dropout(self, rate: float) -> None:
        """P-DARTS's dropout on the identity skip candidates of every mixed edge (0: none)."""
        for edge in self.mixed_edges():
            edge.skip_dropout = rate

    def set_recompute_edges(self, enabled: bool, min_share: float | None = None) -> None:
        """Trades compute for activation memory: the mixed edges that hold the most memory keep only their input
        and recompute their candidates in backward (:func:`dmc.supernet.recompute.recomputed`). Those are the edges
        whose output (channels x pixels) is at least ``min_share`` of the largest edge output's (default
        :data:`RECOMPUTE_MIN_SHARE`, kept across calls; 0 recomputes every edge). The edges of the last,
        lowest-resolution stages hold little memory for the time their recomputation costs
        (``benchmarks/RESULTS.md``)."""
        self.recompute_edges = enabled
        if min_share is not None:
            self.recompute_min_share = min_share
        sizes = self._edge_output_sizes()
        largest = max(sizes.values())
        for edge, size in sizes.items():
            edge.set_recompute(enabled and size >= self.recompute_min_share * largest)

    def _edge_output_sizes(self) -> dict[MixedEdge, float]:
        """Each mixed edge's output size per input pixel: its channels over its stage's stride squared."""
        sizes = {}
        for i, block in enumerate(self.blocks):
            stride = next(stage["reduction"] for stage in self.feature_info if stage["block"] >= i)
            for edge in block.modules():
                if isinstance(edge, MixedEdge):
                    sizes[edge] = edge.out_channels / stride ** 2
        return sizes

    def set_channels_last(self, enabled: bool) -> None:
        self.channels_last = enabled
        self.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)

    # --------------------------------------------------------------------------------- forward
    def mixing_weights(self, group: str) -> torch.Tensor:
        """The softmax of ``alpha_<group>`` over each row's candidates (padding masked out), (E, K): what the group's
        cells (:class:`dmc.supernet.search_cell.SearchCell`) or chain layers run with."""
        alpha = getattr(self, f"alpha_{group}")
        return alpha.masked_fill(~getattr(self, f"mask_{group}"), float("-inf")).softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        weights = {g: self.mixing_weights(g) for g in self.space.alpha_groups}
        edge_norms = self.edge_norms()
        scales = None
        if edge_norms is not None:
            assert isinstance(self.space, CellSpace), "__init__ refuses edge normalisation on chain spaces"
            scales = {g: node_edge_weights(v, self.space) for g, v in edge_norms.items()}
        beta = self.beta if self._beta_value != 0 else None

        def run_cell(block: nn.Module, inputs: list[torch.Tensor]) -> torch.Tensor:
            if isinstance(block, MixedEdge):  # a chain layer
                return block.run(inputs[0], weights["layers"][block.row], beta)
            group = "reduce" if block.reduction else "normal"
            return block(*inputs, weights=weights[group], beta=beta,
                         edge_scales=None if scales is None else scales[group])

        states = self.stem_states(x)
        for i in range(len(self.blocks)):
            states = self.run_block(i, states, run_cell)
        return self.logits(states[-1])


def build_supernet(space: AnySpace, num_classes: int, in_channels: int = 3,
                   partial_channels: int = 1, channel_shuffle: bool = False,
                   edge_normalization: bool = False, kernels: Kernels = REFERENCE) -> Supernet:
    """The supernet of ``space`` for ``num_classes`` classes (see :class:`Supernet`); ``partial_channels``,
    ``channel_shuffle`` and ``edge_normalization`` are PC-DARTS's (cell spaces only); ``kernels`` are the
    implementations it runs (:func:`dmc.kernels.select_kernels`)."""
    return Supernet(space, num_classes, in_channels, partial_channels=partial_channels,
                    channel_shuffle=channel_shuffle, edge_normalization=edge_normalization, kernels=kernels)
