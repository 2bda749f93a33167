"""Entry point of the `dmc` console script: registers every command module on the root app."""

from __future__ import annotations

from dmc.cli import (  # noqa: F401  (each module registers its commands)
    ablate,
    bench,
    compile,
    data,
    derive,
    detect,
    doctor,
    export,
    profile,
    report,
    search,
    spaces,
    train,
    viz,
)
from dmc.cli.app import app


def main() -> None:
    app()


if __name__ == "__main__":
    main()
