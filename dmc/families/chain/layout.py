"""The chain family's layout: stem, optional fixed first block, the searchable layers in stages, head."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from dmc.families.chain.macro import ChainMacro, LayerSlot
from dmc.families.family import BodyBuilder
from dmc.ops.basic import FactorizedReduce
from dmc.ops.mbconv import SeparableBlock, conv_bn


def chain_body(builder: BodyBuilder, macro: ChainMacro, in_channels: int,
               make_layer: Callable[[LayerSlot], nn.Module]) -> None:
    act = macro.outer_activation
    stem = conv_bn(in_channels, macro.stem_width, 3, macro.stem_stride, act=act)
    c, stride = macro.stem_width, macro.stem_stride
    first_block_width = macro.first_block_width
    stem1 = None
    if first_block_width is not None:
        stem1 = SeparableBlock(c, first_block_width, act)
        c = first_block_width
    builder.set_stem(stem, stem1, c, stride)
    slots = macro.layer_slots()
    for slot in slots:
        if slot.stride == 2:
            if slot.index:  # the layers before end a stage (the stem's output is already one)
                builder.end_stage(stride, slots[slot.index - 1].c_out)
            stride *= 2
        builder.add_block(make_layer, slot)
    builder.end_stage(stride, slots[-1].c_out)
    head_width = macro.head_width
    if head_width is None:
        builder.set_head(nn.Identity(), slots[-1].c_out)
    else:
        builder.set_head(conv_bn(slots[-1].c_out, head_width, 1, act=act), head_width)


def chain_stem_states(stem: nn.Module, stem1: nn.Module | None, x: torch.Tensor) -> list[torch.Tensor]:
    s0 = stem(x)
    return [s0 if stem1 is None else stem1(s0)]


def chain_strides(macro: ChainMacro, blocks: nn.ModuleList) -> list[tuple[str | None, int]]:
    """(name of a layer that needs an even input or None, stride) in forward order: 'same'-padded strided convs
    take any size; a factorized reduce (a searched layer's auxiliary skip) does not."""
    return [(None, macro.stem_stride)] + [
        (f"chain layer {s.index} (stage {s.stage}) with its factorized reduce"
         if s.stride == 2 and any(isinstance(m, FactorizedReduce) for m in block.modules()) else None,
         s.stride) for s, block in zip(macro.layer_slots(), blocks)]
