"""`DmcBackbone`: a compiled dmc network as an MMDetection backbone (registered in mmdet's ``MODELS``).

    backbone=dict(type="DmcBackbone", genotype="DARTS_V2", channels=16, layers=8, out_indices=(1, 2, 3))
    backbone=dict(type="DmcBackbone", checkpoint="runs/train/best.pt", out_indices=(1, 2, 3))

The network is DARTS's ImageNet-style one (two stride-2 stems, overall stride 8 before the first cell),
so the stage outputs have strides 8, 16 and 32 as FPN expects. Channels and strides come from the
network's ``feature_info`` (:func:`backbone_channels`), never from hand-copied lists.
"""

from __future__ import annotations

from pathlib import Path

import torch
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import nn

from dmc.compiler import CompiledNetwork, build_network
from dmc.compiler.saved import read_network_file
from dmc.compiler.source import resolve_genotype
from dmc.errors import InvalidInputError
from dmc.genotype import Genotype


def _genotype(value) -> Genotype:
    if isinstance(value, Genotype):
        return value
    if isinstance(value, dict):
        return Genotype.from_dict(value, "backbone genotype")
    return resolve_genotype(value)


def build_backbone_network(genotype=None, checkpoint: str | Path | None = None, channels: int | None = None,
                           layers: int | None = None) -> tuple[CompiledNetwork, str]:
    """The ImageNet-style network of ``genotype`` and/or ``checkpoint``; returns it and a note on the weights.

    Weights of a training checkpoint are loaded as pretraining wherever name and shape match (the stems of
    a CIFAR-style checkpoint do not, nor its classifier).
    """
    if genotype is None and checkpoint is None:
        raise InvalidInputError("DmcBackbone needs a genotype or a checkpoint")
    file = read_network_file(checkpoint) if checkpoint is not None else None
    saved = file.genotype if file else None
    chosen = _genotype(genotype) if genotype is not None else saved
    if saved is not None and chosen != saved:
        raise InvalidInputError(f"the genotype given does not match the one in {checkpoint}",
                                "pass only the checkpoint, or the genotype it was trained with")
    if chosen.kind != "darts":
        raise InvalidInputError(f"DmcBackbone builds DARTS-family networks; got a {chosen.kind} genotype")
    saved_args = file.build_args if file else None
    layers = layers or (saved_args.layers if saved_args else 8)
    network = build_network(chosen, style="imagenet", channels=channels or (saved_args.channels if saved_args else 16),
                            layers=layers,
                            reductions=saved_args.reductions if saved_args and layers == saved_args.layers else None)
    if file is None:
        return network, "randomly initialised"
    own = network.state_dict()
    fitting = {k: v for k, v in file.weights.items()
               if k in own and v.shape == own[k].shape and not k.startswith(("classifier.", "auxiliary_head."))}
    network.load_state_dict(fitting, strict=False)
    return network, f"{len(fitting)} of {len(own)} tensors loaded from {checkpoint}"


def backbone_channels(network: CompiledNetwork, out_indices) -> tuple[list[int], list[int]]:
    """(channels, strides) of the stage outputs ``out_indices``, from ``feature_info``."""
    infos = network.feature_info
    return [infos[i]["num_chs"] for i in out_indices], [infos[i]["reduction"] for i in out_indices]


@MODELS.register_module()
class DmcBackbone(BaseModule):
    """A dmc network returning a tuple of stage feature maps.

    Args:
        genotype: genotype file, published name (``DARTS_V2``), dmc genotype dict, or :class:`Genotype`.
        checkpoint: a `dmc train` / `dmc compile` file; its weights initialise the backbone (pretraining).
        channels, layers: the network's width and cell count (default: the checkpoint's, else 16 and 8).
        out_indices: stages to return (see ``feature_info``; 1, 2, 3 have strides 8, 16, 32).
        frozen_stages: freeze the stems (0) and the cells up to that stage; -1 freezes nothing.
        norm_eval: keep BatchNorm layers in eval mode while training.
    """

    def __init__(self, genotype=None, checkpoint: str | None = None, channels: int | None = None,
                 layers: int | None = None, out_indices=(1, 2, 3), frozen_stages: int = -1,
                 norm_eval: bool = False, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.network, self.weights_note = build_backbone_network(genotype, checkpoint, channels, layers)
        stages = len(self.network.feature_info)
        out_indices = tuple(out_indices)
        if not out_indices or any(not isinstance(i, int) or not 0 <= i < stages for i in out_indices) \
                or list(out_indices) != sorted(set(out_indices)):
            raise InvalidInputError(f"out_indices {out_indices} are invalid: the network has stages 0..{stages - 1} "
                                    f"(strides {[f['reduction'] for f in self.network.feature_info]})",
                                    "give increasing stage indices, e.g. (1, 2, 3)")
        if not -1 <= frozen_stages < stages:
            raise InvalidInputError(f"frozen_stages {frozen_stages} is out of range (-1..{stages - 1})")
        self.out_indices, self.frozen_stages, self.norm_eval = out_indices, frozen_stages, norm_eval
        self.out_channels, self.strides = backbone_channels(self.network, out_indices)
        # the classification head is not part of a backbone
        self.network.classifier = nn.Identity()
        self.network.auxiliary_head = None
        self._freeze()

    def _frozen_modules(self) -> list[nn.Module]:
        if self.frozen_stages < 0:
            return []
        net = self.network
        modules = [net.stem] + ([net.stem1] if net.stem1 is not None else [])
        last_block = net.feature_info[self.frozen_stages]["block"]
        return modules + [net.blocks[i] for i in range(last_block + 1)]

    def _freeze(self) -> None:
        for module in self._frozen_modules():
            module.eval()
            for p in module.parameters():
                p.requires_grad = False

    def init_weights(self) -> None:
        # weights come from the checkpoint (pretraining) or PyTorch's default initialisation
        if self.init_cfg is not None:
            super().init_weights()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.network.forward_intermediates(x, self.out_indices, intermediates_only=True))

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self
