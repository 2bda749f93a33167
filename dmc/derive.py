"""Derivation: architecture weights -> genotype, by the rule of the search space's family. Pure."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from dmc.errors import InvalidInputError
from dmc.families import AnyGenotype, AnySpace, family_of


def derive(alphas: Mapping[str, torch.Tensor], space: AnySpace,
           edge_norms: Mapping[str, torch.Tensor] | None = None) -> AnyGenotype:
    """Turns architecture logits (``{"normal": (E, K), "reduce": (E, K)}``, or ``{"layers": (L, K)}``) into a
    genotype, by the rule of the space's family (:meth:`dmc.families.Family.derive`).

    ``top_k`` (DARTS): for each node keep the k incoming edges whose strongest non-'none' op weighs most,
    each with that op. ``all`` (NAS-Bench-201): every edge keeps its strongest op, 'none' included.
    Chain spaces: every layer keeps its strongest op, 'skip' included (a skip that keeps the shape removes
    the layer, so the depth is searched too). ``edge_norms`` (PC-DARTS: ``{"normal": (E,), ...}`` logits) scale
    each edge's op weights by its normalised edge weight before edges are ranked, as PC-DARTS derives.
    """
    for group in space.alpha_groups:
        if group not in alphas:
            raise InvalidInputError(f"no architecture weights for the {group} {space.row_noun}s")
    return family_of(space).derive(alphas, space, edge_norms)
