"""The supernet: a macro network of search cells, architecture logits ``alpha`` and the DARTS- ``beta``."""

from __future__ import annotations

import torch
from torch import nn

from dmc.derive import derive, edge_weights
from dmc.genotype import Genotype
from dmc.ops.conv import ResNetBasicBlock
from dmc.space import SearchSpace
from dmc.kernels import MixedSum
from dmc.supernet.cell import SearchCell
from dmc.supernet.mixed_edge import MixedEdge


class Supernet(nn.Module):
    """A weight-sharing network over every architecture of ``space``.

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
        macro = space.macro
        if macro.kind == "darts":
            self.stem, self.cells, c_out = _darts_body(space, in_channels)
            self.head_act = nn.Identity()
        else:
            self.stem, self.cells, c_out = _nb201_body(space, in_channels)
            self.head_act = nn.Sequential(nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_out, num_classes)

        for cell_type in space.cell_types:
            ops = space.cell(cell_type).edges
            width = max(map(len, ops))
            mask = torch.tensor([[k < len(o) for k in range(width)] for o in ops])
            self.register_parameter(f"alpha_{cell_type}", nn.Parameter(alpha_init_std * torch.randn(len(ops), width)))
            self.register_buffer(f"mask_{cell_type}", mask, persistent=False)
        self.register_buffer("beta", torch.tensor(1.0), persistent=False)
        self._beta_value = 1.0
        self.channels_last = False

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
        for cell in self.cells:
            if isinstance(cell, SearchCell):
                cell.recompute_edges = enabled

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
        if self.space.macro.kind == "darts":
            s0 = s1 = self.stem(x)
            for cell in self.cells:
                s0, s1 = s1, cell([s0, s1], weights["reduce" if cell.reduction else "normal"], beta)
            out = s1
        else:
            out = self.stem(x)
            for cell in self.cells:
                out = cell([out], weights["normal"], beta) if isinstance(cell, SearchCell) else cell(out)
        out = self.pool(self.head_act(out)).flatten(1)  # (B, C)
        return self.classifier(out)


def _darts_body(space: SearchSpace, in_channels: int):
    macro = space.macro
    c = macro.channels
    c_stem = macro.stem_multiplier * c
    stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
    c_pp, c_p, c_cur = c_stem, c_stem, c
    reductions = set(macro.reduction_positions())
    cells, reduction_prev = nn.ModuleList(), False
    for i in range(macro.layers):
        reduction = i in reductions
        if reduction:
            c_cur *= 2
        cells.append(SearchCell(space, "reduce" if reduction else "normal", c_cur, (c_pp, c_p), reduction_prev))
        reduction_prev = reduction
        c_pp, c_p = c_p, space.multiplier * c_cur
    return stem, cells, c_p


def _nb201_body(space: SearchSpace, in_channels: int):
    c, n = space.macro.channels, space.macro.layers
    stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
    cells, c_prev = nn.ModuleList(), c
    for stage, width in enumerate((c, 2 * c, 4 * c)):
        if stage:
            cells.append(ResNetBasicBlock(c_prev, width, 2))
        cells.extend(SearchCell(space, "normal", width, (width,)) for _ in range(n))
        c_prev = width
    return stem, cells, c_prev


def build_supernet(space: SearchSpace, num_classes: int, in_channels: int = 3) -> Supernet:
    """The supernet of ``space`` for ``num_classes`` classes (see :class:`Supernet`)."""
    return Supernet(space, num_classes, in_channels)
