"""NAS-Bench-201 look-up: a cell's accuracies, parameters, FLOPs and latency from NATS-Bench's topology archive.

NATS-Bench's topology search space is NAS-Bench-201's. Its "simple" (fast-mode) archive, e.g. the folder
``NATS-tss-v1_0-3ffb9-simple/``, holds ``meta.pickle.pbz2`` (``{"meta_archs": [arch strings], ...}``) and one
``{index:06d}.pickle.pbz2`` per architecture: ``{hp: ArchResults state}`` with hp ``"12"`` and ``"200"`` (training
epochs). An ArchResults state holds ``arch_str``, ``dataset_seed`` ({dataset: [seeds]}) and ``all_results``
({(dataset, seed): ResultsCount state}); a ResultsCount state holds ``params`` (MB), ``flop`` (M), ``latency``
(a list of seconds, or None), ``epochs`` and ``eval_acc1es`` ({"x-valid@199": accuracy %, ...}).

The numbers follow NATS-Bench's API (``get_more_info`` with ``hp="200"``, averaged over seeds, and
``get_cost_info``) and the protocol of the NAS-Bench-201 and DARTS- papers (DARTS- Table 3), at the last of the
200 epochs:

- CIFAR-10 valid: ``cifar10-valid`` (trained on the train half), ``x-valid``; test: ``cifar10`` (trained on
  train + valid), ``ori-test``;
- CIFAR-100 and ImageNet16-120 valid / test: the dataset's own runs, ``x-valid`` / ``x-test``;
- params, FLOPs, latency: ``get_cost_info(index, dataset, hp="200")`` for ``cifar10``, ``cifar100``,
  ``ImageNet16-120``: means over the seeds, with NATS-Bench's fix of its legacy params / FLOPs (seed 888's value
  when the seeds disagree), latency over the seeds that measured one (None when none did).
"""

from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dmc.bench.archive import read_pickle_bz2
from dmc.errors import InvalidInputError
from dmc.families import AnyGenotype
from dmc.families.cell.genotype import Genotype

HP = "200"
"""The 200-epoch training setting of NAS-Bench-201 (NATS-Bench also has "12")."""
META_FILE = "meta.pickle.pbz2"
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

_SHAPE_HINT = ("NAS-Bench-201 cells have 3 nodes, node i takes one edge from each earlier node, ops: "
               + ", ".join(NB201_OPS) + "; e.g. |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+"
               "|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
_ARCHIVE_HINT = "download NATS-Bench's topology archive (NATS-tss-v1_0-3ffb9-simple.tar), extract it, pass the folder"


@dataclass(frozen=True)
class _Protocol:
    name: str
    label: str
    valid: tuple[str, str]
    test: tuple[str, str]
    cost: str


PROTOCOL = (
    _Protocol("cifar10", "CIFAR-10", ("cifar10-valid", "x-valid"), ("cifar10", "ori-test"), "cifar10"),
    _Protocol("cifar100", "CIFAR-100", ("cifar100", "x-valid"), ("cifar100", "x-test"), "cifar100"),
    _Protocol("ImageNet16-120", "ImageNet16-120", ("ImageNet16-120", "x-valid"), ("ImageNet16-120", "x-test"),
              "ImageNet16-120"),
)
"""Per benchmark dataset: its (NATS dataset, eval set) for valid and test accuracy, and its dataset for costs."""


@dataclass(frozen=True)
class Accuracy:
    """Top-1 accuracy (%) at the last epoch: mean and population std (ddof=0) over ``seeds``."""

    mean: float
    std: float
    seeds: tuple[int, ...]
    source: str
    """Where it was read: NATS dataset and eval set, e.g. ``cifar10-valid x-valid``."""

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "seeds": list(self.seeds), "source": self.source}


