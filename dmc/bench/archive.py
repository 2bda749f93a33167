"""Reading a benchmark's bz2-compressed pickles as data, never as code.

NATS-Bench stores its results as ``pickle.dump`` of plain containers and numpy scalars, bz2-compressed; they are
unpickled by :class:`dmc.pickles.DataUnpickler`, which refuses any global data does not need before importing it.
"""

from __future__ import annotations

import bz2
import io
from pathlib import Path
from typing import Any

from dmc.errors import DmcError, InvalidInputError
from dmc.pickles import DataUnpickler, RefusedGlobal, RefusedNumpyState

MAX_DECOMPRESSED_BYTES = 256 * 2**20
"""Upper bound on one file's decompressed pickle (NATS-Bench's files are a few MB): a bz2 bomb is refused in one
line instead of filling the memory."""


class RestrictedUnpickler(DataUnpickler):
    """A :class:`dmc.pickles.DataUnpickler` of every data global that refuses any other with an
    :class:`InvalidInputError` naming ``source`` and the global."""

    def __init__(self, stream, source: str):
        super().__init__(stream)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except RefusedGlobal as refused:
            raise InvalidInputError(f"{self.source}: the pickle refers to {refused.module}.{name}, which benchmark "
                                    "data never holds: refused (the file is read as data and nothing in it was run)",
                                    "use the archive as published; never open this file with pickle.load") from None


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
    except RefusedNumpyState as refused:
        raise InvalidInputError(f"{path}: {refused}: refused (the file is read as data and nothing in it was run)",
                                "use the archive as published; never open this file with pickle.load") from None
    except Exception as exc:  # any failure to rebuild a hostile or damaged pickle is a property of the file
        detail = (str(exc).strip().splitlines() or [""])[0][:200]
        raise InvalidInputError(f"{path}: not a readable {what} (corrupt pickle: {type(exc).__name__}: {detail})",
                                "the file is damaged: download and extract the archive again") from None
