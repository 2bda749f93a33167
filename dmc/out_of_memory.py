"""Running out of memory: one line that says what did not fit and which settings make it fit, not a traceback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from dmc.errors import NamedSettingsError

_MESSAGES = ("out of memory", "not enough memory", "can't allocate memory", "cannot allocate memory")
"""How torch's allocators say it in a RuntimeError: CUDA's and MPS's ("... out of memory"), the CPU allocator's
("DefaultCPUAllocator: not enough memory" or, in older versions, "can't allocate memory"), the OS's (ENOMEM)."""


class OutOfMemory(NamedSettingsError):
    """The run needs more memory than the machine has: an environment limit (exit 1), fixed with smaller settings
    (its hint names them as a :class:`NamedSettingsError` does)."""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure: Python's MemoryError, torch's OutOfMemoryError, or a RuntimeError
    in which a CPU or GPU allocator says so."""
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _MESSAGES)


@contextlib.contextmanager
def out_of_memory_as(message: str, hint: str) -> Iterator[None]:
    """Turns an allocation failure inside the block into :class:`OutOfMemory` with ``message`` (what ran out) and
    ``hint`` (a template naming the settings that shrink it, see :func:`smaller`); other errors pass untouched."""
    try:
        yield
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            raise
        raise OutOfMemory(message, hint) from None


def smaller(settings: list[str]) -> str:
    """``a smaller {a}, {b} or {c}``: the settings a hint asks to lower, as a template that names the fields in
    Python and the flags on the command line (:class:`dmc.errors.NamedSettingsError`)."""
    named = [f"{{{setting}}}" for setting in settings]
    return f"a smaller {', '.join(named[:-1])} or {named[-1]}" if len(named) > 1 else f"a smaller {named[0]}"
