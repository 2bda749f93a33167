"""``--nproc N``: one distributed run of N processes on this machine, started the way ``torchrun --standalone``
starts them (torch's elastic agent, a private rendezvous, no restarts)."""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from dmc.distributed.context import LOCAL_LAUNCH_ENV
from dmc.errors import DmcError


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
    rank in the torchrun variables of its environment). ``target`` and ``args`` must pickle (a module-level
    function). Returns when all have finished; raises :class:`ProcessesFailed` (with ``hint`` when a signal killed
    one) as soon as one has failed and the others were stopped.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"dmc-{uuid.uuid4().hex[:12]}",
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1,
                          start_method="spawn")
    with _quiet_agent(), _environment(nproc):
        try:
            elastic_launch(config, target)(*args)
        except ChildFailedError as exc:
            rank, failure = exc.get_first_failure()
            raise ProcessesFailed(rank, nproc, failure.exitcode, failure.signal_name(), hint) from None
