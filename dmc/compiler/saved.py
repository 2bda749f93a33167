"""Network files: genotype + build arguments + weights, read back as data (``weights_only=True``).

`dmc compile` writes them; `dmc train` checkpoints hold the same fields, so `dmc export`, `dmc profile`
and the detection backbone rebuild a network from either file alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmc.checkpoints import NETWORK, TRAIN_CHECKPOINT, load_checkpoint, save_checkpoint
from dmc.compiler.build import build_network
from dmc.compiler.build_args import BuildArgs
from dmc.errors import InvalidInputError
from dmc.families import AnyGenotype
from dmc.families.genotype_file import GenotypeError
from dmc.genotype import genotype_from_dict
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


@dataclass(frozen=True)
class NetworkFile:
    """A network file or training checkpoint, read and checked once: what :func:`load_network`, the exporter
    and the detection backbone rebuild a network from."""

    path: Path
    genotype: AnyGenotype
    build_args: BuildArgs
    weights: dict[str, Any]
    data: dict[str, Any] | None
    """The training data's description (image size, mean, std) of a training checkpoint; None otherwise."""


def read_network_file(path: str | Path) -> NetworkFile:
    """Reads a network file or a `dmc train` checkpoint as data, with one-line errors."""
    path = Path(path)
    state = load_checkpoint(path, NETWORK_FORMATS, "dmc network file or training checkpoint",
                            "pass a file written by `dmc compile` or `dmc train`")
    try:
        genotype = genotype_from_dict(state["genotype"], f"{path}: genotype")
        args = BuildArgs.from_dict(state["build_args"])
        weights = state["model"]
        if not isinstance(weights, dict):
            raise TypeError("model is not a mapping of tensors")
    except (KeyError, TypeError, GenotypeError) as exc:
        raise InvalidInputError(f"{path}: malformed network file ({exc})") from None
    data = state.get("data")
    return NetworkFile(path, genotype, args, weights, data if isinstance(data, dict) else None)


def load_network(source: str | Path | NetworkFile, strict: bool = True):
    """Rebuilds the network of a network file or training checkpoint (a path or what
    :func:`read_network_file` read) and loads its weights."""
    file = source if isinstance(source, NetworkFile) else read_network_file(source)
    network = build_network(file.genotype, file.build_args)
    load_file_weights(network, file, strict)
    return network


def load_file_weights(network, file: NetworkFile, strict: bool = True) -> None:
    """Loads the weights of ``file`` into ``network`` (of its genotype and build arguments) by name."""
    try:
        network.load_state_dict(file.weights, strict=strict)
    except (KeyError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise InvalidInputError(f"{file.path}: the weights do not fit the network its genotype describes "
                                f"({first[:200]})", "the file was edited or written by another dmc version") from None
