"""The macro network (cells, or a chain of layers), laid out once for the supernet and compiled networks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, cast, overload

import torch
from torch import nn

from dmc.errors import InvalidInputError
from dmc.kernels.layout import gradient_in_layout
from dmc.network.cell import Cell
from dmc.network.chain_macro import ChainMacro, LayerSlot
from dmc.network.feature_info import FeatureInfo
from dmc.network.macro import Macro
from dmc.ops.basic import FactorizedReduce
from dmc.ops.conv import ResNetBasicBlock
from dmc.ops.mbconv import SeparableBlock, conv_bn


@dataclass(frozen=True)
class CellSlot:
    """Where a cell sits in the macro network: what a cell factory needs to build it."""

    index: int
    """Position in ``blocks``."""
    cell_type: str
    """``normal`` or ``reduce``."""
    channels: int
    in_channels: tuple[int, ...]
    reduction: bool
    reduction_prev: bool


CellFactory = Callable[[CellSlot], Cell]
"""``make_cell(slot)``: the cell at a :class:`CellSlot`."""
LayerFactory = Callable[[LayerSlot], nn.Module]
"""``make_layer(slot)``: the chain layer at a :class:`LayerSlot`."""
_Slot = TypeVar("_Slot", CellSlot, LayerSlot)
_Block = TypeVar("_Block", bound=nn.Module)
BlockRunner = Callable[[nn.Module, list[torch.Tensor]], torch.Tensor]
"""``run_block(block, inputs)``: a cell's or chain layer's output, run as the caller (search or deploy) runs it."""


class MacroNetwork(nn.Module):
    """Stem(s), ``blocks``, head, pool, classifier, for every network family.

    ``blocks`` are the cells of a cell network (and NAS-Bench-201's residual blocks between its stages) or the
    searchable layers of a chain network. :meth:`build_body` lays the network out from a :class:`Macro` or
    :class:`ChainMacro` and a block factory, and records ``feature_info`` (channels, stride and module of each
    stage output, as timm does; ``block`` is the index after which the stage ends, -1 for the stem).
    """

    macro: Macro | ChainMacro
    stem: nn.Module
    stem1: nn.Module | None
    head_act: nn.Module

    @overload
    def build_body(self, macro: Macro, in_channels: int, num_classes: int, make_block: CellFactory) -> None: ...

    @overload
    def build_body(self, macro: ChainMacro, in_channels: int, num_classes: int, make_block: LayerFactory) -> None: ...

    def build_body(self, macro: Macro | ChainMacro, in_channels: int, num_classes: int,
                   make_block: CellFactory | LayerFactory) -> None:
        self.macro = macro
        self.feature_info = FeatureInfo()
        self.blocks = nn.ModuleList()
        self._made: set[int] = set()
        if isinstance(macro, ChainMacro):  # the overloads pair each macro with its factory
            c_out = self._chain_body(macro, in_channels, cast(LayerFactory, make_block))
        else:
            body = {"darts": self._darts_body, "nb201": self._nb201_body}[macro.kind]
            c_out = body(macro, in_channels, cast(CellFactory, make_block))
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        dropout = getattr(macro, "dropout", 0.0)
        self.classifier = nn.Linear(c_out, num_classes) if not dropout else \
            nn.Sequential(nn.Dropout(dropout), nn.Linear(c_out, num_classes))

    def _darts_body(self, macro: Macro, in_channels: int, make_cell: CellFactory) -> int:
        c = macro.channels
        if macro.stem == "cifar":
            c_stem = macro.stem_multiplier * c
            self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
            self.stem1 = None
            c_pp = c_p = c_stem
            reduction_prev, stride = False, 1
            self.feature_info.append(dict(num_chs=c_stem, reduction=1, module="stem", block=-1))
        else:  # imagenet: two stride-2 stems after a stride-2 conv, overall stride 8
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, c // 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c // 2),
                nn.ReLU(inplace=True), nn.Conv2d(c // 2, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c))
            self.stem1 = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False),
                                       nn.BatchNorm2d(c))
            c_pp = c_p = c
            reduction_prev, stride = True, 8
            self.feature_info.append(dict(num_chs=c, reduction=8, module="stem1", block=-1))
        reductions = macro.reduction_positions()
        c_cur = c
        for i in range(macro.layers):
            reduction = i in reductions
            if reduction:
                c_cur *= 2
                stride *= 2
                if self.blocks:  # the previous cell ends a stage
                    self._stage_end(stride // 2)
            cell = self._make(make_cell, CellSlot(i, "reduce" if reduction else "normal", c_cur, (c_pp, c_p),
                                                  reduction, reduction_prev))
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.out_channels
        self._stage_end(stride)
        self.head_act = nn.Identity()
        return c_p

    def _nb201_body(self, macro: Macro, in_channels: int, make_cell: CellFactory) -> int:
        c = macro.channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        self.stem1 = None
        self.feature_info.append(dict(num_chs=c, reduction=1, module="stem", block=-1))
        c_prev = c
        for stage, width in enumerate((c, 2 * c, 4 * c)):
            if stage:
                self.blocks.append(ResNetBasicBlock(c_prev, width, 2))
            for _ in range(macro.layers):
                self._make(make_cell, CellSlot(len(self.blocks), "normal", width, (width,), False, False))
            c_prev = width
            self._stage_end(2 ** stage)
        self.head_act = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=True))
        return c_prev

    def _chain_body(self, macro: ChainMacro, in_channels: int, make_layer: LayerFactory) -> int:
        act = macro.outer_activation
        self.stem = conv_bn(in_channels, macro.stem_width, 3, macro.stem_stride, act=act)
        c, stride = macro.stem_width, macro.stem_stride
        self.stem1 = None
        first_block_width = macro.first_block_width
        if first_block_width is not None:
            self.stem1 = SeparableBlock(c, first_block_width, act)
            c = first_block_width
        self.feature_info.append(dict(num_chs=c, reduction=stride, module="stem1" if self.stem1 else "stem", block=-1))
        slots = macro.layer_slots()
        for slot in slots:
            if slot.stride == 2:
                if slot.index:  # the layers before end a stage (the stem's output is already one)
                    self._stage_end(stride, slots[slot.index - 1].c_out)
                stride *= 2
            self._make(make_layer, slot)
        self._stage_end(stride, slots[-1].c_out)
        head_width = macro.head_width
        if head_width is None:
            self.head_act = nn.Identity()
            return slots[-1].c_out
        self.head_act = conv_bn(slots[-1].c_out, head_width, 1, act=act)
        return head_width

    def _make(self, make_block: Callable[[_Slot], _Block], slot: _Slot) -> _Block:
        block = make_block(slot)
        self._made.add(len(self.blocks))
        self.blocks.append(block)
        return block

    def _stage_end(self, stride: int, channels: int | None = None) -> None:
        i = len(self.blocks) - 1  # a stage always ends with a cell or layer
        self.feature_info.append(dict(num_chs=channels or self.blocks[i].out_channels, reduction=stride,
                                      module=f"blocks.{i}", block=i))

    # ------------------------------------------------------------------------------------------ running
    def stem_states(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The states the first block reads: [s0, s1] for two-input cells, [s] for one-input cells."""
        s0 = self.stem(x)
        if self.macro.kind == "chain":
            return [s0 if self.stem1 is None else self.stem1(s0)]
        if self.macro.kind == "nb201":
            return [s0]
        return [s0, s0] if self.stem1 is None else [s0, self.stem1(s0)]

    def run_block(self, i: int, states: list[torch.Tensor], run_made: BlockRunner) -> list[torch.Tensor]:
        """The states after block ``i``; the last one is its output. Blocks of the factory (cells, chain
        layers) run through ``run_made``; the fixed ones (residual blocks) run themselves."""
        block = self.blocks[i]
        if i not in self._made:
            return [block(states[-1])]
        if isinstance(block, Cell) and block.inputs == 2:
            return [states[-1], run_made(block, states)]
        return [run_made(block, [states[-1]])]

    def logits(self, last: torch.Tensor) -> torch.Tensor:
        features = self.head_act(last)
        if self.training:  # the global pool's backward returns a contiguous gradient: keep the network's layout
            features = gradient_in_layout(features)
        return self.classifier(self.global_pool(features).flatten(1))  # (B, classes)

    # ------------------------------------------------------------------------------------------ sizes
    def check_input_size(self, height: int, width: int) -> None:
        """Refuses sizes that a stride-2 block cannot halve (a factorized reduce's two branches, or a residual
        block's pool and strided conv, would differ)."""
        if not isinstance(height, int) or not isinstance(width, int):
            return  # symbolic sizes while tracing: checked by the caller with concrete sizes
        size = [height, width]
        for layer, stride in self._strides():
            if layer and (size[0] % 2 or size[1] % 2):
                raise InvalidInputError(
                    f"input size {height}x{width}: {layer} gets {size[0]}x{size[1]} feature maps, which it "
                    f"cannot halve", f"use a size divisible by {self.size_divisor}")
            size = [(s + stride - 1) // stride for s in size]

    @property
    def size_divisor(self) -> int:
        divisor = 1
        for _, stride in self._strides():
            divisor *= stride
        return divisor

    def _strides(self) -> list[tuple[str | None, int]]:
        """(name of a block that needs an even input or None, stride) in forward order."""
        # 'same'-padded strided convs take any size; a factorized reduce does not
        if isinstance(self.macro, ChainMacro):
            return [(None, self.macro.stem_stride)] + [
                (f"chain layer {s.index} (stage {s.stage}) with its factorized reduce"
                 if s.stride == 2 and any(isinstance(m, FactorizedReduce) for m in block.modules()) else None,
                 s.stride) for s, block in zip(self.macro.layer_slots(), self.blocks)]
        strides: list[tuple[str | None, int]] = \
            [(None, 1)] if self.stem1 is None else [(None, 2), (None, 2), (None, 2)]
        for i, block in enumerate(self.blocks):
            if isinstance(block, Cell) and block.reduction:
                strides.append((f"reduction cell {i}", 2))
            elif not isinstance(block, Cell):
                strides.append((f"residual block {i}", 2))
        return strides
