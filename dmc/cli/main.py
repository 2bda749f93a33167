"""Entry point of the `dmc` console script: registers every command module on the root app."""

from __future__ import annotations

from dmc.api import launch_environment, run_and_exit
from dmc.cli import (  # noqa: F401  (each module registers its commands)
    ablate,
    bench,
    compile,
    data,
    derive,
    detect,
    doctor,
    export,
    latency,
    profile,
    report,
    search,
    spaces,
    train,
    viz,
)
from dmc.cli.app import app


def main() -> None:
    """Runs the command line; a process of a distributed run (torchrun, srun) ends without the interpreter's
    finalization (:mod:`dmc.distributed.process_exit`)."""
    if launch_environment() is None:
        app()
    else:
        run_and_exit(app)


if __name__ == "__main__":
    main()
