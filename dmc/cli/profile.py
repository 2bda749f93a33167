"""`dmc profile`: parameters, MACs and latency of a network."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from dmc.api import MAX_INPUT_SIZE, network_from_source, profile
from dmc.cli.app import command
from dmc.cli.build_options import (
    Channels,
    Classes,
    Layers,
    Style,
    Width,
    build_overrides,
)


@command(name="profile")
def profile_command(
    source: str = typer.Argument(..., help="Genotype (file or published name), or a `dmc compile`/`dmc train` file."),
    style: str = Style, channels: int = Channels, layers: int = Layers, classes: int = Classes, width: float = Width,
    input_size: int = typer.Option(None, min=1, max=MAX_INPUT_SIZE,
                                   help="Input size [the training data's; 32; imagenet and chain 224]."),
    repeats: int = typer.Option(10, min=1, max=10_000, help="Timed runs per batch size (median and range reported)."),
) -> None:
    """Parameters, MACs (PyTorch's flop counter) and CPU latency at batch 1 and 32."""
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
