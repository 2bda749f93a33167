"""`dmc doctor`: is this machine ready for dmc?"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from dmc.api import diagnose
from dmc.cli.app import command


@command()
def doctor() -> None:
    """Check the installation: versions, compiled ops, GPU, compilers."""
    from dmc.detection.doctor import checks as detection_checks
    from dmc.exporters.doctor import checks as export_checks

    console = Console()
    with console.status("checking the environment..."):
        checks = diagnose(export_checks, detection_checks)
    table = Table(show_header=True, header_style="bold", box=None)
    table.add_column("")
    table.add_column("component")
    table.add_column("found")
    for check in checks:
        mark = "[green]ok[/]" if check.ok else ("[red]FAIL[/]" if check.required else "[yellow]--[/]")
        table.add_row(mark, check.name, check.detail)
    console.print(table)
    failed = [check for check in checks if check.failed]
    for check in failed:
        typer.echo(f"error: {check.name}: {check.detail} (fix: {check.fix})", err=True)
    if failed:
        raise typer.Exit(1)
    console.print("[green]dmc is ready.[/]")
