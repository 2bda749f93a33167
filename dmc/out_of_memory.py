"""Running out of memory: one line that says what did not fit and which settings make it fit, not a traceback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from dmc.errors import DmcError

_MESSAGES = ("out of memory", "not enough memory", "can't allocate memory", "cannot allocate memory")
"""How torch's allocators say it in a RuntimeError: CUDA's and MPS's ("... out of memory"), the CPU allocator's
("DefaultCPUAllocator: not enough memory" or, in older versions, "can't allocate memory"), the OS's (ENOMEM)."""


class OutOfMemory(DmcError):
    """The run needs more memory than the machine has: an environment limit (exit 1), fixed with smaller settings."""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure: Python's MemoryError, torch's OutOfMemoryError, or a RuntimeError
    in which a CPU or GPU allocator says so."""
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _MESSAGES)


@contextlib.contextmanager
def out_of_memory_as(message: str, hint: str) -> Iterator[None]:
    """Turns an allocation failure inside the block into :class:`OutOfMemory` with ``message`` (what ran out) and
    ``hint`` (the settings that shrink it); other errors pass untouched."""
    try:
        yield
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            raise
        raise OutOfMemory(message, hint) from None


def smaller(flags: list[str]) -> str:
    """``a smaller --a, --b or --c``: the settings a hint asks to lower."""
    return f"a smaller {', '.join(flags[:-1])} or {flags[-1]}" if len(flags) > 1 else f"a smaller {flags[0]}"
