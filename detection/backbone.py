"""`DmcBackbone`: a compiled dmc network as an MMDetection backbone (registered in mmdet's ``MODELS``).

    backbone=dict(type="DmcBackbone", genotype="DARTS_V2", channels=16, layers=8)
    backbone=dict(type="DmcBackbone", genotype="FairNAS_A", width=0.5)
    backbone=dict(type="DmcBackbone", checkpoint="runs/train/best.pt", out_indices=(1, 2, 3))

Two families serve: DARTS-family cell genotypes build DARTS's ImageNet-style network (two stride-2 stems,
overall stride 8 before the first cell; sized by ``channels`` and ``layers``), and chain genotypes
(FairNAS, NoisyDARTS, MobileNetV2, or a chain search's) build their own skeleton (sized by ``width``).
By default the backbone returns the stage outputs at strides 8, 16 and 32 (C3-C5, what RetinaNet's FPN
reads). Channels and strides come from the network's ``feature_info`` (:func:`backbone_channels`), never
from hand-copied lists.
"""

from __future__ import annotations

from pathlib import Path

import torch
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import nn

from dmc.compiler import CompiledNetwork, build_network
from dmc.compiler.saved import NetworkFile, read_network_file
from dmc.compiler.source import resolve_genotype
from dmc.errors import InvalidInputError
from dmc.families import AnyGenotype, family_of
from dmc.genotype import genotype_from_dict

DETECTION_STRIDES = (8, 16, 32)
"""Strides of the stage outputs a RetinaNet FPN reads (C3, C4, C5)."""

_HEAD = ("classifier.", "auxiliary_head.", "head_act.")
"""Classification-only parts, never loaded into (nor kept in) a backbone."""


def _genotype(value) -> AnyGenotype:
    if isinstance(value, dict):
        return genotype_from_dict(value, "backbone genotype")
    if isinstance(value, (str, Path)):
        return resolve_genotype(value)
    return value  # a genotype object


def build_backbone_network(genotype=None, checkpoint: str | Path | None = None, channels: int | None = None,
                           layers: int | None = None, width: float | None = None) -> tuple[CompiledNetwork, str]:
    """The backbone network of ``genotype`` and/or ``checkpoint``; returns it and a note on the weights.

    A DARTS-family genotype builds the ImageNet-style network with ``channels`` and ``layers`` (default: the
    checkpoint's, else 16 and 8); a chain genotype builds its skeleton at ``width`` (default: the checkpoint's,
    else 1.0) and refuses ``channels`` and ``layers``. Weights of a checkpoint are loaded as pretraining
    wherever name and shape match (the stems of a CIFAR-style checkpoint do not; the classifier never is).
    """
    if genotype is None and checkpoint is None:
        raise InvalidInputError("DmcBackbone needs a genotype or a checkpoint")
    file = read_network_file(checkpoint) if checkpoint is not None else None
    saved = file.genotype if file else None
    chosen = _genotype(genotype) if genotype is not None else saved
    if saved is not None and chosen != saved:
        raise InvalidInputError(f"the genotype given does not match the one in {checkpoint}",
                                "pass only the checkpoint, or the genotype it was trained with")
    build = _BUILDERS.get(chosen.kind)
    if build is None:
        raise InvalidInputError(f"DmcBackbone builds DARTS-family and chain networks; got a {chosen.kind} genotype")
    family_of(chosen).check_settings(dict(channels=channels, layers=layers, width=width),
                                     f"a {chosen.kind} backbone")
    network = build(chosen, file, channels, layers, width)
    if file is None:
        return network, "randomly initialised"
    own = {k: v for k, v in network.state_dict().items() if not k.startswith(_HEAD)}
    fitting = {k: v for k, v in file.weights.items() if k in own and v.shape == own[k].shape}
    network.load_state_dict(fitting, strict=False)
    return network, f"{len(fitting)} of {len(own)} backbone tensors loaded from {checkpoint}"


