"""Cost-aware search (issue 32): what the searched network will cost, differentiable in the architecture weights.

A :class:`CostTable` gives every candidate of every alpha row a cost (measured latency from a look-up table, or
MACs or parameters counted on the supernet's own candidates) and the network's fixed parts one more. The expected
cost of the supernet is ``fixed + sum over rows of softmax(alpha_row) . cost_row``: the same softmax weights the
forward mixes the candidates with, so its gradient moves alpha towards cheaper candidates. DARTS-'s auxiliary skip
costs nothing (it vanishes as beta decays). A cell type's row counts once per cell of that type.

The architecture step minimises the validation loss with the cost folded in by one of the published rules, with
their authors' defaults (:mod:`dmc.search.cost_rules`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from dmc.errors import SettingError
from dmc.families import AnySpace, family_of
from dmc.ops import OPS
from dmc.profile import module_macs
from dmc.search.cost_rules import COST_UNITS

if TYPE_CHECKING:
    from dmc.supernet import Supernet
    from dmc.supernet.mixed_edge import MixedEdge


@dataclass(frozen=True)
class CostTable:
    """The cost of every candidate of every alpha row (``rows[group][row][k]``) and of the fixed parts."""

    kind: str
    rows: Mapping[str, tuple[tuple[float, ...], ...]]
    fixed: float = 0.0
    _matrices: dict[tuple[str, torch.device, torch.dtype], torch.Tensor] = field(
        default_factory=dict, compare=False, repr=False)
    """Each group's costs as an (E, K) tensor on a device, padded with zeros where a row has fewer candidates
    (their mixing weights are 0): made at the first eager call, so that a captured step copies nothing."""

    @property
    def unit(self) -> str:
        return COST_UNITS[self.kind]

    def expected(self, weights: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``fixed + sum_rows weights_row . cost_row`` for the mixing weights of each group ((E, K) softmax rows,
        :meth:`dmc.supernet.Supernet.mixing_weights`), as a device scalar with its gradient."""
        total = None
        for group in self.rows:
            w = weights[group]
            term = (w * self._matrix(group, w)).sum()
            total = term if total is None else total + term
        assert total is not None, "a cost table has at least one group"
        return total + self.fixed

    def _matrix(self, group: str, weights: torch.Tensor) -> torch.Tensor:
        key = (group, weights.device, weights.dtype)
        if key not in self._matrices:
            padded = [list(row) + [0.0] * (weights.shape[1] - len(row)) for row in self.rows[group]]
            self._matrices[key] = torch.tensor(padded, dtype=weights.dtype, device=weights.device)
        return self._matrices[key]

    def of_choice(self, chosen: Mapping[str, list[tuple[int, int]]]) -> float:
        """The cost of a derived network: the fixed parts and its chosen (row, candidate) entries
        (:meth:`dmc.families.Family.chosen_candidates`)."""
        total = self.fixed  # summed in this order, as the latency table sums a network
        for group, pairs in chosen.items():
            for row, k in pairs:
                total += self.rows[group][row][k]
        return total


def latency_cost_table(path: str, space: AnySpace) -> CostTable:
    """The latency table at ``path`` (``dmc latency table``) as a cost table, refused in one line unless it was
    measured for ``space`` at its width. Its input size is the deployed network's (224 by default), which a search
    on small images does not share: the table prices the network as it will run, not as it is searched."""
    from dmc.latency import load_latency_table

    if space.kind != "chain":
        raise SettingError(f"latency tables are measured per chain layer; {space.name} is a cell space",
                           "search a cell space with {cost} macs or params")
    table = load_latency_table(path)
    table.check_fits(space, table.image_size)
    return CostTable("latency", {"layers": tuple(tuple(row) for row in table.candidate_costs())}, table.fixed_ms)


@torch.no_grad()
def counted_cost_table(supernet: Supernet, kind: str, image_size: int, in_channels: int,
                       num_classes: int) -> CostTable:
    """MACs or parameters (millions) of every candidate of ``supernet`` where it sits, as the derived network has
    it: each candidate built as the compiler builds it (affine batch norms; no search-time batch norm after a
    pooling) at the channels, stride and input resolution of its edge, recorded in one forward of a one-image
    batch (in eval mode: nothing of the supernet changes), and counted there ('none' costs 0). The fixed parts
    (stems, cell preprocessing, head) are what the network the supernet derives now counts beyond its chosen
    candidates, in the compiler's network; ``tests/search/test_cost.py`` checks that the networks of other
    genotypes then cost exactly their entries."""
    from dmc.compiler import BuildArgs, CompiledNetwork

    shapes: dict[torch.nn.Module, torch.Size] = {}

    def record_shape(module: torch.nn.Module, args: tuple) -> None:
        shapes.setdefault(module, args[0].shape)

    row_edges = supernet.row_edges()
    hooks = [edge.register_forward_pre_hook(record_shape)
             for rows in row_edges.values() for edges in rows for edge in edges]
    training = supernet.training
    x = torch.zeros(1, in_channels, image_size, image_size, device=next(supernet.parameters()).device)
    try:
        supernet.eval()(x)
    finally:
        for hook in hooks:
            hook.remove()
        supernet.train(training)
    rows = {group: tuple(tuple(sum(_candidate_cost(kind, edge, k, shapes[edge]) for edge in edges)
                               for k in range(len(edges[0].op_names))) for edges in group_rows)
            for group, group_rows in row_edges.items()}
    genotype = supernet.genotype()
    network = CompiledNetwork(genotype, BuildArgs(supernet.space.macro, num_classes, in_channels)).eval()
    whole = _count(kind, network, x.cpu())
    chosen = CostTable(kind, rows).of_choice(family_of(supernet.space).chosen_candidates(genotype, supernet.space))
    return CostTable(kind, rows, whole - chosen)


def _count(kind: str, module: torch.nn.Module, x: torch.Tensor) -> float:
    if kind == "params":
        return sum(p.numel() for p in module.parameters()) / 1e6
    return module_macs(module, x) / 1e6


def _candidate_cost(kind: str, edge: MixedEdge, k: int, shape: torch.Size) -> float:
    """Candidate ``k`` of ``edge`` as a derived network builds it, on the edge's input (PC-DARTS: its share of
    the channels)."""
    spec = OPS[edge.op_names[k]]
    if spec.zero:
        return 0.0
    op = spec.build(edge.in_channels // edge.partial, edge.out_channels // edge.partial, edge.stride, affine=True,
                    act=edge.act).eval()
    return _count(kind, op, torch.zeros(shape[0], shape[1] // edge.partial, *shape[2:]))
