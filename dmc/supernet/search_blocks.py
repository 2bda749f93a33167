"""The supernet's blocks: a search cell of mixed edges (cell families) and a mixed chain layer (chain family)."""

from __future__ import annotations

from dmc.errors import SettingError
from dmc.families.cell.macro import CellSlot
from dmc.families.cell.space import CellSpace
from dmc.families.chain.macro import LayerSlot
from dmc.families.chain.space import ChainSpace
from dmc.families.family import SearchBlockOptions
from dmc.supernet.mixed_edge import MixedEdge, auxiliary_edge, chain_auxiliary
from dmc.supernet.search_cell import SearchCell


def search_cell(space: CellSpace, slot: CellSlot, options: SearchBlockOptions) -> SearchCell:
    """The cell at ``slot``: a mixed edge (the space's candidates, DARTS-'s auxiliary skip) on every edge."""
    candidates = space.cell(slot.cell_type).edges
    c = slot.channels
    if c % options.partial_channels:
        raise SettingError(f"a cell of {c} channels does not split into {options.partial_channels} partial "
                           "channel groups", "choose {channels} so that every cell's width is divisible by "
                           "{partial_channels}")

    def mixed_edge(e: int, stride: int) -> MixedEdge:
        return MixedEdge(candidates[e], c, c, stride, lambda: auxiliary_edge(c, stride, space.aux_conv1x1),
                         space.pool_batchnorm, partial=options.partial_channels, shuffle=options.channel_shuffle,
                         kernels=options.kernels)

    return SearchCell(space.node_inputs, space.concat, space.inputs, c, slot.in_channels, mixed_edge,
                      slot.reduction, slot.reduction_prev, affine=False)


def search_layer(space: ChainSpace, slot: LayerSlot, options: SearchBlockOptions) -> MixedEdge:
    """The mixed layer at ``slot``: the layer's candidates and DARTS-'s auxiliary skip (a projection where the
    shape changes)."""
    aux = lambda: chain_auxiliary(slot.c_in, slot.c_out, slot.stride, space.aux_shape_change)  # noqa: E731
    return MixedEdge(space.layer_candidates[slot.index], slot.c_in, slot.c_out, slot.stride, aux,
                     act=space.macro.activation, row=slot.index, kernels=options.kernels)
