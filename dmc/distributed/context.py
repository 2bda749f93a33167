"""One process of a (possibly) distributed run: who it is, and the few collectives search and training need.

Every method is a no-op, or the identity, on a single process, so the loops read the same either way.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import datetime
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, Subset

from dmc.distributed.environment import launch_environment
from dmc.errors import DmcError, InvalidInputError, SettingError
from dmc.runtime import dataset_size, resolve_device, restore_rng_state, rng_state

T = TypeVar("T")

LOCAL_LAUNCH_ENV = "DMC_LOCAL_LAUNCH"
"""Set in the processes :func:`dmc.distributed.launch.launch_local` starts."""
TIMEOUT_ENV = "DMC_DIST_TIMEOUT"
"""Seconds a collective may wait for the other processes before the run stops (default 1800)."""


class PeerFailed(DmcError):
    """Another process of the run failed; it has said why, so this one exits without a line of its own."""

    quiet = True


class PeerError(DmcError):
    """Another process's error, as rank 0 reports it: its text, and the command line's (settings named by their
    flags, see :class:`dmc.errors.NamedSettingsError`)."""

    def __init__(self, message: str, cli_text: str):
        super().__init__(message)
        self._cli_text = cli_text

    def cli_text(self) -> str:
        return self._cli_text


class LostPeers(DmcError):
    """A collective failed because another process died or the network between them broke. Quiet under
    ``--nproc``, whose launcher names the process that died."""

    @property
    def quiet(self) -> bool:
        return os.environ.get(LOCAL_LAUNCH_ENV) == "1"


@dataclass(frozen=True)
class Distributed:
    """This process's place in the run: ``rank`` of ``world_size``, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    """Where this process computes (``cuda:<local_rank>`` on GPUs); collectives run there too."""

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes the run folder and reports progress."""
        return self.rank == 0

    def with_device(self, name: str) -> Distributed:
        """This process on device ``name`` (auto, cpu, cuda): in a distributed run on GPUs, the GPU of its local
        rank (cuda:N is refused there)."""
        device = resolve_device(name)
        if not self.active or device.type != "cuda":
            return dataclasses.replace(self, device=device)
        if device.index is not None:
            raise SettingError(f"device {name!r}: in a distributed run each process uses the GPU of its local rank",
                               "pass {device} cuda (or auto)")
        visible = torch.cuda.device_count()
        index = 0 if visible == 1 else self.local_rank  # one visible GPU: the launcher gave each process its own
        if index >= visible:
            raise InvalidInputError(f"local rank {self.local_rank} has no GPU ({visible} visible)",
                                    "start at most one process per GPU")
        torch.cuda.set_device(index)
        return dataclasses.replace(self, device=torch.device("cuda", index))

    # ------------------------------------------------------------------ collectives
    def average_(self, tensors: Sequence[torch.Tensor]) -> None:
        """Replaces each tensor by its mean over the processes (one flat all-reduce)."""
        if not self.active or not tensors:
            return
        flat = torch.cat([t.reshape(-1) for t in tensors])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for t in tensors:
            t.copy_(flat[offset: offset + t.numel()].view_as(t))
            offset += t.numel()

    def sum(self, values: Sequence[float]) -> list[float]:
        """Sums of ``values`` over the processes (float64)."""
        if not self.active:
            return list(values)
        total = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return total.tolist()

    def broadcast_(self, tensors: Sequence[torch.Tensor]) -> None:
        """Overwrites ``tensors`` with rank 0's."""
        if self.active:
            with torch.no_grad():
                for t in tensors:
                    dist.broadcast(t, 0)

    def broadcast_object(self, value: T) -> T:
        """Rank 0's ``value``, on every process (pickled between our own processes; never user files)."""
        if not self.active:
            return value
        box = [value]
        dist.broadcast_object_list(box, 0, device=torch.device("cpu"))
        return box[0]

    def gather_objects(self, value: T) -> list[T]:
        """Every process's ``value``, in rank order, on every process."""
        if not self.active:
            return [value]
        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def on_main(self, work: Callable[..., T], *args: Any) -> T:
        """Runs ``work(*args)`` on rank 0 only (the run folder's reads and writes) and hands its result to every
        process.

        An error there is raised everywhere: rank 0 reports it, the other ranks exit quietly with its exit code.
        """
        if not self.active:
            return work(*args)
        outcome: tuple[str, Any] | None = None
        failure: BaseException | None = None
        if self.is_main:
            try:
                outcome = ("ok", work(*args))
            except DmcError as exc:
                failure, outcome = exc, ("error", (exc.exit_code, str(exc)))
            except BaseException as exc:  # a bug or an interrupt: rank 0's traceback says which
                failure, outcome = exc, ("error", (1, f"{type(exc).__name__} on rank 0"))
        outcome = self.broadcast_object(outcome)
        if failure is not None:
            raise failure
        assert outcome is not None, "rank 0 sends its outcome, always set above"
        kind, value = outcome
        if kind == "error":
            error = PeerFailed(value[1])
            error.exit_code = value[0]
            raise error
        return value

    def everywhere(self, work: Callable[[], T]) -> T:
        """Runs ``work`` on every process (loading data, building the model); when it fails on any, rank 0 reports
        the first failing rank's error and the others exit quietly, instead of one line per process."""
        if not self.active:
            return work()
        failure: DmcError | None = None
        try:
            result = work()
        except DmcError as exc:
            failure = exc
        except Exception:  # a bug: this process's own report says where
            unexpected = f"an unexpected error on rank {self.rank}"
            self.gather_objects((1, unexpected, unexpected))
            raise
        reports = self.gather_objects(None if failure is None else (failure.exit_code, str(failure),
                                                                    failure.cli_text()))
        first = next((report for report in reports if report is not None), None)
        if first is None:
            return result
        if self.is_main and failure is not None:  # rank 0's own error is the first
            raise failure
        error = PeerError(first[1], first[2]) if self.is_main else PeerFailed(first[1])
        error.exit_code = first[0]
        raise error

    def rng_states(self) -> dict[str, Any]:
        """A checkpoint's random generators: ``rng``, rank 0's (as one process writes it), and on several processes
        ``rng_ranks``, every rank's in rank order (each draws its own augmentation)."""
        states = self.gather_objects(rng_state())
        return {"rng": states[0], **({"rng_ranks": states} if self.active else {})}

    def restore_rng_states(self, checkpoint: dict[str, Any]) -> None:
        """This process's generators as :meth:`rng_states` saved them in ``checkpoint``."""
        restore_rng_state(checkpoint["rng_ranks"][self.rank] if self.active else checkpoint["rng"])

    def data_parallel(self, module: torch.nn.Module, ignore: Sequence[str] = ()) -> torch.nn.Module:
        """``module`` wrapped in ``DistributedDataParallel`` (the forward to train its weights through: their
        gradients are averaged over the processes during backward), or ``module`` itself on one process.

        ``ignore`` names parameters DDP leaves alone (a supernet's alphas, averaged by the architecture step).
        Buffers are not broadcast at every step: :meth:`broadcast_buffers` makes them rank 0's when it matters.
        """
        if not self.active:
            return module
        from torch.nn.parallel import DistributedDataParallel

        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, list(ignore))
        return DistributedDataParallel(module, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                                       forward_sync_buffers=False)

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """``module``'s floating-point buffers (BatchNorm running statistics) become rank 0's, so evaluation and
        checkpoints see one network."""
        self.broadcast_([b for b in module.buffers() if b.is_floating_point()])

    def describe_batch(self, batch_size: int) -> str:
        """``batch B``, and on several processes ``batch B per process (N x B in all)``: for start-up lines."""
        return f"batch {batch_size}" + (f" per process ({batch_size * self.world_size} in all)" if self.active else "")

    def shard(self, dataset: Dataset) -> Dataset:
        """This process's part of an evaluation set: every ``world_size``-th item from ``rank`` (sizes differ by
        at most one; evaluation sums over processes, so nothing is counted twice)."""
        return dataset if not self.active else Subset(dataset, range(self.rank, dataset_size(dataset), self.world_size))


