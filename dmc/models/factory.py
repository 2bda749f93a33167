"""Building networks by name: a registered model, a genotype file or a genotype, with optional pretrained weights."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dmc import compiler
from dmc.compiler import BuildArgs, CompiledNetwork
from dmc.compiler.source import resolve_genotype
from dmc.errors import InvalidInputError
from dmc.families import AnyGenotype, AnySpace
from dmc.models.pretrained import load_pretrained
from dmc.models.registry import find_model, model_hint

ModelSource = str | os.PathLike | AnyGenotype
"""A registered model's name, a genotype file (dmc JSON, DARTS text, NAS-Bench-201 string) or a genotype."""


def resolve_model(source: ModelSource) -> tuple[AnyGenotype, BuildArgs | None]:
    """The genotype of ``source`` and its registered build arguments (None: build it as searched)."""
    if not isinstance(source, (str, os.PathLike)):
        if not hasattr(source, "kind") or not hasattr(source, "to_dict"):
            raise InvalidInputError("expected a model name, a genotype file or a genotype, got "
                                    f"{type(source).__name__}")
        return source, None
    name = os.fspath(source)
    entry = find_model(name)
    if entry is not None:
        return entry.genotype, entry.build_args
    if not Path(name).exists():
        raise InvalidInputError(f"{name}: no such registered model or genotype file", model_hint(name))
    return resolve_genotype(name), None


def build_network(source: ModelSource, build_args: BuildArgs | None = None, *,
                  space: AnySpace | None = None, **overrides: Any) -> CompiledNetwork:
    """:func:`dmc.compiler.build_network` of a registered model's name (``"DARTS_V2"``), a genotype file or a genotype:
    built with ``build_args`` (default: the model's registered ones, else as searched), ``overrides`` changing single
    fields (``num_classes``, ``in_channels``, ``auxiliary``, a cell network's ``style``, ``channels``, ``layers``, a
    chain network's ``width``); with ``space``, the genotype must come from it."""
    genotype, registered = resolve_model(source)
    return compiler.build_network(genotype, build_args or registered, space=space, **overrides)


def create_model(name_or_genotype: ModelSource, pretrained: bool | str | os.PathLike = False,
                 **settings: Any) -> CompiledNetwork:
    """The network of a registered model (``dmc.create_model("FairNAS_A")``, see :func:`dmc.models.list_models`), a
    genotype file or a genotype, as timm's ``create_model``: ``settings`` are build settings (``num_classes``,
    ``width``, ``channels``, ``layers``, ``in_channels``, ``auxiliary``, ``style``, see :func:`build_network`).

    ``pretrained=PATH`` loads a checkpoint of the same architecture (see :func:`dmc.models.load_pretrained`): a dmc
    network file or training checkpoint, or another code's state dict (torchvision's ``mobilenet_v2``, the FairNAS
    authors' FairNAS-A/B/C, ...). dmc bundles no weights, so ``pretrained=True`` is refused.
    """
    if pretrained is True:
        raise InvalidInputError("dmc bundles no pretrained weights",
                                "pass pretrained=PATH: a checkpoint of the same architecture")
    if not (pretrained is False or pretrained is None or isinstance(pretrained, (str, os.PathLike))):
        raise InvalidInputError(f"pretrained={pretrained!r}: expected a checkpoint's path or False")
    network = build_network(name_or_genotype, **settings)
    if isinstance(pretrained, (str, os.PathLike)):
        load_pretrained(network, pretrained)
    return network
