"""Architecture weights: the softmax of each row of alpha over its own candidates (rows are padded)."""

from __future__ import annotations

import torch

from dmc.errors import InvalidInputError
from dmc.families.family import AnySpace


def edge_weights(alpha: torch.Tensor, space: AnySpace, group: str) -> list[torch.Tensor]:
    """Softmax of each row's logits (an edge, or a chain layer) over its own candidates (``alpha`` may be
    padded)."""
    rows = space.candidates(group)
    if alpha.dim() != 2 or alpha.shape[0] != len(rows) or alpha.shape[1] < max(map(len, rows)):
        raise InvalidInputError(
            f"{group} architecture weights have shape {tuple(alpha.shape)}, but space {space.name!r} has "
            f"{len(rows)} {space.row_noun}s with up to {max(map(len, rows))} candidates",
            "derive with the space the search ran in")
    return [alpha[e, : len(ops)].float().softmax(-1) for e, ops in enumerate(rows)]