def _cell_network(genotype: AnyGenotype, file: NetworkFile | None, channels, layers, width) -> CompiledNetwork:
    """DARTS's ImageNet-style network (stride 8 before the first cell), at the checkpoint's size or 16 x 8."""
    saved = file.build_args.macro if file else None
    layers = layers or (saved.layers if saved else 8)
    return build_network(genotype, style="imagenet", channels=channels or (saved.channels if saved else 16),
                         layers=layers, reductions=saved.reductions if saved and layers == saved.layers else None)


def _chain_network(genotype: AnyGenotype, file: NetworkFile | None, channels, layers, width) -> CompiledNetwork:
    """The chain's skeleton at the checkpoint's width (whose weights fit no other), or ``width``."""
    if file is not None:
        saved = file.build_args.macro.width
        if width is not None and width != saved:
            raise InvalidInputError(f"{file.path} holds a chain network of width {saved:g}: its weights do not fit "
                                    f"width {width:g}", "drop width, or pass the genotype alone to start afresh")
        width = saved
    return build_network(genotype, width=width)


_BUILDERS = {"darts": _cell_network, "chain": _chain_network}
"""The families DmcBackbone builds: NAS-Bench-201's networks end at stride 4, too shallow for an FPN."""


def detection_out_indices(network: CompiledNetwork) -> tuple[int, ...]:
    """The stages whose outputs have strides 8, 16 and 32 (the deepest stage of each stride), from ``feature_info``."""
    strides = network.feature_info.reduction()
    missing = [s for s in DETECTION_STRIDES if s not in strides]
    if missing:
        raise InvalidInputError(f"the network has no stage output at stride {missing[0]} (its stages have strides "
                                f"{strides})", "give out_indices: the stages to feed the FPN")
    return tuple(max(i for i, s in enumerate(strides) if s == stride) for stride in DETECTION_STRIDES)


def backbone_channels(network: CompiledNetwork, out_indices) -> tuple[list[int], list[int]]:
    """(channels, strides) of the stage outputs ``out_indices``, from ``feature_info``."""
    return network.feature_info.channels(out_indices), network.feature_info.reduction(out_indices)


@MODELS.register_module()
class DmcBackbone(BaseModule):
    """A dmc network returning a tuple of stage feature maps.

    Args:
        genotype: genotype file, published name (``DARTS_V2``, ``FairNAS_A``), dmc genotype dict,
            :class:`Genotype` or :class:`ChainGenotype`.
        checkpoint: a `dmc train` / `dmc compile` file; its weights initialise the backbone (pretraining).
        channels, layers: a cell network's width and cell count (default: the checkpoint's, else 16 and 8).
        width: a chain network's width multiplier (default: the checkpoint's, else 1.0).
        out_indices: stages to return (see ``feature_info``; negative indices count from the end), returned in
            stage order; default: the stages at strides 8, 16, 32 (1, 2, 3 for cell networks, 2, 3, 4 for chain
            networks).
        frozen_stages: freeze the stem(s) and the blocks up to that stage; -1 freezes nothing.
        norm_eval: keep BatchNorm layers in eval mode while training.
    """

    def __init__(self, genotype=None, checkpoint: str | None = None, channels: int | None = None,
                 layers: int | None = None, out_indices=None, frozen_stages: int = -1,
                 norm_eval: bool = False, init_cfg=None, width: float | None = None):
        super().__init__(init_cfg=init_cfg)
        self.network, self.weights_note = build_backbone_network(genotype, checkpoint, channels, layers, width)
        stages = len(self.network.feature_info)
        out_indices = detection_out_indices(self.network) if out_indices is None else \
            tuple(self.network.feature_info.take_indices(out_indices, "out_indices"))
        if not -1 <= frozen_stages < stages:
            raise InvalidInputError(f"frozen_stages {frozen_stages} is out of range (-1..{stages - 1})")
        self.out_indices, self.frozen_stages, self.norm_eval = out_indices, frozen_stages, norm_eval
        self.out_channels, self.strides = backbone_channels(self.network, out_indices)
        # the classification head (a chain network's 1x1 head conv included) is not part of a backbone
        self.network.classifier = nn.Identity()
        self.network.head_act = nn.Identity()
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
