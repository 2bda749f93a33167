"""dmc: a genotype compiler and deployment toolchain for DARTS- neural architecture search.

The core (this package) depends on torch only; ``dmc.exporters`` (ONNX) and ``dmc.detection``
(MMDetection) build on it and are imported only where they are used.

``import dmc`` loads no torch: the public API (:mod:`dmc.api`: ``dmc.create_model``, ``dmc.list_models``,
``dmc.build_network``, ``dmc.load_genotype``, ``dmc.load_space``, ...) is imported on first use. Four of its names
are also dmc's modules, and as attributes of the package they are those modules (Python's import system sets them):
``dmc.search``, ``dmc.train``, ``dmc.derive`` and ``dmc.profile``; their functions are ``dmc.search.search``,
``dmc.train.train``, ``dmc.derive.derive`` and ``dmc.profile.profile`` (or ``dmc.api.search``, ...).
"""

import importlib
from typing import Any

from dmc.errors import DmcError, InvalidInputError
from dmc.version import __version__

__all__ = ["DmcError", "InvalidInputError", "__version__"]


def __getattr__(name: str) -> Any:
    """A name of the public API, imported on first use (PEP 562): :mod:`dmc.api` needs torch."""
    if not name.startswith("_"):
        api = importlib.import_module("dmc.api")
        if name in globals():  # a module that loading dmc.api set on this package (dmc.api, dmc.search, ...)
            return globals()[name]
        if name in api.__all__:
            return getattr(api, name)
    raise AttributeError(f"module 'dmc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(importlib.import_module("dmc.api").__all__))