SINGLE = Distributed()


def _timeout() -> datetime.timedelta:
    raw = os.environ.get(TIMEOUT_ENV, "1800")
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1
    if seconds <= 0:
        raise InvalidInputError(f"{TIMEOUT_ENV}={raw!r} is not a positive number of seconds", "e.g. 1800")
    return datetime.timedelta(seconds=seconds)


def join() -> Distributed:
    """Joins the torch.distributed run this process was launched in (torchrun or a Slurm step:
    :func:`dmc.distributed.environment.launch_environment`), once per process; :data:`SINGLE` when it runs alone.
    The group carries CPU tensors over gloo and GPU tensors over NCCL; it is torn down at exit."""
    env = launch_environment()
    if env is None:
        return SINGLE
    rank, world, local = int(env["RANK"]), int(env["WORLD_SIZE"]), int(env["LOCAL_RANK"])
    if not dist.is_initialized():
        _init_group(env)
    if dist.get_world_size() != world:
        raise InvalidInputError(f"the process group has {dist.get_world_size()} processes, WORLD_SIZE says {world}")
    return Distributed(rank, world, local)


def _init_group(env: dict[str, str]) -> None:
    os.environ.update(env)
    # one group for both kinds of tensor: the run's device is only known once rank 0 has read a resumed run's
    # settings, and that read is itself shared over the group
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, timeout=_timeout())
    atexit.register(_leave)


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _leave_together() -> None:
    """Waits, briefly, until every process has reached its error: an error that one process reports and the others
    received (:meth:`Distributed.on_main`, :meth:`Distributed.everywhere`) stops them all, and they tear the group
    down together rather than one while a peer still receives from it (before the processes ended through
    :mod:`dmc.distributed.process_exit`, that let a peer abort now and then). An error that only this process met
    ends the wait at its timeout."""
    try:
        dist.monitored_barrier(timeout=datetime.timedelta(seconds=10), wait_all_ranks=True)
    except Exception:  # noqa: BLE001 - a peer that does not come, or a backend without the barrier: leave anyway
        pass


def _lost_peers(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, dist.DistError) or (isinstance(exc, RuntimeError) and any(
        word in text for word in ("gloo", "Gloo", "NCCL", "Connection reset", "Connection closed")))


@contextlib.contextmanager
def distributed() -> Iterator[Distributed]:
    """This process's :class:`Distributed` (on the CPU until :meth:`Distributed.with_device`): it joins the run its
    launcher started (torchrun or a Slurm step, :func:`dmc.distributed.environment.launch_environment`; NCCL for
    GPU tensors, gloo for CPU tensors) or runs alone.

    A collective that fails because another process died becomes one :class:`LostPeers` line, and the process
    group is torn down so the process exits at once.
    """
    process = join()
    try:
        yield process
    except BaseException as exc:
        # the process is on its way out: without the group torn down now, gloo's threads may abort it at exit
        if process.active and isinstance(exc, DmcError):
            _leave_together()
        _leave()
        if isinstance(exc, DmcError) or not (process.active and _lost_peers(exc)):
            raise
        raise LostPeers(f"rank {process.rank} lost contact with the other processes of the run "
                        f"({type(exc).__name__}): one of them stopped or the network failed",
                        "see the other processes' output; resume the run with --resume") from None
