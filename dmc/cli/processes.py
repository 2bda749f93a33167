"""``--nproc`` and ``--sync-bn``: the search and training commands on several processes of this machine."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import typer

from dmc.api import launch_environment, launch_local
from dmc.cli.app import one_line_errors
from dmc.errors import InvalidInputError

NProc = typer.Option(None, "--nproc", min=1, help="Processes on this machine, one distributed run (what `torchrun "
                                                  "--standalone --nproc-per-node N -m dmc ...` does): one per GPU, "
                                                  "or CPU processes (gloo). --batch-size is per process [1].")
SyncBN = typer.Option(None, "--sync-bn/--no-sync-bn", help="Distributed runs: batch-norm statistics over the "
                                                           "global batch instead of each process's share [off].")


def run_processes(nproc: int | None, work: Callable[..., None], *args: Any, run_dir: Any = None) -> None:
    """Runs the command's body ``work(*args)`` here, or with ``--nproc N`` (N > 1) in N processes of one run."""
    if not nproc or nproc == 1:
        work(*args)
        return
    if launch_environment() is not None:
        raise InvalidInputError("--nproc starts processes itself, and this one already belongs to a distributed run",
                                "drop --nproc under torchrun or srun")
    hint = f"{run_dir} keeps its last complete epoch: continue with --resume {run_dir} --nproc {nproc}" \
        if run_dir is not None else None
    launch_local(nproc, _worker, work, *args, hint=hint)


def _worker(work: Callable[..., None], *args: Any) -> None:
    """One process of ``--nproc``: the command's error policy, its exit code as the process's."""
    try:
        one_line_errors(work)(*args)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)

