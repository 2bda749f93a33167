"""Reading a benchmark's bz2-compressed pickles as data, never as code.

NATS-Bench stores its results as ``pickle.dump`` of plain containers and numpy scalars, bz2-compressed. A pickle
can name any importable callable and call it, so files are read with an unpickler that resolves only the few
globals such data needs and refuses every other one before it is imported, let alone called.
"""

from __future__ import annotations

import bz2
import io
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from dmc.errors import DmcError, InvalidInputError

MAX_DECOMPRESSED_BYTES = 256 * 2**20
"""Upper bound on one file's decompressed pickle (NATS-Bench's files are a few MB): a bz2 bomb is refused in one
line instead of filling the memory."""


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


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds containers, numbers, strings, ``OrderedDict`` and numpy scalars and arrays, and
    refuses any other global with an :class:`InvalidInputError` naming ``source`` and the global."""

    def __init__(self, stream, source: str):
        super().__init__(stream, encoding="latin1")
        self.source = source
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        key = (_OLD_MODULES.get(module, module), name)
        if key in self._allowed:
            return self._allowed[key]
        raise InvalidInputError(f"{self.source}: the pickle refers to {key[0]}.{name}, which benchmark data never "
                                "holds: refused (the file is read as data and nothing in it was run)",
                                "use the archive as published; never open this file with pickle.load")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not data")


def read_pickle_bz2(path: str | Path, what: str) -> Any:
    """Decompresses and unpickles ``path`` with :class:`RestrictedUnpickler`.

    ``what`` names the file in errors (e.g. "NATS-Bench meta file"). A missing file, a stream that is not bz2
    or is truncated, a pickle that is corrupt or refers to a refused global: each is one
    :class:`InvalidInputError` naming the file. Other file-system errors (permissions, ...) propagate as ``OSError``.
    """
    path = Path(path)
    try:
        raw = open(path, "rb")
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise InvalidInputError(f"{path}: a folder, not a {what}") from None
    with raw:
        try:
            with bz2.BZ2File(raw) as stream:
                data = stream.read(MAX_DECOMPRESSED_BYTES + 1)
        except (OSError, EOFError, ValueError) as exc:
            if isinstance(exc, OSError) and exc.errno is not None:
                raise  # reading failed (the disk, not the data)
            raise InvalidInputError(f"{path}: not a bz2-compressed {what} ({exc})",
                                    "the file is damaged or truncated: download and extract the archive again") \
                from None
    if len(data) > MAX_DECOMPRESSED_BYTES:
        raise InvalidInputError(f"{path}: decompresses to more than {MAX_DECOMPRESSED_BYTES // 2**20} MiB, far more "
                                f"than a {what} holds", "the file is not part of the published archive")
    try:
        return RestrictedUnpickler(io.BytesIO(data), str(path)).load()
    except DmcError:
        raise
    except Exception as exc:  # any failure to rebuild a hostile or damaged pickle is a property of the file
        detail = (str(exc).strip().splitlines() or [""])[0][:200]
        raise InvalidInputError(f"{path}: not a readable {what} (corrupt pickle: {type(exc).__name__}: {detail})",
                                "the file is damaged: download and extract the archive again") from None