@dataclass(frozen=True)
class DatasetResult:
    """One benchmark dataset's valid and test accuracy and costs (``dataset`` is NATS's name: cifar10, ...)."""

    dataset: str
    label: str
    valid: Accuracy
    test: Accuracy
    params_mb: float
    """Parameters in millions (NATS-Bench's "MB"), mean over seeds (seed 888's where they disagree, as NATS-Bench)."""
    flops_m: float
    """FLOPs in millions, mean over seeds (seed 888's where they disagree, as NATS-Bench)."""
    latency_s: float | None
    """Seconds per batch as measured for NATS-Bench (mean over the seeds that have one), None if none has."""

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "valid": self.valid.to_dict(), "test": self.test.to_dict(),
                "params_mb": self.params_mb, "flops_m": self.flops_m, "latency_s": self.latency_s}


@dataclass(frozen=True)
class NB201Result:
    """A NAS-Bench-201 cell's results after 200 epochs on CIFAR-10, CIFAR-100 and ImageNet16-120."""

    arch: str
    index: int
    epochs: int
    cifar10: DatasetResult
    cifar100: DatasetResult
    imagenet16_120: DatasetResult

    @property
    def datasets(self) -> tuple[DatasetResult, ...]:
        return self.cifar10, self.cifar100, self.imagenet16_120

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch, "index": self.index, "epochs": self.epochs,
                "datasets": {d.dataset: d.to_dict() for d in self.datasets}}


def nb201_arch_string(arch: AnyGenotype | str) -> str:
    """The canonical NAS-Bench-201 string of a cell (edges of each node ordered by input, as the archive writes
    them); a DARTS or chain genotype is refused."""
    if isinstance(arch, str):
        arch = Genotype.from_nb201_string(arch)
    if not isinstance(arch, Genotype):
        raise InvalidInputError("a chain genotype is not a NAS-Bench-201 cell", _SHAPE_HINT)
    if arch.kind != "nb201":
        raise InvalidInputError(f"a {arch.kind} genotype is not a NAS-Bench-201 cell",
                                "NAS-Bench-201 covers the cells of the nb201 space (`dmc search nb201`)")
    return "+".join("|" + "|".join(f"{op}~{j}" for op, j in sorted(node, key=lambda edge: edge[1])) + "|"
                    for node in arch.normal.nodes)


def resolve_nb201_arch(source: str | Path) -> str | int:
    """What `dmc bench nb201` accepts: a NAS-Bench-201 string (``|op~0|+|...|``), an archive index (digits), or a
    genotype file or published name; returns the canonical string, or the index."""
    text = str(source).strip()
    if text.startswith("|") and not Path(source).is_file():
        return nb201_arch_string(text)
    if text.isascii() and text.isdigit() and not Path(source).exists():
        return int(text)
    # dmc.compiler.source builds networks (torch): imported only when a genotype file or name needs it
    from dmc.compiler.source import resolve_genotype

    genotype = resolve_genotype(source)
    try:
        return nb201_arch_string(genotype)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{source}: {exc.message}", exc.hint) from None


