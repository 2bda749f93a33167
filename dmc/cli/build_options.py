"""Options shared by the commands that build a network from a genotype (compile, profile, export)."""

from __future__ import annotations

import typer

from dmc.compiler import STYLES

Style = typer.Option(None, help=f"Network family: {', '.join(STYLES)} [cifar; nb201 for NB201 genotypes].")
Channels = typer.Option(None, help="Initial channels [cifar 36, imagenet 48, nb201 16].")
Layers = typer.Option(None, help="Cells [cifar 20, imagenet 14]; cells per stage for nb201 [5].")
Classes = typer.Option(None, "--classes", help="Output classes [10; imagenet 1000].")
Auxiliary = typer.Option(None, "--auxiliary/--no-auxiliary", help="Attach DARTS's auxiliary head (training only).")


def build_overrides(style, channels, layers, classes, auxiliary=None) -> dict:
    return dict(style=style, channels=channels, layers=layers, num_classes=classes, auxiliary=auxiliary)
