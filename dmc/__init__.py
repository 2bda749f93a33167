"""dmc: a genotype compiler and deployment toolchain for DARTS- neural architecture search.

The core (this package) depends on torch only; ``dmc.exporters`` (ONNX) and ``dmc.detection``
(MMDetection) build on it and are imported only where they are used.
"""

from dmc.errors import DmcError, InvalidInputError
from dmc.version import __version__

__all__ = ["DmcError", "InvalidInputError", "__version__"]
