"""The layouts of the cell families: DARTS's network (stem(s), cells, reduction cells) and NAS-Bench-201's (three
stages of one-input cells joined by residual blocks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
from torch import nn

from dmc.families.cell.macro import CellSlot, Macro
from dmc.families.family import BodyBuilder
from dmc.network.cell import Cell
from dmc.ops.conv import ResNetBasicBlock

CellFactory = Callable[[CellSlot], Cell]
"""``make_cell(slot)``: the cell at a :class:`CellSlot`."""


def darts_body(builder: BodyBuilder, macro: Macro, in_channels: int, make_cell: CellFactory) -> None:
    c = macro.channels
    if macro.stem == "cifar":
        c_stem = macro.stem_multiplier * c
        builder.set_stem(nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False),
                                       nn.BatchNorm2d(c_stem)), None, c_stem, 1)
        c_pp = c_p = c_stem
        reduction_prev, stride = False, 1
    else:  # imagenet: two stride-2 stems after a stride-2 conv, overall stride 8
        stem = nn.Sequential(
            nn.Conv2d(in_channels, c // 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c // 2),
            nn.ReLU(inplace=True), nn.Conv2d(c // 2, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c))
        stem1 = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False),
                              nn.BatchNorm2d(c))
        builder.set_stem(stem, stem1, c, 8)
        c_pp = c_p = c
        reduction_prev, stride = True, 8
    reductions = macro.reduction_positions()
    c_cur = c
    for i in range(macro.layers):
        reduction = i in reductions
        if reduction:
            c_cur *= 2
            stride *= 2
            if i:  # the previous cell ends a stage
                builder.end_stage(stride // 2)
        slot = CellSlot(i, "reduce" if reduction else "normal", c_cur, (c_pp, c_p), reduction, reduction_prev)
        cell = cast(Cell, builder.add_block(make_cell, slot))
        reduction_prev = reduction
        c_pp, c_p = c_p, cell.out_channels
    builder.end_stage(stride)
    builder.set_head(nn.Identity(), c_p)


def nb201_body(builder: BodyBuilder, macro: Macro, in_channels: int, make_cell: CellFactory) -> None:
    c = macro.channels
    builder.set_stem(nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)),
                     None, c, 1)
    c_prev, index = c, 0
    for stage, width in enumerate((c, 2 * c, 4 * c)):
        if stage:
            builder.add_fixed_block(ResNetBasicBlock(c_prev, width, 2))
            index += 1
        for _ in range(macro.layers):
            builder.add_block(make_cell, CellSlot(index, "normal", width, (width,), False, False))
            index += 1
        c_prev = width
        builder.end_stage(2 ** stage)
    builder.set_head(nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=True)), c_prev)


def cell_stem_states(stem: nn.Module, stem1: nn.Module | None, x: torch.Tensor, inputs: int) -> list[torch.Tensor]:
    """The states the first cell reads: [s0, s1] for two-input cells, [s] for one-input cells."""
    s0 = stem(x)
    if inputs == 1:
        return [s0]
    return [s0, s0] if stem1 is None else [s0, stem1(s0)]


def cell_strides(blocks: nn.ModuleList, stem1: nn.Module | None) -> list[tuple[str | None, int]]:
    """(name of a block that needs an even input or None, stride) in forward order: a reduction cell's factorized
    reduce and a residual block's pool and strided conv need even sizes."""
    strides: list[tuple[str | None, int]] = [(None, 1)] if stem1 is None else [(None, 2), (None, 2), (None, 2)]
    for i, block in enumerate(blocks):
        if isinstance(block, Cell) and block.reduction:
            strides.append((f"reduction cell {i}", 2))
        elif not isinstance(block, Cell):
            strides.append((f"residual block {i}", 2))
    return strides
