"""Derivation in the cell families: the kept edges and ops of each cell, by the space's rule."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from dmc.errors import InvalidInputError
from dmc.families.alpha_weights import edge_weights
from dmc.families.cell.genotype import CellGenotype, Genotype
from dmc.families.cell.space import CellSpace
from dmc.ops import OPS


def derive_cells(alphas: Mapping[str, torch.Tensor], space: CellSpace,
                 edge_norms: Mapping[str, torch.Tensor] | None = None) -> Genotype:
    """``top_k`` (DARTS): for each node keep the k incoming edges whose strongest non-'none' op weighs most,
    each with that op. ``all`` (NAS-Bench-201): every edge keeps its strongest op, 'none' included.
    ``edge_norms`` (PC-DARTS: ``{"normal": (E,), ...}`` logits) scale each edge's op weights by its normalised edge
    weight (:func:`node_edge_weights`) before edges are ranked, as PC-DARTS derives."""
    cells = {}
    for cell_type in space.cell_types:
        weights = edge_weights(alphas[cell_type].detach().cpu(), space, cell_type)
        if edge_norms is not None:
            scale = node_edge_weights(edge_norms[cell_type].detach().cpu().float(), space)
            weights = [w * s for w, s in zip(weights, scale)]
        cells[cell_type] = CellGenotype(_derive_nodes(weights, space, cell_type), space.concat)
    return Genotype(normal=cells["normal"], reduce=cells.get("reduce"), kind=space.macro.kind,
                    space=space.name, space_hash=space.content_hash, macro=space.macro)


def node_edge_weights(logits: torch.Tensor, space: CellSpace) -> torch.Tensor:
    """PC-DARTS's edge normalisation: the softmax of each node's incoming edges' logits, (E,) in edge order."""
    counts = [len(inputs) for inputs in space.node_inputs]
    if logits.dim() != 1 or logits.shape[0] != sum(counts):
        raise InvalidInputError(f"edge-normalisation weights have shape {tuple(logits.shape)}, but space "
                                f"{space.name!r} has {sum(counts)} edges", "derive with the space the search ran in")
    return torch.cat([part.softmax(-1) for part in logits.split(counts)])


def _derive_nodes(weights: Sequence[torch.Tensor], space: CellSpace, cell_type: str):
    ops_per_edge = space.cell(cell_type).edges
    nodes, e = [], 0
    for inputs in space.node_inputs:
        candidates = []  # (strength, input index, op) per incoming edge
        for j in inputs:
            w, ops = weights[e], ops_per_edge[e]
            allowed = [k for k, op in enumerate(ops) if space.derive_rule == "all" or not OPS[op].zero]
            best = max(allowed, key=lambda k: (w[k].item(), -k))
            candidates.append((w[best].item(), j, ops[best]))
            e += 1
        if space.derive_rule == "top_k":
            # stable: equal strengths keep the lower input first, as DARTS's sorted() does
            candidates = sorted(candidates, key=lambda c: -c[0])[: space.derive_k]
        nodes.append(tuple((op, j) for _, j, op in candidates))
    return tuple(nodes)
