"""Run-time plumbing shared by search and training: devices, seeding, RNG snapshots, evaluation, divergence."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sized
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from dmc.errors import NamedSettingsError, SettingError


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when a GPU is visible; asking for CUDA without one is an input error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SettingError(f"device {name!r} requested but no GPU is visible", "use {device} cpu or auto")
    return torch.device(name)


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(deterministic, warn_only=False)
    torch.backends.cudnn.benchmark = not deterministic


def rng_state() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) generator states, in types ``weights_only`` loading accepts."""
    numpy_state = np.random.get_state(legacy=True)
    assert isinstance(numpy_state, tuple), "numpy's global generator is MT19937, whose legacy state is a tuple"
    kind, keys, pos, has_gauss, cached = numpy_state
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached": float(cached)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_tuples(state["python"]))
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def dataset_size(dataset: Dataset) -> int:
    """``len(dataset)``: torch's ``Dataset`` type declares no ``__len__``, but the map-style datasets dmc uses have
    one."""
    return len(cast(Sized, dataset))


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader, device: torch.device,
             total: Callable[[list[float]], list[float]] = list) -> tuple[float, float]:
    """Mean cross-entropy and top-1 accuracy of ``model`` (in eval mode) over ``loader``; ``total`` sums the
    counts over the processes of a distributed run (:meth:`dmc.distributed.Distributed.sum`), each of which
    evaluates its own share."""
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits = model(x)
        total_loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
    summed_loss, summed_correct, summed_seen = total([total_loss, correct, seen])
    return summed_loss / max(summed_seen, 1), summed_correct / max(summed_seen, 1)


def check_finite(value: float, what: str, epoch: int, step: int | None, run_dir: Path) -> float:
    """Returns ``value``; a NaN or infinite one stops the run with one line naming the epoch and step.

    Nothing of the diverged epoch has been written then: ``last.pt`` keeps the last good epoch.
    """
    if math.isfinite(value):
        return value
    where = f"epoch {epoch}, step {step}" if step is not None else f"epoch {epoch} (evaluation)"
    kept = f"{run_dir}/last.pt keeps epoch {epoch - 1}" if epoch > 0 else "no epoch had finished"
    raise NamedSettingsError(f"{what} became {value} at {where}: the run diverged and stopped ({kept})",
                             "lower the learning rate ({lr}) and start a new run")
