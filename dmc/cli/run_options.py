"""Options shared by the commands that run training loops (search, train)."""

from __future__ import annotations

import typer

Dataset = typer.Option(None, help="digits | cifar10[:PATH] | cifar100[:PATH] | folder:PATH [digits].")
DataRoot = typer.Option(None, help="Folder holding the CIFAR data.")
Seed = typer.Option(None, help="Random seed [0].")
Device = typer.Option(None, help="auto | cpu | cuda [auto].")
Deterministic = typer.Option(None, "--deterministic/--nondeterministic",
                             help="Deterministic algorithms (bitwise reproducible on CPU).")
BatchSize = typer.Option(None, help="Batch size [search 64, train 96].")
