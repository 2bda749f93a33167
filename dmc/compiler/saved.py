"""Network files: genotype + build arguments + weights, read back as data (``weights_only=True``).

`dmc compile` writes them; `dmc train` checkpoints hold the same fields, so `dmc export`, `dmc profile`
and the detection backbone rebuild a network from either file alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dmc.checkpoints import NETWORK, TRAIN_CHECKPOINT, load_checkpoint, save_checkpoint
from dmc.compiler.build_args import BuildArgs
from dmc.errors import InvalidInputError
from dmc.genotype import Genotype, GenotypeError
from dmc.version import __version__

NETWORK_FORMATS = (NETWORK, TRAIN_CHECKPOINT)
NETWORK_SUFFIXES = (".pt", ".pth")
_TORCH_MAGICS = (b"PK\x03\x04", b"\x80\x02")  # torch.save's zip container; its legacy pickle format


def network_record(network) -> dict[str, Any]:
    """The fields every network file holds."""
    return {"genotype": network.genotype.to_dict(), "build_args": network.build_args.to_dict(),
            "model": network.state_dict(), "dmc_version": __version__}


def save_network(network, path: str | Path, **extra: Any) -> Path:
    """Writes a standalone network file atomically."""
    return save_checkpoint(path, NETWORK, {**network_record(network), **extra})


def looks_like_network_file(path: str | Path) -> bool:
    """True for a file that claims to be a network file (a ``.pt``/``.pth`` name, or torch's file format),
    damaged or not: :func:`read_network_file` then says what is wrong with it, where a genotype parser
    would only see binary noise."""
    path = Path(path)
    if path.suffix.lower() in NETWORK_SUFFIXES:
        return True
    try:
        with path.open("rb") as file:
            head = file.read(4)
    except OSError:
        return False
    return bool(head) and head.startswith(_TORCH_MAGICS)


def read_network_file(path: str | Path) -> dict[str, Any]:
    """Loads a network file or a `dmc train` checkpoint as data, with one-line errors."""
    return load_checkpoint(path, NETWORK_FORMATS, "dmc network file or training checkpoint",
                           "pass a file written by `dmc compile` or `dmc train`")


def load_network(path: str | Path, strict: bool = True):
    """Rebuilds the network of a network file or training checkpoint and loads its weights."""
    from dmc.compiler import build_network

    state = read_network_file(path)
    try:
        genotype = Genotype.from_dict(state["genotype"], f"{path}: genotype")
        args = BuildArgs.from_dict(state["build_args"])
    except (KeyError, TypeError, GenotypeError) as exc:
        raise InvalidInputError(f"{path}: malformed network file ({exc})") from None
    network = build_network(genotype, args)
    try:
        network.load_state_dict(state["model"], strict=strict)
    except (KeyError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise InvalidInputError(f"{path}: the weights do not fit the network its genotype describes ({first[:200]})",
                                "the file was edited or written by another dmc version") from None
    return network
