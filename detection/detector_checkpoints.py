"""mmengine checkpoints: loaded as data under torch >= 2.6, and checked to be a detector checkpoint of the config.

mmengine 0.10.7 calls ``torch.load`` without ``weights_only``, which torch >= 2.6 defaults to True,
so resuming an mmengine run fails on the non-tensor objects its checkpoints hold: numpy arrays and
scalars in ``meta``, and ``HistoryBuffer``s in the message hub, whose statistics methods pickle as
``getattr(HistoryBuffer, "min")``. Rather than turning ``weights_only`` off (which would let a
checkpoint run arbitrary code), :func:`mmengine_checkpoint_globals` allowlists exactly those objects, for the
duration of one load only: numpy values through :mod:`dmc.pickles` (checked before numpy reads them), and a
``getattr`` that only resolves HistoryBuffer's registered statistics methods.
"""

from __future__ import annotations

from pathlib import Path

import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner import Runner

from dmc.errors import InvalidInputError
from dmc.pickles import torch_safe_globals

# HistoryBuffer fills _statistics_methods with these four only when a first buffer is made.
_BUILTIN_STATISTICS = ("min", "max", "current", "mean")


def _history_buffer_getattr(owner: object, name: str):
    """``getattr`` restricted to what mmengine checkpoints need: HistoryBuffer's statistics methods."""
    if owner is HistoryBuffer and (name in _BUILTIN_STATISTICS or name in HistoryBuffer._statistics_methods):
        return getattr(HistoryBuffer, name)
    raise torch.serialization.pickle.UnpicklingError(
        f"refusing getattr({owner!r}, {name!r}) while loading a checkpoint")


def mmengine_checkpoint_globals() -> torch.serialization.safe_globals:
    """A context in which ``torch.load(..., weights_only=True)`` reads checkpoints written by mmengine's Runner; the
    allowlist is torch's again when it ends."""
    return torch.serialization.safe_globals([
        *torch_safe_globals(),
        HistoryBuffer,
        (_history_buffer_getattr, "builtins.getattr"),
        (_history_buffer_getattr, "__builtin__.getattr"),
    ])


class DataCheckpointRunner(Runner):
    """mmengine's Runner, loading the checkpoint it resumes from or starts with inside
    :func:`mmengine_checkpoint_globals` (as data, with nothing allowlisted for the rest of the process)."""

    def load_or_resume(self) -> None:
        with mmengine_checkpoint_globals():
            super().load_or_resume()


def read_detector_checkpoint(path: str | Path, resume: bool = False) -> dict:
    """Loads an mmengine checkpoint (``epoch_12.pth``) as data, with one-line errors for missing, corrupt
    and foreign files (a `dmc search`/`dmc train` checkpoint is no detector); returns its ``state_dict``.

    ``resume``: also require the training state (``meta`` with epoch and iteration) that resuming reads.
    """
    path = Path(path)
    hint = "pass a .pth file written by `dmc detect train` (in its work_dir)"
    if path.is_dir():
        saved = sorted(path.glob("*.pth"), key=lambda p: p.stat().st_mtime)
        raise InvalidInputError(f"{path}: is a folder, not a checkpoint",
                                f"pass one of its checkpoints, e.g. {saved[-1]}" if saved else hint)
    if not path.is_file():
        raise InvalidInputError(f"checkpoint {path} does not exist", hint)
    try:
        with mmengine_checkpoint_globals():
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, foreign or tampered files raise many types
        raise InvalidInputError(f"{path}: corrupt or unreadable checkpoint ({type(exc).__name__})", hint) from None
    if isinstance(state, dict) and str(state.get("format", "")).startswith("dmc."):
        raise InvalidInputError(f"{path}: a {state['format']} file, not a detector checkpoint",
                                f"{hint}; a `dmc train` checkpoint becomes a backbone with `dmc detect config`")
    weights = state.get("state_dict") if isinstance(state, dict) else None
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise InvalidInputError(f"{path}: not an mmengine checkpoint (no state_dict of tensors)", hint)
    meta = state.get("meta")
    if resume and not (isinstance(meta, dict) and "epoch" in meta and "iter" in meta):
        raise InvalidInputError(f"{path}: holds weights but no training state to resume from (meta epoch, iter)",
                                "resume from a checkpoint of the same run's work_dir")
    return {k.removeprefix("module."): v for k, v in weights.items()}


def check_checkpoint_fits(model: torch.nn.Module, weights: dict, path: str | Path) -> None:
    """Refuses a checkpoint whose weights are not those of ``model``: loading it would leave tensors random."""
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    wrong = [k for k in own if k in weights and weights[k].shape != own[k].shape]
    if missing or wrong:
        detail = (f"{len(missing)} of its {len(own)} tensors missing (e.g. {missing[0]})" if missing else
                  f"{wrong[0]} is {tuple(weights[wrong[0]].shape)}, the model's {tuple(own[wrong[0]].shape)}")
        raise InvalidInputError(f"{path}: not a checkpoint of this config's model: {detail}",
                                "pass a checkpoint written by training this config")
