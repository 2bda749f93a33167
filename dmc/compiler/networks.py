"""Standalone networks compiled from genotypes: DARTS's CIFAR and ImageNet networks, NAS-Bench-201's.

Every network declares ``feature_info`` (channels and stride of each stage output, as timm does) and
``forward_features(x, out_indices)`` returns those maps, so any compiled network can serve as a
detection backbone without hand-copied channel lists.
"""

from __future__ import annotations

import torch
from torch import nn

from dmc.compiler.build_args import BuildArgs
from dmc.compiler.cell import DerivedCell
from dmc.compiler.heads import AuxiliaryHeadCIFAR, AuxiliaryHeadImageNet
from dmc.errors import InvalidInputError
from dmc.genotype import Genotype
from dmc.ops.conv import ResNetBasicBlock


class CompiledNetwork(nn.Module):
    """Base of every compiled network: stem, body blocks, global pool and classifier.

    ``blocks`` run in order; ``stage_ends`` are the indices (-1 for the stem) after which a stage ends.
    ``drop_path_prob`` is set by the trainer; drop-path acts only in training mode.
    """

    genotype: Genotype
    build_args: BuildArgs

    def __init__(self, genotype: Genotype, build_args: BuildArgs):
        super().__init__()
        self.genotype, self.build_args = genotype, build_args
        self.drop_path_prob = 0.0
        self.feature_info: list[dict] = []
        self.aux_position: int | None = None
        self.auxiliary_head: nn.Module | None = None

    @property
    def deterministic(self) -> bool:
        """False when a cell keeps a 'noise' op: outputs are then random."""
        return self.genotype.deterministic

    def num_parameters(self, include_auxiliary: bool = False) -> int:
        """Parameter count; the auxiliary head is excluded by default, as DARTS reports it."""
        return sum(p.numel() for name, p in self.named_parameters()
                   if include_auxiliary or not name.startswith("auxiliary_head."))

    # subclasses define: _stem(x) -> states, _block(i, states) -> states, _strides()
    def _stem(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def _block(self, i: int, states: list[torch.Tensor]) -> list[torch.Tensor]:
        raise NotImplementedError

    def _run(self, x: torch.Tensor, out_indices: set[int] | None):
        """Runs stem and blocks; returns (requested stage outputs, last output, auxiliary logits or None)."""
        self.check_input_size(x.shape[-2], x.shape[-1])
        ends = {info["block"]: stage for stage, info in enumerate(self.feature_info)}
        states = self._stem(x)
        features, aux_logits = [], None
        for i in range(-1, len(self.blocks)):
            if i >= 0:
                states = self._block(i, states)
                if i == self.aux_position and self.auxiliary_head is not None and self.training:
                    aux_logits = self.auxiliary_head(states[-1])
            stage = ends.get(i)
            if stage is not None and (out_indices is None or stage in out_indices):
                features.append(states[-1])
        return features, states[-1], aux_logits

    def forward_features(self, x: torch.Tensor, out_indices=None) -> list[torch.Tensor]:
        """The stage outputs listed in ``out_indices`` (default: all), see ``feature_info``."""
        return self._run(x, None if out_indices is None else set(out_indices))[0]

    def forward(self, x: torch.Tensor):
        """Logits (B, classes); in training with an auxiliary head, (logits, auxiliary logits)."""
        _, last, aux_logits = self._run(x, set())
        logits = self.classifier(self.global_pool(self.head_act(last)).flatten(1))  # (B, classes)
        if self.training and self.auxiliary_head is not None:
            return logits, aux_logits
        return logits

    def check_input_size(self, height: int, width: int) -> None:
        """Refuses sizes that a stride-2 reduction cannot halve (a factorized reduce's two branches would differ)."""
        if not isinstance(height, int) or not isinstance(width, int):
            return  # symbolic sizes while tracing: checked by the caller with concrete sizes
        size = [height, width]
        for layer, stride in self._strides():
            if layer and (size[0] % 2 or size[1] % 2):
                raise InvalidInputError(
                    f"input size {height}x{width}: {layer} gets {size[0]}x{size[1]} feature maps, which a "
                    f"factorized reduce cannot halve", f"use a size divisible by {self.size_divisor}")
            size = [(s + stride - 1) // stride for s in size]

    @property
    def size_divisor(self) -> int:
        divisor = 1
        for _, stride in self._strides():
            divisor *= stride
        return divisor

    def _strides(self) -> list[tuple[str | None, int]]:
        """(name of a layer that needs an even input or None, stride) in forward order."""
        raise NotImplementedError


class DartsNetwork(CompiledNetwork):
    """DARTS's evaluation network (CIFAR or ImageNet style) built from a two-input genotype."""

    def __init__(self, genotype: Genotype, args: BuildArgs):
        super().__init__(genotype, args)
        if genotype.kind != "darts":
            raise InvalidInputError(f"a {genotype.kind} genotype cannot build a {args.style} network",
                                    "use --style nb201 for NAS-Bench-201 genotypes")
        c = args.channels
        if args.style == "cifar":
            c_stem = args.stem_multiplier * c
            self.stem = nn.Sequential(nn.Conv2d(args.in_channels, c_stem, 3, padding=1, bias=False),
                                      nn.BatchNorm2d(c_stem))
            self.stem1 = None
            c_pp = c_p = c_stem
            reduction_prev, stride = False, 1
            self.feature_info.append(dict(num_chs=c_stem, reduction=1, module="stem", block=-1))
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(args.in_channels, c // 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c // 2),
                nn.ReLU(inplace=True), nn.Conv2d(c // 2, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c))
            self.stem1 = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False),
                                       nn.BatchNorm2d(c))
            c_pp = c_p = c
            reduction_prev, stride = True, 8
            self.feature_info.append(dict(num_chs=c, reduction=8, module="stem1", block=-1))

        reductions = (args.layers // 3, 2 * args.layers // 3)
        self.blocks = nn.ModuleList()
        c_cur = c
        for i in range(args.layers):
            reduction = i in reductions
            if reduction:
                c_cur *= 2
                stride *= 2
                if self.blocks:  # the previous cell ends a stage
                    prev = self.blocks[-1]
                    self.feature_info.append(dict(num_chs=prev.out_channels, reduction=stride // 2,
                                                  module=f"blocks.{i - 1}", block=i - 1))
            cell = DerivedCell(genotype.reduce if reduction else genotype.normal, 2, c_cur, (c_pp, c_p),
                               reduction, reduction_prev)
            self.blocks.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.out_channels
            if i == reductions[1]:
                self.aux_position, c_aux = i, c_p
        self.feature_info.append(dict(num_chs=c_p, reduction=stride, module=f"blocks.{args.layers - 1}",
                                      block=args.layers - 1))
        if args.auxiliary:
            head = AuxiliaryHeadCIFAR if args.style == "cifar" else AuxiliaryHeadImageNet
            self.auxiliary_head = head(c_aux, args.num_classes)
        self.head_act = nn.Identity()
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, args.num_classes)

    def _stem(self, x):
        s0 = self.stem(x)
        return [s0, s0] if self.stem1 is None else [s0, self.stem1(s0)]

    def _block(self, i, states):
        s0, s1 = states
        return [s1, self.blocks[i]([s0, s1], self.drop_path_prob)]

    def _strides(self):
        strides = [(None, 1)] if self.build_args.style == "cifar" else [(None, 2), (None, 2), (None, 2)]
        for i, cell in enumerate(self.blocks):
            if cell.reduction:
                strides.append((f"reduction cell {i}", 2))
        return strides


class NB201Network(CompiledNetwork):
    """NAS-Bench-201's network: stem, three stages of cells joined by stride-2 residual blocks, BN-ReLU head."""

    def __init__(self, genotype: Genotype, args: BuildArgs):
        super().__init__(genotype, args)
        if genotype.kind != "nb201":
            raise InvalidInputError(f"a {genotype.kind} genotype cannot build an nb201 network",
                                    "use --style cifar or imagenet for DARTS-family genotypes")
        c = args.channels
        self.stem = nn.Sequential(nn.Conv2d(args.in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        self.feature_info.append(dict(num_chs=c, reduction=1, module="stem", block=-1))
        self.blocks = nn.ModuleList()
        c_prev = c
        for stage, width in enumerate((c, 2 * c, 4 * c)):
            if stage:
                self.blocks.append(ResNetBasicBlock(c_prev, width, 2))
            for _ in range(args.layers):
                self.blocks.append(DerivedCell(genotype.normal, 1, width, (width,)))
            c_prev = width
            self.feature_info.append(dict(num_chs=width, reduction=2 ** stage, module=f"blocks.{len(self.blocks) - 1}",
                                          block=len(self.blocks) - 1))
        self.head_act = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=True))
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, args.num_classes)

    def _stem(self, x):
        return [self.stem(x)]

    def _block(self, i, states):
        block = self.blocks[i]
        return [block([states[-1]], self.drop_path_prob) if isinstance(block, DerivedCell) else block(states[-1])]

    def _strides(self):
        # the residual block's average-pool and strided-conv branches differ on odd sizes
        return [(f"residual block {i}", 2) if isinstance(b, ResNetBasicBlock) else (None, 1)
                for i, b in enumerate(self.blocks)]

