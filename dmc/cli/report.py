"""`dmc report`: the demo folder's results and pictures in one Markdown file."""

from __future__ import annotations

from pathlib import Path

import typer

from dmc.cli.app import command
from dmc.errors import InvalidInputError


@command(name="report")
def report_command(
    demo_dir: Path = typer.Argument(..., help="A folder written by `make demo` (scripts/demo.sh), "
                                    "with the manifest.json it writes."),
) -> None:
    """Write DEMO_DIR/report.md: search (DARTS- vs DARTS), training, ONNX, detection, with pictures."""
    from dmc.api import write_report

    if not demo_dir.is_dir():
        raise InvalidInputError(f"{demo_dir}: no such folder", "pass the folder `make demo` printed at its end")
    typer.echo(f"wrote {write_report(demo_dir)}")
