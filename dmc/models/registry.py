"""The model registry: names -> genotypes with their default build settings and data (timm's and torchvision's
``register_model`` / ``list_models``)."""

from __future__ import annotations

import difflib
import fnmatch
import re

from dmc.compiler import BuildArgs, build_args_for
from dmc.errors import InvalidInputError
from dmc.families import AnyGenotype
from dmc.models.entry import DataConfig, ModelEntry

_MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, genotype: AnyGenotype, build_args: BuildArgs | None = None,
                   data: DataConfig | None = None) -> ModelEntry:
    """Registers ``genotype`` as the model ``name``, built with ``build_args`` (default: as searched, see
    :func:`dmc.compiler.build_args_for`), for ``data`` (default: its network style's reference dataset)."""
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"a model name must be a non-empty string, got {name!r}")
    if name in _MODELS:
        raise InvalidInputError(f"a model named {name!r} is already registered", "choose another name")
    entry = ModelEntry(name, genotype, build_args, data or DataConfig.for_build(build_args or build_args_for(genotype)))
    _MODELS[name] = entry
    return entry


def unregister_model(name: str) -> None:
    """Removes a model registered by :func:`register_model`."""
    model_entry(name)
    del _MODELS[name]


def find_model(name: str) -> ModelEntry | None:
    """The model registered as ``name``, or None."""
    return _MODELS.get(name)


def model_entry(name: str) -> ModelEntry:
    """The model registered as ``name``: its genotype, default build settings and data."""
    entry = _MODELS.get(name)
    if entry is None:
        raise InvalidInputError(f"{name}: no such registered model", model_hint(name))
    return entry


def model_hint(name: str) -> str:
    """What to say about an unknown model name: the registered names closest to it."""
    lowered = {registered.lower(): registered for registered in _MODELS}
    close = [lowered[match] for match in difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)]
    if close:
        return f"did you mean {' or '.join(close)}? (dmc.list_models() lists them all)"
    return f"registered: {', '.join(list_models()[:6])}, ... (dmc.list_models() lists them all)"


def list_models(pattern: str = "*") -> list[str]:
    """The registered names matching the shell-style ``pattern`` (``"FairNAS*"``), in natural order
    (``cifar10_s0_2`` before ``cifar10_s0_10``), as timm's ``list_models``."""
    return sorted(fnmatch.filter(_MODELS, pattern), key=_natural_key)


def _natural_key(name: str) -> list[int | str]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]
