"""`dmc viz`: pictures of a search run folder (cells or chain layers, alpha trajectories, beta) or of a genotype."""

from __future__ import annotations

from pathlib import Path

import typer

from dmc.cli.app import command


@command(name="viz")
def viz_command(
    source: str = typer.Argument(..., help="A `dmc search` run folder, a genotype file, or a published name."),
    out: Path = typer.Option(None, "--out", "-o", help="Folder for the pictures [RUN_DIR/viz, or ./viz-<name>]."),
) -> None:
    """Draw derived cells or chain layers (PNG + SVG), alpha trajectories per edge or layer and the beta curve."""
    from dmc.api import visualize

    path = Path(source)
    out = out or (path / "viz" if path.is_dir() else Path(f"viz-{path.stem if path.exists() else source}"))
    for written in visualize(source, out):
        typer.echo(f"wrote {written}")
