"""Derivation: architecture weights -> :class:`Genotype`, by the rule of the search space. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from dmc.chain_genotype import ChainGenotype
from dmc.chain_space import ChainSpace
from dmc.errors import InvalidInputError
from dmc.genotype import CellGenotype, Genotype
from dmc.ops import OPS
from dmc.space import SearchSpace


def edge_weights(alpha: torch.Tensor, space: SearchSpace | ChainSpace, group: str) -> list[torch.Tensor]:
    """Softmax of each row's logits (an edge, or a chain layer) over its own candidates (``alpha`` may be
    padded)."""
    rows = space.candidates(group)
    what = "layers" if isinstance(space, ChainSpace) else "edges"
    if alpha.dim() != 2 or alpha.shape[0] != len(rows) or alpha.shape[1] < max(map(len, rows)):
        raise InvalidInputError(
            f"{group} architecture weights have shape {tuple(alpha.shape)}, but space {space.name!r} has "
            f"{len(rows)} {what} with up to {max(map(len, rows))} candidates",
            "derive with the space the search ran in")
    return [alpha[e, : len(ops)].float().softmax(-1) for e, ops in enumerate(rows)]


def node_edge_weights(logits: torch.Tensor, space: SearchSpace) -> torch.Tensor:
    """PC-DARTS's edge normalisation: the softmax of each node's incoming edges' logits, (E,) in edge order."""
    counts = [len(inputs) for inputs in space.node_inputs]
    if logits.dim() != 1 or logits.shape[0] != sum(counts):
        raise InvalidInputError(f"edge-normalisation weights have shape {tuple(logits.shape)}, but space "
                                f"{space.name!r} has {sum(counts)} edges", "derive with the space the search ran in")
    return torch.cat([part.softmax(-1) for part in logits.split(counts)])


def derive(alphas: Mapping[str, torch.Tensor], space: SearchSpace | ChainSpace,
           edge_norms: Mapping[str, torch.Tensor] | None = None) -> Genotype | ChainGenotype:
    """Turns architecture logits (``{"normal": (E, K), "reduce": (E, K)}``, or ``{"layers": (L, K)}``) into a
    genotype.

    ``top_k`` (DARTS): for each node keep the k incoming edges whose strongest non-'none' op weighs most,
    each with that op. ``all`` (NAS-Bench-201): every edge keeps its strongest op, 'none' included.
    Chain spaces: every layer keeps its strongest op, 'skip' included (a skip that keeps the shape removes
    the layer, so the depth is searched too). ``edge_norms`` (PC-DARTS: ``{"normal": (E,), ...}`` logits) scale
    each edge's op weights by its normalised edge weight (:func:`node_edge_weights`) before edges are ranked,
    as PC-DARTS derives.
    """
    for group in space.alpha_groups:
        if group not in alphas:
            raise InvalidInputError(f"no architecture weights for the {group} " +
                                    ("layers" if isinstance(space, ChainSpace) else "cell"))
    if isinstance(space, ChainSpace):
        weights = edge_weights(alphas["layers"].detach().cpu(), space, "layers")
        layers = tuple(ops[max(range(len(ops)), key=lambda k: (w[k].item(), -k))]
                       for w, ops in zip(weights, space.layers))
        return ChainGenotype(layers, space.macro, space.name, space.content_hash)
    cells = {}
    for cell_type in space.cell_types:
        weights = edge_weights(alphas[cell_type].detach().cpu(), space, cell_type)
        if edge_norms is not None:
            scale = node_edge_weights(edge_norms[cell_type].detach().cpu().float(), space)
            weights = [w * s for w, s in zip(weights, scale)]
        cells[cell_type] = CellGenotype(_derive_nodes(weights, space, cell_type), space.concat)
    return Genotype(normal=cells["normal"], reduce=cells.get("reduce"), kind=space.macro.kind,
                    space=space.name, space_hash=space.content_hash, macro=space.macro)


def _derive_nodes(weights: Sequence[torch.Tensor], space: SearchSpace, cell_type: str):
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
