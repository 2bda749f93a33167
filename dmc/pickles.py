"""Pickles from users, read as data and never as code.

A pickle can name any importable callable and call it. :class:`DataUnpickler` resolves only the globals that plain
data needs (containers, numpy dtypes, scalars and arrays in the form numpy writes them) and refuses every other one
before it is imported, let alone called. CIFAR batches (:mod:`dmc.data.cifar`) and NATS-Bench's archive
(:mod:`dmc.bench.archive`) are read through it; :func:`torch_safe_globals` gives torch's ``weights_only`` loader the
same numpy globals (mmengine checkpoints hold numpy arrays and scalars).

The numpy globals are the other risk: numpy trusts the state a pickle hands it (an array of 1000 objects rebuilt from
a one-element list reads past the list and crashes the process). So numpy never sees a pickle's state unchecked:
``numpy.dtype`` resolves to :class:`PickledDtype`, which becomes a numpy dtype only if it describes a plain one
(booleans, numbers, bytes or str: no objects, no fields); an array is a :class:`DataArray`, whose state must hold
such a dtype and exactly the bytes its shape needs before numpy reads it; a scalar likewise.
"""

from __future__ import annotations

import math
import pickle
import re
from collections import OrderedDict
from collections.abc import Set
from typing import Any, Literal

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


def _empty_bytes() -> bytes:
    # ... and an empty bytes object (an empty array's buffer) as bytes(): the only call of it that data makes
    return b""


def _as_bytes(value: Any) -> Any:
    # Python 2 pickles hold a buffer as str; unpickled with encoding="latin1" it comes back as str
    return value.encode("latin1") if isinstance(value, str) else value


def _as_text(value: Any) -> Any:
    # ... and with encoding="bytes" a str (a dtype's name, its byte order) comes back as bytes
    return value.decode("latin1") if isinstance(value, bytes) else value


class RefusedNumpyState(pickle.UnpicklingError):
    """A pickle's numpy dtype, array or scalar is not plain data (objects, fields, or bytes that do not match)."""


_PLAIN_DTYPE = re.compile(r"[biufcSU][0-9]+")
"""The dtype names numpy pickles plain data under: booleans, (unsigned) integers, floats, complex numbers, bytes and
str."""

_BYTE_ORDERS: dict[str, Literal["<", ">", "="]] = {"<": "<", ">": ">", "|": "=", "=": "="}


class PickledDtype:
    """``numpy.dtype(name, align, copy)`` as a pickle calls it, and the state the pickle then sets: kept as given and
    turned into a numpy dtype by :meth:`checked` only, so that numpy's own ``__setstate__`` (which lets a float64
    declare that it holds objects) never runs on a pickle's state. A dtype stored as a value (not as an array's or a
    scalar's) stays a ``PickledDtype``: data files do not hold them."""

    def __init__(self, name: Any = None, align: Any = False, copy: Any = False):
        self.name = _as_text(name)
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def checked(self) -> np.dtype:
        """The numpy dtype, if the name and state describe a plain one; else :class:`RefusedNumpyState`."""
        if not isinstance(self.name, str) or not _PLAIN_DTYPE.fullmatch(self.name):
            raise RefusedNumpyState(f"numpy dtype {self.name!r} is not plain data (booleans, numbers, bytes, str)")
        dtype = np.dtype(self.name)
        order = "|"
        if self.state is not None:
            state = self.state
            # (version 3, byte order, subarray, names, fields, item size, alignment, flags[, metadata])
            if not (isinstance(state, tuple) and (len(state) == 8 or len(state) == 9 and state[8] is None)):
                raise RefusedNumpyState(f"numpy dtype {self.name}: its state is not a plain dtype's")
            order, subarray, names, fields, item_size = _as_text(state[1]), *state[2:6]
            if (order not in _BYTE_ORDERS or (subarray, names, fields) != (None, None, None)
                    or type(item_size) is not int or item_size not in (-1, dtype.itemsize)):
                raise RefusedNumpyState(f"numpy dtype {self.name}: its state is not a plain dtype's (fields, "
                                        "subarrays, or a size or byte order it cannot have)")
        if dtype.itemsize == 0:
            raise RefusedNumpyState(f"numpy dtype {self.name} has no size")
        return dtype.newbyteorder(_BYTE_ORDERS[order])


def _checked_dtype(dtype: Any) -> np.dtype:
    if not isinstance(dtype, PickledDtype):
        raise RefusedNumpyState(f"{type(dtype).__name__} where numpy needs a dtype")
    return dtype.checked()


