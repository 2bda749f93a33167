"""Pickles from users, read as data and never as code.

A pickle can name any importable callable and call it. :class:`DataUnpickler` resolves only the globals that plain
data needs (containers, numpy dtypes, scalars and arrays in the form numpy writes them) and refuses every other one
before it is imported, let alone called. CIFAR batches (:mod:`dmc.data.cifar`) and NATS-Bench's archive
(:mod:`dmc.bench.archive`) are read through it.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from collections.abc import Set
from typing import Any

import numpy as np


def _multiarray():
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    return multiarray


def _latin1_encode(text: Any, encoding: str = "latin1") -> bytes:
    # Pickle protocols < 3 store bytes (e.g. a numpy scalar's buffer) as _codecs.encode(str, "latin1"); the other
    # codecs are transformations (compression, ...) that data never needs.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r} is not data")
    return text.encode("latin1")


class _NdarrayName:
    """What ``numpy.ndarray`` resolves to: only :func:`_reconstruct_array` accepts it; it cannot be called, so a
    pickle cannot allocate an array of any shape it likes."""


_NDARRAY = _NdarrayName()


def _reconstruct_array(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    # numpy pickles an array as _reconstruct(ndarray, (0,), b"b") then sets its state (shape, dtype, raw bytes):
    # its size then comes from bytes in the file, bounded like the file
    if subtype is not _NDARRAY or tuple(shape) != (0,):
        raise pickle.UnpicklingError("_reconstruct is only called as numpy pickles arrays")
    return _multiarray()._reconstruct(np.ndarray, (0,), dtype)


def _allowed_globals() -> dict[tuple[str, str], Any]:
    scalar = _multiarray().scalar
    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): OrderedDict,
        ("builtins", "set"): set,  # protocols < 4 rebuild sets by calling set(list)
        ("builtins", "frozenset"): frozenset,
        ("_codecs", "encode"): _latin1_encode,
        ("numpy", "dtype"): np.dtype,
        ("numpy", "ndarray"): _NDARRAY,
    }
    # numpy 1.x writes numpy.core.multiarray, numpy 2 numpy._core.multiarray: both name the same functions
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "scalar")] = scalar
        allowed[(module, "_reconstruct")] = _reconstruct_array
    return allowed


_OLD_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}
"""Python 2 module names that protocol < 3 pickles use (pickle's own find_class maps them too)."""


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle named a global that data never holds (nothing was imported or called)."""

    def __init__(self, module: str, name: str, why: str):
        super().__init__(f"refusing to load {module}.{name}: {why}")
        self.module, self.name = module, name


DATA_GLOBALS: frozenset[tuple[str, str]] = frozenset(_allowed_globals())
"""Every global :class:`DataUnpickler` can resolve, as (module, name)."""


class DataUnpickler(pickle.Unpickler):
    """Unpickles containers, numbers, strings and the globals in ``names`` (a subset of :data:`DATA_GLOBALS`: what
    this kind of file may use); any other global raises :class:`RefusedGlobal`, whose message ends with ``why``."""

    def __init__(self, stream, names: Set[tuple[str, str]] = DATA_GLOBALS, why: str = "not data",
                 encoding: str = "latin1"):
        super().__init__(stream, encoding=encoding)
        self._allowed = {key: value for key, value in _allowed_globals().items() if key in names}
        self._why = why

    def find_class(self, module: str, name: str) -> Any:
        key = (_OLD_MODULES.get(module, module), name)
        if key in self._allowed:
            return self._allowed[key]
        raise RefusedGlobal(key[0], name, self._why)

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not data")
