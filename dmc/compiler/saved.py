"""Network files: genotype + build arguments + weights, read back as data (``weights_only=True``).

`dmc compile` writes them; `dmc train` checkpoints hold the same fields, so `dmc export`, `dmc profile`
and the detection backbone rebuild a network from either file alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dmc.checkpoints import load_checkpoint, save_checkpoint
from dmc.compiler.build_args import BuildArgs
from dmc.errors import InvalidInputError
from dmc.genotype import Genotype, GenotypeError
from dmc.version import __version__

NETWORK_FORMAT = "dmc.network"
TRAIN_CHECKPOINT_FORMAT = "dmc.train-checkpoint"
NETWORK_FORMATS = (NETWORK_FORMAT, TRAIN_CHECKPOINT_FORMAT)


def network_record(network) -> dict[str, Any]:
    """The fields every network file holds."""
    return {"genotype": network.genotype.to_dict(), "build_args": network.build_args.to_dict(),
            "model": network.state_dict(), "dmc_version": __version__}


def save_network(network, path: str | Path, **extra: Any) -> Path:
    """Writes a standalone network file atomically."""
    return save_checkpoint(path, NETWORK_FORMAT, {**network_record(network), **extra})


def read_network_file(path: str | Path) -> dict[str, Any]:
    """Loads a network file or a `dmc train` checkpoint as data, with one-line errors."""
    return load_checkpoint(path, NETWORK_FORMATS, "dmc network file or training checkpoint",
                           "pass a file written by `dmc compile` or `dmc train`")


def load_network(path: str | Path, strict: bool = True):
    """Rebuilds the network of a network file or training checkpoint and loads its weights."""
    from dmc.compiler import compile

    state = read_network_file(path)
    try:
        genotype = Genotype.from_dict(state["genotype"], f"{path}: genotype")
        args = BuildArgs.from_dict(state["build_args"])
    except (KeyError, TypeError, GenotypeError) as exc:
        raise InvalidInputError(f"{path}: malformed network file ({exc})") from None
    network = compile(genotype, args)
    try:
        network.load_state_dict(state["model"], strict=strict)
    except (KeyError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise InvalidInputError(f"{path}: the weights do not fit the network its genotype describes ({first[:200]})",
                                "the file was edited or written by another dmc version") from None
    return network