class NB201Bench:
    """NATS-Bench's topology "simple" archive folder (NAS-Bench-201's results), read lazily: the meta file on
    construction, one architecture's file per new look-up (then cached).

    Files are unpickled as data only (:mod:`dmc.bench.archive`); anything not in the archive's format is one
    :class:`InvalidInputError`.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        _check_folder(self.path)
        meta = read_pickle_bz2(self.path / META_FILE, "NATS-Bench meta file")
        archs = meta.get("meta_archs") if isinstance(meta, dict) else None
        if not isinstance(archs, (list, tuple)) or not all(isinstance(a, str) and a.isprintable() for a in archs):
            raise InvalidInputError(f"{self.path / META_FILE}: not a NATS-Bench meta file (no list of arch strings "
                                    "under 'meta_archs')", _ARCHIVE_HINT)
        if archs and not archs[0].startswith("|"):
            raise InvalidInputError(f"{self.path}: a NATS-Bench size-space (sss) archive, not the topology one "
                                    f"(its first architecture is {archs[0][:40]!r})", _ARCHIVE_HINT)
        self.archs: tuple[str, ...] = tuple(archs)
        self._index = {arch: i for i, arch in enumerate(self.archs)}
        if len(self._index) != len(self.archs):
            raise InvalidInputError(f"{self.path / META_FILE}: an architecture is listed twice", _ARCHIVE_HINT)
        self._cache: dict[int, NB201Result] = {}

    def __len__(self) -> int:
        return len(self.archs)

    def index(self, arch: Genotype | str | int) -> int:
        """The archive index of a cell (a Genotype of kind nb201, a NAS-Bench-201 string, or an index)."""
        if isinstance(arch, bool):
            raise InvalidInputError(f"{arch} is not an index of the archive (0..{len(self.archs) - 1})")
        if isinstance(arch, (int, np.integer)):
            if not 0 <= arch < len(self.archs):
                raise InvalidInputError(f"index {arch} is not in the archive (0..{len(self.archs) - 1})")
            return int(arch)
        text = nb201_arch_string(arch)
        if text not in self._index:
            raise InvalidInputError(f"{text}: not among the archive's {len(self.archs)} architectures", _SHAPE_HINT)
        return self._index[text]

    def lookup(self, arch: Genotype | str | int) -> NB201Result:
        """The 200-epoch results of a cell (see the module docstring for which numbers)."""
        index = self.index(arch)
        if index not in self._cache:
            self._cache[index] = self._read(index)
        return self._cache[index]

    def _read(self, index: int) -> NB201Result:
        arch = self.archs[index]
        file = self.path / f"{index:06d}.pickle.pbz2"
        if not file.exists() and (self.path / f"{index}.pickle.pbz2").exists():
            file = self.path / f"{index}.pickle.pbz2"  # NATS-Bench reads either name
        if not file.exists():
            raise InvalidInputError(f"{self.path}: no results for architecture #{index} {arch} ({file.name} is "
                                    "missing)", f"the archive is incomplete: {_ARCHIVE_HINT}")
        data = read_pickle_bz2(file, "NATS-Bench architecture file")
        reader = _Reader(file)
        hps = reader.mapping(data, "the file")
        if HP not in hps:
            raise InvalidInputError(f"{file}: architecture #{index} {arch} has no {HP}-epoch results in this "
                                    f"archive (it has: {_short(list(hps)) if hps else 'none'})")
        results = reader.mapping(hps[HP], f"[{HP!r}]")
        stored = results.get("arch_str")
        if isinstance(stored, str) and stored != arch:
            raise InvalidInputError(f"{file}: holds {_short(stored)}, but the meta file lists {arch} as #{index}",
                                    "the file does not belong to this archive")
        datasets: list[DatasetResult] = []
        epochs: set[int] = set()
        for protocol in PROTOCOL:
            valid = reader.accuracy(results, *protocol.valid, epochs)
            test = reader.accuracy(results, *protocol.test, epochs)
            params, flops, latency = reader.costs(results, protocol.cost)
            datasets.append(DatasetResult(protocol.name, protocol.label, valid, test, params, flops, latency))
        if len(epochs) != 1:
            raise InvalidInputError(f"{file}: runs of {sorted(epochs)} epochs under {HP!r}: not one setting")
        return NB201Result(arch, index, epochs.pop(), *datasets)


def _check_folder(path: Path) -> None:
    if path.is_dir():
        return
    if not path.exists():
        raise InvalidInputError(f"{path}: no such folder", _ARCHIVE_HINT)
    name = path.name.lower()
    if name.endswith((".tar", ".tar.gz", ".tgz")):
        raise InvalidInputError(f"{path}: an archive file: extract it first (tar xf {path.name})",
                                "pass the extracted NATS-tss-...-simple folder")
    if name.endswith(".pth"):
        raise InvalidInputError(f"{path}: a NAS-Bench-201 .pth file is not read (a multi-GB pickle)",
                                "NATS-Bench's topology archive holds the same 200-epoch results: "
                                + _ARCHIVE_HINT)
    raise InvalidInputError(f"{path}: a file, not a NATS-Bench 'simple' archive folder", _ARCHIVE_HINT)


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 2, 60, 60


def _short(value: Any) -> str:
    """A value from a file, quoted for a one-line message (newlines escaped, long or deep ones cut)."""
    return _REPR.repr(value)


class _Reader:
    """Reads the fields of one architecture file, checking their shape; errors name the file and the field."""

    def __init__(self, file: Path):
        self.file = file

    def fail(self, where: str, problem: str) -> InvalidInputError:
        return InvalidInputError(f"{self.file}: not a NATS-Bench architecture file ({where}: {problem})",
                                 "the file is damaged or from another archive: extract the archive again")

    def mapping(self, value: Any, where: str) -> dict:
        if not isinstance(value, dict):
            raise self.fail(where, f"a {type(value).__name__}, expected a dict")
        return value

    def number(self, value: Any, where: str) -> float:
        if not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating)):
            try:
                if math.isfinite(float(value)):
                    return float(value)
            except OverflowError:
                pass
        raise self.fail(where, f"{_short(value)} is not a finite number")

    def runs(self, results: dict, dataset: str) -> tuple[tuple[int, ...], list[dict]]:
        seeds = self.mapping(results.get("dataset_seed"), f"[{HP!r}]['dataset_seed']").get(dataset)
        if seeds is not None and (not isinstance(seeds, (list, tuple))
                                  or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool)
                                             for s in seeds)):
            raise self.fail(f"dataset_seed[{dataset!r}]", f"{_short(seeds)} is not a list of seeds")
        if not seeds:
            raise InvalidInputError(f"{self.file}: no {HP}-epoch runs on {dataset} in this archive")
        all_results = self.mapping(results.get("all_results"), f"[{HP!r}]['all_results']")
        runs = []
        for seed in seeds:
            if (dataset, seed) not in all_results:
                raise self.fail("all_results", f"no run {(dataset, int(seed))} although dataset_seed lists it")
            runs.append(self.mapping(all_results[(dataset, seed)], f"all_results[{(dataset, int(seed))}]"))
        return tuple(int(s) for s in seeds), runs

    def accuracy(self, results: dict, dataset: str, eval_set: str, epochs: set[int]) -> Accuracy:
        seeds, runs = self.runs(results, dataset)
        values = []
        for seed, run in zip(seeds, runs):
            where = f"all_results[{(dataset, seed)}]"
            total = run.get("epochs")
            if isinstance(total, bool) or not isinstance(total, (int, np.integer)) or total < 1:
                raise self.fail(f"{where}['epochs']", f"{_short(total)} is not a number of epochs")
            epochs.add(int(total))
            key = f"{eval_set}@{int(total) - 1}"  # NATS: the last epoch when none is asked for
            accs = self.mapping(run.get("eval_acc1es"), f"{where}['eval_acc1es']")
            if key not in accs:
                raise InvalidInputError(f"{self.file}: the {dataset} run of seed {seed} has no {key} accuracy")
            values.append(self.number(accs[key], f"{where}['eval_acc1es'][{key!r}]"))
        return Accuracy(_mean(values), float(np.std(values)), seeds, f"{dataset} {eval_set}")

    def costs(self, results: dict, dataset: str) -> tuple[float, float, float | None]:
        seeds, runs = self.runs(results, dataset)
        params, flops, latencies = [], [], []
        for seed, run in zip(seeds, runs):
            where = f"all_results[{(dataset, seed)}]"
            params.append(self.number(run.get("params"), f"{where}['params']"))
            flops.append(self.number(run.get("flop"), f"{where}['flop']"))
            latency = run.get("latency")
            if latency is None:  # NATS: -1, not measured
                continue
            if not isinstance(latency, (list, tuple)):
                raise self.fail(f"{where}['latency']", f"a {type(latency).__name__}, expected a list of seconds")
            measured = [self.number(x, f"{where}['latency']") for x in latency]
            if measured and _mean(measured) > 0:
                latencies.append(_mean(measured))
        return (_mean(_legacy_fix(params, seeds)), _mean(_legacy_fix(flops, seeds)),
                _mean(latencies) if latencies else None)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)  # as NATS-Bench averages (not np.mean's pairwise sum): the same last digits


def _legacy_fix(values: list[float], seeds: tuple[int, ...]) -> list[float]:
    """NATS-Bench's get_compute_costs: some runs recorded wrong params / FLOPs (NATS-Bench issue #36); when the
    seeds disagree at 5 decimals, only seed 888's value counts (without a seed 888, where NATS-Bench fails, the
    mean is kept)."""
    if len(values) > 1 and len({f"{v:.5f}" for v in values}) > 1 and 888 in seeds:
        return [values[seeds.index(888)]]
    return values
