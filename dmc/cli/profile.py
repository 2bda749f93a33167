"""`dmc profile`: parameters, MACs and latency of a network; with `--lut`, its latency predicted by a latency table
next to its measured end-to-end latency."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from dmc.api import MAX_INPUT_SIZE, load_latency_table, network_from_source, profile
from dmc.cli.app import command
from dmc.cli.build_options import (
    Channels,
    Classes,
    Layers,
    Style,
    Width,
    build_overrides,
)
from dmc.errors import SettingError


@command(name="profile")
def profile_command(
    source: str = typer.Argument(..., help="Genotype (file or published name), or a `dmc compile`/`dmc train` file."),
    style: str = Style, channels: int = Channels, layers: int = Layers, classes: int = Classes, width: float = Width,
    input_size: int = typer.Option(None, min=1, max=MAX_INPUT_SIZE,
                                   help="Input size [the training data's; 32; imagenet and chain 224; with --lut "
                                        "the table's]."),
    repeats: int = typer.Option(10, min=1, max=10_000, help="Timed runs per batch size (median and range reported)."),
    lut: Path = typer.Option(None, "--lut", help="A latency table (`dmc latency table`) of the network's chain "
                                                 "space: print the latency it predicts next to the measured latency "
                                                 "of the exported network in the table's runtime, threads and batch."),
    as_json: bool = typer.Option(False, "--json", help="With --lut: print the result as one JSON object."),
) -> None:
    """Parameters, MACs (PyTorch's flop counter) and CPU latency at batch 1 and 32; with --lut, the latency a
    table predicts against the measured one."""
    if lut is not None:
        _against_table(source, lut, input_size, repeats, as_json,
                       build_overrides(style, channels, layers, classes, width=width))
        return
    if as_json:
        raise SettingError("--json prints the comparison with a latency table", "add --lut TABLE, or drop --json")
    loaded = network_from_source(source, **build_overrides(style, channels, layers, classes, width=width))
    network = loaded.network
    size = input_size or (loaded.data or {}).get("image_size") or network.build_args.input_size
    with Console().status("timing..."):
        result = profile(network, size, repeats=repeats)
    table = Table(box=None, show_header=False)
    table.add_row("network", f"{network.build_args.describe()}{' (trained weights)' if loaded.data else ''}")
    auxiliary = f" ({result.parameters_with_auxiliary:,} with auxiliary head)" if result.has_auxiliary_head else ""
    table.add_row("parameters", f"{result.parameters:,}{auxiliary}")
    table.add_row("MACs", f"{result.macs:,} at {size}x{size}")
    for batch, ms in result.latency_ms.items():
        fastest, slowest = result.latency_range_ms[batch]
        table.add_row(f"latency, batch {batch}", f"{ms:.1f} ms median, {fastest:.1f}-{slowest:.1f} ms over "
                                                 f"{result.repeats} runs ({result.device}, {result.threads} threads)")
    Console().print(table)


def _against_table(source: str, lut: Path, input_size: int | None, repeats: int, as_json: bool,
                   overrides: dict[str, Any]) -> None:
    from dmc.exporters.latency_profile import profile_against_table

    table = load_latency_table(lut)
    network = network_from_source(source, **overrides).network
    with Console(stderr=True).status(f"exporting and timing in {table.runtime}..."):
        report = profile_against_table(network, table, repeats, image_size=input_size)
    if as_json:
        typer.echo(json.dumps(report, indent=1))
        return
    measured, on = report["measured_ms"], report["measured_on"]
    threads = f"{table.threads} thread{'s' if table.threads != 1 else ''}"
    rows = Table(box=None, show_header=False)
    rows.add_row("network", report["network"])
    rows.add_row("table", f"{lut}: {table.space} at width {table.width:g}, {table.image_size}x{table.image_size}, "
                          f"batch {table.batch}, {table.runtime} {table.runtime_version}, {threads}, {table.cpu}")
    overhead = (f" (part overhead {table.part_overhead_ms:+.3f} ms counted once; plain sum "
                f"{report['plain_sum_ms']:.3f} ms)" if table.part_overhead_ms else " (plain sum of the entries)")
    rows.add_row("predicted", f"{report['predicted_ms']:.3f} ms{overhead}")
    rows.add_row("measured", f"{measured['median_ms']:.3f} ms median, {measured['min_ms']:.3f}-"
                             f"{measured['max_ms']:.3f} ms over {on['repeats']} runs (the exported network, "
                             f"{on['runtime']} {on['runtime_version']}, {threads}, batch {on['batch']})")
    rows.add_row("error", f"{report['relative_error']:+.1%} (predicted / measured - 1)")
    if on["cpu"] != table.cpu:
        rows.add_row("note", f"the table was measured on {table.cpu}, this CPU is {on['cpu']}")
    Console().print(rows)
