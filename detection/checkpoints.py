"""Loading mmengine checkpoints safely under torch >= 2.6.

mmengine 0.10.7 calls ``torch.load`` without ``weights_only``, which torch >= 2.6 defaults to True,
so resuming an mmengine run fails on the non-tensor objects its checkpoints hold: numpy arrays and
scalars in ``meta``, and ``HistoryBuffer``s in the message hub, whose statistics methods pickle as
``getattr(HistoryBuffer, "min")``. Rather than turning ``weights_only`` off (which would let a
checkpoint run arbitrary code), we allowlist exactly those objects, with a ``getattr`` that only
resolves HistoryBuffer's registered statistics methods.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer


# HistoryBuffer fills _statistics_methods with these four only when a first buffer is made.
_BUILTIN_STATISTICS = ("min", "max", "current", "mean")


def _history_buffer_getattr(owner: object, name: str):
    """``getattr`` restricted to what mmengine checkpoints need: HistoryBuffer's statistics methods."""
    if owner is HistoryBuffer and (name in _BUILTIN_STATISTICS or name in HistoryBuffer._statistics_methods):
        return getattr(HistoryBuffer, name)
    raise torch.serialization.pickle.UnpicklingError(
        f"refusing getattr({owner!r}, {name!r}) while loading a checkpoint")


def _numpy_globals() -> list:
    dtypes = [type(np.dtype(t)) for t in (np.float64, np.float32, np.float16, np.int64, np.int32, np.uint8, np.bool_)]
    return [np._core.multiarray._reconstruct, np._core.multiarray.scalar, np.ndarray, np.dtype, *dtypes]


@functools.cache
def allow_mmengine_checkpoints() -> None:
    """Lets ``torch.load(..., weights_only=True)`` read checkpoints written by mmengine's Runner.

    Idempotent; call it before resuming or loading an mmengine checkpoint.
    """
    torch.serialization.add_safe_globals([
        *_numpy_globals(),
        HistoryBuffer,
        (_history_buffer_getattr, "builtins.getattr"),
        (_history_buffer_getattr, "__builtin__.getattr"),
    ])
