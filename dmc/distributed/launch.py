"""``--nproc N``: one distributed run of N processes on this machine, started the way ``torchrun --standalone``
starts them (torch's elastic agent, a private rendezvous, no restarts, each process a new ``python -u``)."""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dmc.distributed.context import LOCAL_LAUNCH_ENV
from dmc.errors import DmcError

if TYPE_CHECKING:
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure


class ProcessesFailed(DmcError):
    """A process of a local run failed. When it exited with an error it has printed its own line, so this one is
    quiet and passes its exit code on; when a signal killed it, this is the line."""

    def __init__(self, rank: int, nproc: int, exitcode: int, signal_name: str, hint: str | None = None):
        if exitcode > 0:
            super().__init__(f"process {rank} of {nproc} failed with exit code {exitcode}")
            self.exit_code, self.quiet = exitcode, True
        else:
            super().__init__(f"process {rank} of {nproc} was killed by {signal_name}; the others were stopped", hint)
            self.quiet = False


@contextlib.contextmanager
def _quiet_agent() -> Iterator[None]:
    # the agent logs every stop and failure at length; ProcessesFailed says it in one line
    loggers = [logging.getLogger(name) for name in ("torch.distributed.elastic", "torch.multiprocessing")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@contextlib.contextmanager
def _environment(nproc: int) -> Iterator[None]:
    """What the processes inherit: the mark of a local launch, and (as torchrun sets it) OMP_NUM_THREADS so that N
    processes of all-core OpenMP pools do not oversubscribe the CPU."""
    added = {LOCAL_LAUNCH_ENV: "1"}
    if "OMP_NUM_THREADS" not in os.environ:
        added["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            del os.environ[key]


def launch_local(nproc: int, target: Callable[..., Any], *args: Any, hint: str | None = None) -> None:
    """Runs ``target(*args)`` in ``nproc`` new processes that form one torch.distributed run (each finds its
    rank in the torchrun variables of its environment). ``target`` and ``args`` must pickle, ``target`` as a
    function of an importable module (not of the script that runs as ``__main__``). Returns when all have
    finished; raises :class:`ProcessesFailed` (with ``hint`` when a signal killed one) as soon as one has failed
    and the others were stopped.

    Each process is ``python -u -m dmc.distributed.worker`` (as torchrun starts ``python -u -m dmc``), so it ends
    as every process of a distributed run does (:mod:`dmc.distributed.process_exit`).
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"dmc-{uuid.uuid4().hex[:12]}",
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1)
    with tempfile.TemporaryDirectory(prefix="dmc-launch-") as folder, _quiet_agent(), _environment(nproc):
        work = Path(folder) / "work.pickle"
        work.write_bytes(pickle.dumps((target, args)))
        try:
            elastic_launch(config, sys.executable)("-u", "-m", "dmc.distributed.worker", str(work))
        except ChildFailedError as exc:
            rank, failure = reported_failure(exc.failures)
            raise ProcessesFailed(rank, nproc, failure.exitcode, failure.signal_name(), hint) from None


def reported_failure(failures: Mapping[int, ProcessFailure]) -> tuple[int, ProcessFailure]:
    """The failure a run reports, of those the agent recorded (it lists the processes it stopped, with SIGTERM, as
    well): a process killed by another signal, which could not say why (the others then lost it and exited quietly,
    in the same poll of the agent as often as not); else one that exited with an error (its own line says why); else
    one that SIGTERM stopped. The first of them, by time then rank."""
    def order(item: tuple[int, ProcessFailure]) -> tuple[int, int, int]:
        rank, failure = item
        killed = failure.exitcode < 0 and -failure.exitcode != signal.SIGTERM
        return (0 if killed else 1 if failure.exitcode > 0 else 2), failure.timestamp, rank

    return min(failures.items(), key=order)
