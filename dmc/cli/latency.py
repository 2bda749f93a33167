"""`dmc latency table`: the latency look-up table of a chain search space, measured in its deployment runtime."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from dmc.api import MAX_INPUT_SIZE, load_space
from dmc.cli.app import command, sub_app

latency_app = sub_app("latency", "Latency look-up tables of chain search spaces.")


@command(latency_app, name="table")
def table_command(
    space: str = typer.Argument(..., help="A chain search space: bundled name (proxyless_s5, fbnet_s5) or spec file."),
    out: Path = typer.Option(..., "-o", "--out", help="Table to write (JSON); a partial one there is continued."),
    runtime: str = typer.Option("onnxruntime", help="Runtime to time in: onnxruntime (exported as `dmc export` "
                                                    "exports) or torch (eager)."),
    device: str = typer.Option("cpu", help="Device to time on (cpu only, for now)."),
    threads: int = typer.Option(1, help="Intra-op threads of the runtime."),
    batch: int = typer.Option(1, help="Batch size of the timed inputs."),
    image_size: int = typer.Option(None, min=1, max=MAX_INPUT_SIZE, help="Input height and width [chain 224]."),
    width: float = typer.Option(None, help="Width multiplier of the skeleton [the space's]."),
    repeats: int = typer.Option(20, help="Timed runs of every part (after a warm-up); the median is kept."),
    num_classes: int = typer.Option(1000, help="Classes of the classifier in the head."),
) -> None:
    """Time every candidate of every layer of a chain space, and its stem and head, each as its own model."""
    from dmc.exporters.latency import measure_latency_table

    console = Console(stderr=True)
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[entry]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=console, transient=False)
    task = progress.add_task(f"timing ({runtime})", total=None, entry="")
    resumed = []

    def on_progress(done: int, total: int, entry: str | None) -> None:
        if entry is None:  # the settings are checked and the measurement starts: show the bar from here on
            resumed.append(done)
            progress.start()
        progress.update(task, completed=done, total=total, entry=entry or "")

    try:
        table = measure_latency_table(load_space(space), width=width, image_size=image_size, batch=batch,
                                      threads=threads, runtime=runtime, repeats=repeats, out_path=out,
                                      on_progress=on_progress, num_classes=num_classes, device=device)
    finally:
        if resumed:
            progress.stop()
    costs = table.candidate_costs()
    fastest = table.fixed_ms + sum(min(layer) for layer in costs)
    slowest = table.fixed_ms + sum(max(layer) for layer in costs)
    entries = len(table.fixed) + sum(len(layer) for layer in costs)
    if resumed[0] == entries:
        typer.echo(f"{out} was already complete (delete it to measure again)")
    else:
        continued = f", continuing the {resumed[0]} of {entries} entries measured before" if resumed[0] else ""
        typer.echo(f"wrote {out}{continued}")
    typer.echo(f"{table.space} at width {table.width:g}, {table.image_size}x{table.image_size}, batch {table.batch}, "
               f"{table.runtime} {table.runtime_version}, {table.threads} thread{'s' if table.threads != 1 else ''}, "
               f"{table.cpu}: {len(costs)} layers; fixed parts {table.fixed_ms:.3f} ms; networks from "
               f"{fastest:.3f} to {slowest:.3f} ms by the table")
