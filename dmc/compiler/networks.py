"""Standalone networks compiled from genotypes: DARTS's CIFAR and ImageNet networks, NAS-Bench-201's, chain
networks (MobileNetV2-like).

A compiled network is laid out by the same builder as the supernet (:class:`dmc.network.MacroNetwork`),
with each edge's chosen op in place of the mixed edge. It declares ``feature_info`` (channels and stride
of each stage output, as timm does): ``forward_features(x)`` is the final unpooled map and
``forward_intermediates(x, indices)`` returns stage outputs, so any compiled network can serve as a
detection backbone without hand-copied channel lists. It carries timm's ``num_classes``, ``num_features`` and
``reset_classifier`` too.
"""

from __future__ import annotations

import dataclasses
from typing import cast

import torch
from torch import nn

from dmc.compiler.build_args import BuildArgs
from dmc.compiler.cell import DerivedCell
from dmc.errors import InvalidInputError, SettingError
from dmc.families import AnyGenotype, family_of
from dmc.network.body import MacroNetwork


class CompiledNetwork(MacroNetwork):
    """The network of a genotype: stem(s), cells (and residual blocks), global pool, classifier, and, for
    DARTS-family training, an auxiliary head after the last reduction cell.

    :attr:`drop_path_prob` is set by the trainer; drop-path acts only in training mode.
    """

    def __init__(self, genotype: AnyGenotype, build_args: BuildArgs):
        super().__init__()
        macro = build_args.macro
        if genotype.kind != macro.kind:
            styles = family_of(genotype).styles
            raise SettingError(f"a {genotype.kind} genotype cannot build a {build_args.style} network",
                               f"build it with {{style}} {' or '.join(styles)}")
        self.genotype, self.build_args = genotype, build_args
        family = family_of(macro)
        self.build_body(macro, build_args.in_channels, build_args.num_classes, family.deploy_block(genotype, macro))
        self.drop_path_prob = 0.0
        self.aux_position: int | None = None
        self.auxiliary_head: nn.Module | None = None
        if build_args.auxiliary:
            head = family.auxiliary_head(macro, self.blocks, build_args.num_classes)
            if head is None:
                raise InvalidInputError("the auxiliary head sits after the last reduction cell: this network has none")
            self.aux_position, self.auxiliary_head = head

    @property
    def drop_path_prob(self) -> float:
        """DARTS's drop-path probability, on every cell (:class:`DerivedCell`); drop-path acts in training mode."""
        return self._drop_path_prob

    @drop_path_prob.setter
    def drop_path_prob(self, probability: float) -> None:
        self._drop_path_prob = probability
        for block in self.blocks:
            if isinstance(block, DerivedCell):
                block.drop_prob = probability

    @property
    def deterministic(self) -> bool:
        """False when a cell keeps a 'noise' op: outputs are then random."""
        return self.genotype.deterministic

    @property
    def num_classes(self) -> int:
        """The classes the classifier scores (timm's ``num_classes``)."""
        return self.build_args.num_classes

    @property
    def num_features(self) -> int:
        """The channels of :meth:`forward_features`' output, which the classifier reads after global pooling (timm's
        ``num_features``)."""
        return _last_linear(self.classifier).in_features

    def reset_classifier(self, num_classes: int) -> None:
        """A freshly initialised classifier (and auxiliary head) for ``num_classes`` classes, as timm's
        ``reset_classifier``; the build arguments follow, so a saved network records the new head."""
        self.build_args = dataclasses.replace(self.build_args, num_classes=num_classes)  # checks num_classes
        if isinstance(self.classifier, nn.Sequential):  # dropout, linear
            self.classifier[-1] = _fresh_linear(self.classifier[-1], num_classes)
        else:
            self.classifier = _fresh_linear(self.classifier, num_classes)
        if self.auxiliary_head is not None:
            head = cast(nn.Sequential, self.auxiliary_head)
            head[-1] = _fresh_linear(head[-1], num_classes)

    def num_parameters(self, include_auxiliary: bool = False) -> int:
        """Parameter count; the auxiliary head is excluded by default, as DARTS reports it."""
        return sum(p.numel() for name, p in self.named_parameters()
                   if include_auxiliary or not name.startswith("auxiliary_head."))

    def _run(self, x: torch.Tensor, indices: set[int] | None):
        """Runs stem and blocks; returns (requested stage outputs, last output, auxiliary logits or None)."""
        self.check_input_size(x.shape[-2], x.shape[-1])
        ends = {info["block"]: stage for stage, info in enumerate(self.feature_info)}
        states = self.stem_states(x)
        features, aux_logits = [], None
        for i in range(-1, len(self.blocks)):
            if i >= 0:
                states = self.run_block(i, states)
                if i == self.aux_position and self.auxiliary_head is not None and self.training:
                    aux_logits = self.auxiliary_head(states[-1])
            stage = ends.get(i)
            if stage is not None and (indices is None or stage in indices):
                features.append(states[-1])
        return features, states[-1], aux_logits

    def forward_intermediates(self, x: torch.Tensor, indices: int | list[int] | None = None,
                              intermediates_only: bool = False):
        """Stage outputs (see ``feature_info``), as timm's ``forward_intermediates``: ``indices`` is a list of
        stage indices (negative counts from the end), an int n for the last n stages, or None for all
        (:meth:`FeatureInfo.take_indices`); the outputs come in stage order.
        Returns ``(final features, [stage outputs])`` (the final features as :meth:`forward_features` gives them),
        or only the list with ``intermediates_only``."""
        features, last, _ = self._run(x, set(self.feature_info.take_indices(indices)))
        return features if intermediates_only else (self.head_act(last), features)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The final unpooled feature map (B, C, H, W), before global pooling (timm's convention): a chain
        network's head conv and NAS-Bench-201's last BN-ReLU included."""
        return self.head_act(self._run(x, set())[1])

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Logits from :meth:`forward_features`' output."""
        return self.classifier(self.global_pool(features).flatten(1))

    def forward(self, x: torch.Tensor):
        """Logits (B, classes); in training with an auxiliary head, (logits, auxiliary logits)."""
        _, last, aux_logits = self._run(x, set())
        logits = self.logits(last)
        if self.training and self.auxiliary_head is not None:
            return logits, aux_logits
        return logits


def _last_linear(head: nn.Module) -> nn.Linear:
    """The final linear layer of a classifier: the classifier itself, or the last module of a sequential head."""
    linear = head[-1] if isinstance(head, nn.Sequential) else head
    assert isinstance(linear, nn.Linear)  # every head ends with its linear layer
    return linear


def _fresh_linear(old: nn.Module, num_classes: int) -> nn.Linear:
    """A freshly initialised linear layer in place of ``old`` for ``num_classes``, on its device and dtype."""
    assert isinstance(old, nn.Linear)  # every head ends with its linear layer
    return nn.Linear(old.in_features, num_classes).to(old.weight)