class DataArray(np.ndarray):
    """A numpy array read from a pickle: an ``ndarray`` in all but its type (``np.asarray`` gives a plain one, and
    pickling writes it as one). Its state is checked before numpy reads it: a plain dtype, a shape of sizes, and
    exactly the bytes that shape needs."""

    def __new__(cls) -> DataArray:
        return super().__new__(cls, (0,), np.uint8)

    def __setstate__(self, state: Any) -> None:
        super().__setstate__(_checked_array_state(state))

    def __reduce_ex__(self, protocol: Any) -> Any:
        return np.asarray(self).__reduce_ex__(protocol)


def _checked_array_state(state: Any) -> tuple:
    # numpy's array state: ([version 1,] shape, dtype, Fortran order, raw bytes)
    if not isinstance(state, tuple) or len(state) not in (4, 5) or len(state) == 5 and state[0] != 1:
        raise RefusedNumpyState("numpy array state is not an array's ([1,] shape, dtype, order, bytes)")
    shape, dtype, fortran, raw = state[-4:]
    dtype, raw = _checked_dtype(dtype), _as_bytes(raw)
    if not (isinstance(shape, tuple) and len(shape) <= 64 and all(type(n) is int and n >= 0 for n in shape)):
        raise RefusedNumpyState(f"numpy array shape {str(shape)[:80]} is not a shape")
    if not isinstance(raw, bytes) or fortran not in (True, False):
        raise RefusedNumpyState("numpy array data is not raw bytes")
    if len(raw) != math.prod(shape) * dtype.itemsize:
        raise RefusedNumpyState(f"numpy array of shape {shape} and dtype {dtype} needs "
                                f"{math.prod(shape) * dtype.itemsize} bytes, the pickle holds {len(raw)}")
    return 1, shape, dtype, bool(fortran), raw


class _NdarrayName:
    """What ``numpy.ndarray`` resolves to: only :func:`_reconstruct_array` accepts it; it cannot be called, so a
    pickle cannot allocate an array of any shape it likes."""


_NDARRAY = _NdarrayName()


def _reconstruct_array(subtype: Any, shape: Any, typecode: Any) -> DataArray:
    # numpy pickles an array as _reconstruct(ndarray, (0,), b"b") then sets its state (shape, dtype, raw bytes):
    # its size then comes from bytes in the file, bounded like the file
    if subtype is not _NDARRAY or tuple(shape) != (0,):
        raise pickle.UnpicklingError("_reconstruct is only called as numpy pickles arrays")
    return DataArray()


def _scalar(dtype: Any, raw: Any) -> Any:
    dtype, raw = _checked_dtype(dtype), _as_bytes(raw)
    if not isinstance(raw, bytes) or len(raw) != dtype.itemsize:
        raise RefusedNumpyState(f"a numpy {dtype} scalar needs {dtype.itemsize} bytes of data")
    return _multiarray().scalar(dtype, raw)


def _allowed_globals() -> dict[tuple[str, str], Any]:
    return {
        ("collections", "OrderedDict"): OrderedDict,
        ("builtins", "set"): set,  # protocols < 4 rebuild sets by calling set(list)
        ("builtins", "frozenset"): frozenset,
        ("_codecs", "encode"): _latin1_encode,
        **_numpy_globals(),
    }


def _numpy_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {("numpy", "dtype"): PickledDtype, ("numpy", "ndarray"): _NDARRAY,
                                           ("builtins", "bytes"): _empty_bytes}
    # numpy 1.x writes numpy.core.multiarray, numpy 2 numpy._core.multiarray: both name the same functions
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "scalar")] = _scalar
        allowed[(module, "_reconstruct")] = _reconstruct_array
    return allowed


def torch_safe_globals() -> list:
    """The numpy globals of :class:`DataUnpickler`, for ``torch.serialization.safe_globals`` (scoped to one load):
    a ``weights_only`` load then rebuilds numpy values as checked data too, never through numpy's own pickling."""
    names = [(value, f"{module}.{name}") for (module, name), value in _numpy_globals().items()]
    # torch reads protocol 2's Python 2 names as written; it sets a state only on objects of allowed types
    return names + [(_empty_bytes, "__builtin__.bytes"), (DataArray, f"{__name__}.DataArray")]


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
    this kind of file may use); any other global raises :class:`RefusedGlobal`, whose message ends with ``why``.
    numpy values that are not plain data raise :class:`RefusedNumpyState`; arrays come back as :class:`DataArray`."""

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
