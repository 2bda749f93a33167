"""Options shared by the commands that build a network from a genotype (compile, profile, export)."""

from __future__ import annotations

import typer

from dmc.api import STYLES
from dmc.errors import InvalidInputError

Style = typer.Option(None, help=f"Network family: {', '.join(STYLES)} [cifar; nb201 for NB201 genotypes].")
Channels = typer.Option(None, help="Cell networks: initial channels [cifar 36, imagenet 48, nb201 16].")
Layers = typer.Option(None, help="Cells [cifar 20, imagenet 14]; cells per stage for nb201 [5].")
Classes = typer.Option(None, "--num-classes", "--classes",
                       help="Output classes (num_classes, as in Python; --classes is its old name) "
                            "[10; imagenet and chain 1000].")
Auxiliary = typer.Option(None, "--auxiliary/--no-auxiliary", help="Attach DARTS's auxiliary head (training only).")
Width = typer.Option(None, min=0.01, max=8.0, help="Chain networks: width multiplier of the skeleton [1].")
Reductions = typer.Option(None, help="Indices of the reduction cells, e.g. 6,13 [the genotype's own positions; "
                                     "else layers//3, 2*layers//3].")


def build_overrides(style, channels, layers, classes, auxiliary=None, reductions: str | None = None,
                    width: float | None = None) -> dict:
    return dict(style=style, channels=channels, layers=layers, num_classes=classes, auxiliary=auxiliary,
                reductions=parse_reductions(reductions), width=width)


def parse_reductions(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise InvalidInputError(f"--reductions {text!r} is not a comma-separated list of cell indices",
                                "e.g. --reductions 6,13") from None
