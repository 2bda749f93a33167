"""`dmc compile`: a genotype -> a standalone network file."""

from __future__ import annotations

from pathlib import Path

import typer

from dmc.api import (
    MAX_INPUT_SIZE,
    build_network,
    count_macs,
    load_space,
    resolve_genotype,
    save_network,
)
from dmc.cli.app import command
from dmc.cli.build_options import (
    Auxiliary,
    Channels,
    Classes,
    Layers,
    Reductions,
    Style,
    Width,
    build_overrides,
)


@command(name="compile")
def compile_command(
    genotype: str = typer.Argument(..., help="Genotype file (JSON, DARTS text, NB201 string) or published name "
                                             "(DARTS_V2, cifar10_s3_0, FairNAS_A, mobilenet_v2, ...)."),
    out: Path = typer.Option(..., "--out", "-o", help="Network file to write (.pt)."),
    style: str = Style, channels: int = Channels, layers: int = Layers, classes: int = Classes,
    auxiliary: bool = Auxiliary, reductions: str = Reductions, width: float = Width,
    space: str = typer.Option(None, help="Check that the genotype belongs to this space first."),
    input_size: int = typer.Option(None, min=1, max=MAX_INPUT_SIZE,
                                   help="Input size for the MAC count and size check [32; imagenet 224]."),
) -> None:
    """Compile a genotype into a standalone PyTorch network (randomly initialised weights)."""
    network = build_network(resolve_genotype(genotype), space=load_space(space) if space else None,
                            **build_overrides(style, channels, layers, classes, auxiliary, reductions, width))
    size = input_size or network.build_args.input_size
    network.check_input_size(size, size)
    save_network(network, out)
    if not network.deterministic:
        typer.echo("warning: the genotype keeps 'noise' ops: the network's outputs are random", err=True)
    typer.echo(f"{network.build_args.describe()}; {network.num_parameters():,} parameters, "
               f"{count_macs(network, size):,} MACs at {size}x{size}")
    typer.echo(f"wrote {out}")
