"""`dmc derive`: the genotype of a search run, as a versioned JSON file."""

from __future__ import annotations

from pathlib import Path

import typer

from dmc.api import derive_run
from dmc.cli.app import command


@command(name="derive")
def derive_command(
    run_dir: Path = typer.Argument(..., help="A run folder written by `dmc search`."),
    checkpoint: str = typer.Option("best", help="best | last | epoch:N (alphas recorded at epoch N)."),
    out: Path = typer.Option(None, "--out", "-o", help="Genotype file to write [RUN_DIR/genotype-<checkpoint>.json]."),
) -> None:
    """Derive the genotype of a search run (best-validation checkpoint by default)."""
    genotype = derive_run(run_dir, checkpoint)
    out = out or run_dir / f"genotype-{checkpoint.replace(':', '')}.json"
    genotype.save(out)
    text = genotype.describe()
    typer.echo(text)
    typer.echo(f"wrote {out}")
