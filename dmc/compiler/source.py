"""What commands accept as a network source: a genotype (file or published name) or a network file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmc.compiler.networks import CompiledNetwork
from dmc.compiler.saved import load_network, looks_like_network_file, read_network_file
from dmc.errors import InvalidInputError, SettingError
from dmc.families import AnyGenotype
from dmc.genotype import load_genotype, published_genotypes


def resolve_genotype(source: str | Path) -> AnyGenotype:
    """A genotype file (dmc JSON, DARTS text, NAS-Bench-201 string) or a published name such as DARTS_V2.

    An existing file is read as a genotype; any other name (even that of a folder) is looked up among the
    published genotypes."""
    path = Path(source)
    if path.is_file():
        _refuse_models(path, "a genotype", "pass the genotype file it was built from (`dmc derive` writes one)")
        if looks_like_network_file(path):
            raise InvalidInputError(f"{path}: a network file, not a genotype",
                                    "pass the genotype it was compiled from (`dmc derive` writes one), or give "
                                    "the network file to `dmc profile` / `dmc export`")
        return load_genotype(path)
    published = published_genotypes()
    if str(source) in published:
        return published[str(source)]
    problem = "is a folder, not a genotype file" if path.is_dir() else "no such genotype file or published genotype"
    raise InvalidInputError(f"{source}: {problem}",
                            f"published: {', '.join(sorted(published)[:6])}, ... (see `dmc compile --help`)")


def _refuse_models(path: Path, expected: str, hint: str) -> None:
    if path.suffix.lower() == ".onnx":
        raise InvalidInputError(f"{path}: an ONNX model, not {expected}", hint)


@dataclass
class NetworkSource:
    network: CompiledNetwork
    weights: bool
    """True when the weights were loaded from a file (compiled or trained), False for a fresh init."""
    data: dict[str, Any] | None
    """The training data's description (image size, mean, std) when the source is a training checkpoint."""


def network_from_source(source: str | Path, **build_overrides) -> NetworkSource:
    """Loads a `dmc compile` / `dmc train` file (weights included; build overrides are refused), or compiles
    a genotype with freshly initialised weights and ``build_overrides`` (None = default)."""
    from dmc.compiler import build_network

    path = Path(source)
    overrides = {k: v for k, v in build_overrides.items() if v is not None}
    if path.is_file():
        _refuse_models(path, "a dmc network file", "pass the `dmc compile` / `dmc train` file it was exported from")
        if looks_like_network_file(path):
            if overrides:
                raise SettingError(f"{path} already fixes the network's build arguments",
                                   f"drop {', '.join(f'{{{k}}}' for k in overrides)}")
            file = read_network_file(path)
            return NetworkSource(load_network(file), True, file.data)
    return NetworkSource(build_network(resolve_genotype(source), **overrides), False, None)


def genotype_or_network(source: str | Path) -> AnyGenotype | CompiledNetwork:
    """A `dmc compile` / `dmc train` file as its network, weights included, or a genotype (file or published name)."""
    path = Path(source)
    if path.is_file() and looks_like_network_file(path):
        return load_network(read_network_file(path))
    return resolve_genotype(source)
