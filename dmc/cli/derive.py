"""`dmc derive`: the genotype of a search run, as a versioned JSON file."""

from __future__ import annotations

from pathlib import Path

import typer

from dmc.api import derive_run
from dmc.cli.app import command
from dmc.errors import InvalidInputError


@command(name="derive")
def derive_command(
    run_dir: Path = typer.Argument(..., help="A run folder written by `dmc search`."),
    checkpoint: str = typer.Option("best", help="best | last | epoch:N (alphas recorded at epoch N)."),
    out: Path = typer.Option(None, "--out", "-o", help="Genotype file to write [RUN_DIR/genotype-<checkpoint>.json]."),
    cost_target: float = typer.Option(None, help="Chain spaces: the most probable network whose cost (by a latency "
                                                 "table) is at most this and at least (1 - tolerance) of it, instead "
                                                 "of every layer's strongest candidate."),
    cost: str = typer.Option(None, help="With --cost-target: latency:LUT.json to price networks by [the search's "
                                        "own --cost]."),
    cost_tolerance: float = typer.Option(0.05, help="With --cost-target: how far below the target the cost may be."),
) -> None:
    """Derive the genotype of a search run (best-validation checkpoint by default)."""
    if cost_target is None and (cost is not None or cost_tolerance != 0.05):
        raise InvalidInputError("--cost and --cost-tolerance choose how a budget is derived", "add --cost-target T")
    genotype = derive_run(run_dir, checkpoint, cost_target=cost_target, cost=cost, cost_tolerance=cost_tolerance)
    out = out or run_dir / f"genotype-{checkpoint.replace(':', '')}.json"
    genotype.save(out)
    text = genotype.describe()
    typer.echo(text)
    typer.echo(f"wrote {out}")
