"""The macro network (cells, or a chain of layers), laid out once for the supernet and compiled networks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from dmc.errors import InvalidInputError
from dmc.families import Family, family_of
from dmc.kernels.layout import gradient_in_layout
from dmc.network.cell import Cell
from dmc.network.feature_info import FeatureInfo

BlockRunner = Callable[[nn.Module, list[torch.Tensor]], torch.Tensor]
"""``run_block(block, inputs)``: a cell's or chain layer's output, run as the caller (the supernet) runs it."""
LayerFactory = Callable[[Any], nn.Module]
"""``make_block(slot)``: the block (a cell, a chain layer) at one of the family's slots."""


def _run_alone(block: nn.Module, inputs: list[torch.Tensor]) -> torch.Tensor:
    return block(*inputs)


class MacroNetwork(nn.Module):
    """Stem(s), ``blocks``, head, pool, classifier, for every network family.

    ``blocks`` are the cells of a cell network (and NAS-Bench-201's residual blocks between its stages) or the
    searchable layers of a chain network. :meth:`build_body` lays the network out from a macro (its family's
    layout, :mod:`dmc.families`) and a block factory, and records ``feature_info`` (channels, stride and module of each
    stage output, as timm does; ``block`` is the index after which the stage ends, -1 for the stem).
    """

    macro: Any
    family: Family
    stem: nn.Module
    stem1: nn.Module | None
    head_act: nn.Module

    def build_body(self, macro: Any, in_channels: int, num_classes: int, make_block: LayerFactory) -> None:
        """Lays the network out: the family of ``macro`` adds the stem, blocks (``make_block(slot)`` for each of
        its slots) and head, then the global pool and the classifier follow."""
        self.macro = macro
        self.family = family_of(macro)
        self.feature_info = FeatureInfo()
        self._made: set[int] = set()
        self.family.build_body(self, macro, in_channels, make_block)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        dropout = getattr(macro, "dropout", 0.0)
        self.classifier = nn.Linear(self.head_channels, num_classes) if not dropout else \
            nn.Sequential(nn.Dropout(dropout), nn.Linear(self.head_channels, num_classes))

    # ------------------------------------------------------------------------------------------ BodyBuilder
    def set_stem(self, stem: nn.Module, stem1: nn.Module | None, channels: int, stride: int) -> None:
        """The stem, and a second stem (DARTS ImageNet) or fixed first block (chain networks); the blocks follow.
        Modules are registered in forward order (stem, blocks, head, classifier), as timm and torchvision do (older
        dmc versions registered the blocks first: :mod:`dmc.optimizer_order`)."""
        self.stem, self.stem1 = stem, stem1
        self.blocks = nn.ModuleList()
        self.feature_info.append(dict(num_chs=channels, reduction=stride, module="stem1" if stem1 else "stem",
                                      block=-1))

    def add_block(self, make_block: LayerFactory, slot: Any) -> nn.Module:
        block = make_block(slot)
        self._made.add(len(self.blocks))
        self.blocks.append(block)
        return block

    def add_fixed_block(self, block: nn.Module) -> None:
        self.blocks.append(block)

    def end_stage(self, stride: int, channels: int | None = None) -> None:
        i = len(self.blocks) - 1  # a stage always ends with a cell or layer
        self.feature_info.append(dict(num_chs=channels or self.blocks[i].out_channels, reduction=stride,
                                      module=f"blocks.{i}", block=i))

    def set_head(self, head_act: nn.Module, channels: int) -> None:
        self.head_act, self.head_channels = head_act, channels

    # ------------------------------------------------------------------------------------------ running
    def stem_states(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The states the first block reads: [s0, s1] for two-input cells, [s] otherwise."""
        return self.family.stem_states(self.stem, self.stem1, x)

    def run_block(self, i: int, states: list[torch.Tensor], run_made: BlockRunner | None = None) -> list[torch.Tensor]:
        """The states after block ``i``; the last one is its output. Blocks of the factory (cells, chain
        layers) run through ``run_made``, by default on their own (``block(*inputs)``); the fixed ones (residual
        blocks) run themselves."""
        block = self.blocks[i]
        if i not in self._made:
            return [block(states[-1])]
        run = run_made or _run_alone
        if isinstance(block, Cell) and block.inputs == 2:
            return [states[-1], run(block, states)]
        return [run(block, [states[-1]])]

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
        return self.family.strides(self.macro, self.blocks, self.stem1)
