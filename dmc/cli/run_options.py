"""Options shared by the commands that run training loops (search, train, ablate), and how they are read."""

from __future__ import annotations

from pathlib import Path
from typing import Any, overload

import typer

from dmc.api import SearchConfig, load_search_config, search_config_for_space
from dmc.errors import InvalidInputError

Dataset = typer.Option(None, help="digits | cifar10[:PATH] | cifar100[:PATH] | folder:PATH [digits].")
DataRoot = typer.Option(None, help="Folder holding the CIFAR data.")
Seed = typer.Option(None, help="Random seed [0].")
Device = typer.Option(None, help="auto | cpu | cuda [auto].")
Deterministic = typer.Option(None, "--deterministic/--nondeterministic",
                             help="Deterministic algorithms (bitwise reproducible on CPU).")
CudaGraphs = typer.Option(None, help="How steps run: auto | on | off | static [auto = captured as CUDA graphs and "
                                      "replayed on one GPU, eager elsewhere; static = the captured step's code run "
                                      "eagerly, any device]. See the README's GPU section.")
BatchSize = typer.Option(None, help="Batch size [search 64, train 96].")


@overload
def number_list(text: str, flag: str, kind: type = int, example: str = "0,1,2,3") -> list: ...


@overload
def number_list(text: str | None, flag: str, kind: type = int, example: str = "0,1,2,3") -> list | None: ...


def number_list(text: str | None, flag: str, kind: type = int, example: str = "0,1,2,3") -> list | None:
    """A comma-separated list of ``kind`` from option ``flag``; None when not given."""
    if text is None:
        return None
    try:
        return [kind(s) for s in text.split(",") if s.strip()]
    except ValueError:
        what = "integers" if kind is int else "numbers"
        raise InvalidInputError(f"{flag} {text!r} is not a comma-separated list of {what}",
                                f"e.g. {flag} {example}") from None


def refuse_settings_on_resume(given: dict[str, Any], command: str) -> None:
    """``--resume`` continues a run with the settings it started with, and its schedules (learning rate, beta,
    drop-path) span the epochs it started with: a setting flag given with it (``given``: option name -> value,
    None = not given) would be ignored or break the exact continuation, so it is refused."""
    flags = [f"--{'no-' if value is False else ''}{name.replace('_', '-')}" for name, value in given.items()
             if value is not None]  # False: the --no- half of a --flag/--no-flag pair
    if flags:
        raise InvalidInputError(f"--resume continues the run with the settings it started with: {', '.join(flags)} "
                                f"cannot change {'them' if len(flags) > 1 else 'it'}",
                                f"drop {', '.join(flags)}, or start a new {command} with --out")


def search_settings(config_file: Path | None, overrides: dict[str, Any]) -> SearchConfig:
    """Search settings from the command line: a YAML file's, which the flags (``overrides``, None = not given)
    override, or the flags alone; the space's own search defaults fill in the rest."""
    if config_file is not None:
        return load_search_config(config_file, **overrides)
    return search_config_for_space(overrides, "command line")
