"""`dmc spaces list|show|validate`: the bundled search spaces and user spec files."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml
from rich.console import Console
from rich.table import Table

from dmc.api import bundled_spaces, load_space
from dmc.cli.app import command, sub_app

spaces_app = sub_app("spaces", "List, show and validate search-space specs.")


@command(spaces_app, name="list")
def list_spaces() -> None:
    """List the bundled search spaces."""
    table = Table("name", "kind", "shape", "candidate ops", "hash", box=None, header_style="bold")
    for name, path in sorted(bundled_spaces().items()):
        space = load_space(path)
        table.add_row(name, space.kind, space.summary, ", ".join(space.operations), space.content_hash)
    Console().print(table)


@command(spaces_app, name="show")
def show(space: str = typer.Argument(..., help="A bundled space name or a spec file.")) -> None:
    """Print a space as its validated spec (YAML)."""
    loaded = load_space(space)
    typer.echo(f"# {loaded.source} (hash {loaded.content_hash})")
    typer.echo(yaml.safe_dump(loaded.to_dict(), sort_keys=False, width=120).rstrip())


@command(spaces_app, name="validate")
def validate(files: list[Path] = typer.Argument(..., help="Spec files to check.")) -> None:
    """Check spec files; prints one line per file, exits 2 on the first invalid one."""
    for file in files:
        space = load_space(file)
        typer.echo(f"ok: {file}: space {space.name!r}, {space.summary}, {len(space.operations)} ops, "
                   f"hash {space.content_hash}")
