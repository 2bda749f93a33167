"""A tiny NATS-Bench topology "simple" archive written in the real format (NATS-Bench's ``pickle_save``: a bz2
file holding a protocol-4 pickle of plain dicts, OrderedDicts, lists, tuples and numpy scalars).

The folder holds ``meta.pickle.pbz2`` listing 4 architectures and ``{index:06d}.pickle.pbz2`` for three of them:

- #0 and #1: ``{"12": ArchResults state, "200": ArchResults state}`` on the four datasets, seeds 777 and 888
  except ``cifar10`` (777 only, as in NAS-Bench-201, where some runs have fewer seeds); the ``cifar100`` run of
  seed 888 has no latency (None), the ``ImageNet16-120`` run of seed 777 two measurements; the 200-epoch
  ``cifar100`` run of seed 777 records wrong params (NATS-Bench issue #36: seed 888's count). #1 is written as
  numpy 1.x and pickle protocol 2 write: ``numpy.core.multiarray`` and ``_codecs.encode`` globals.
- #2: only the 12-epoch results.
- #3: listed in the meta file, no file.
"""

from __future__ import annotations

import bz2
import pickle
import shutil
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
]
EVAL_SETS = {"cifar10-valid": ("x-valid", "ori-test"), "cifar10": ("ori-test",),
             "cifar100": ("ori-test", "x-valid", "x-test"), "ImageNet16-120": ("ori-test", "x-valid", "x-test")}
SEEDS = {"cifar10-valid": [777, 888], "cifar10": [777], "cifar100": [777, 888], "ImageNet16-120": [777, 888]}
CLASSES = {"cifar10-valid": 10, "cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}


def _results_count(rng, arch: str, dataset: str, seed: int, epochs: int) -> dict:
    """A ResultsCount state dict as NATS-Bench stores it (the simple archive has no weights)."""
    legacy_bug = dataset == "cifar100" and seed == 777 and epochs == 200
    evals = [f"{name}@{e}" for name in EVAL_SETS[dataset] for e in range(epochs)]
    if dataset == "cifar100" and seed == 888:
        latency = None
    elif dataset == "ImageNet16-120" and seed == 777:
        latency = [float(rng.uniform(0.01, 0.03)), float(rng.uniform(0.01, 0.03))]
    else:
        latency = [float(rng.uniform(0.01, 0.03))]
    return {
        "name": dataset, "net_state_dict": None,
        "train_acc1es": OrderedDict((e, np.float64(rng.uniform(10, 99))) for e in range(epochs)),
        "train_acc5es": OrderedDict((e, np.float64(rng.uniform(10, 99))) for e in range(epochs)),
        "train_losses": OrderedDict((e, np.float64(rng.uniform(0, 3))) for e in range(epochs)),
        "train_times": OrderedDict((e, float(rng.uniform(5, 20))) for e in range(epochs)),
        "arch_config": {"name": "infer.tiny", "channel": 16, "num_cells": 5, "arch_str": arch,
                        "class_num": CLASSES[dataset]},
        # the seeds agree on params and FLOPs (below 5 decimals), except a wrong legacy value (NATS-Bench issue #36)
        "params": np.float64(1.5 + CLASSES[dataset] / 1000 + (0.1 if legacy_bug else 0)),
        "flop": float(200 + CLASSES[dataset] / 100 + seed * 1e-9),
        "seed": seed, "epochs": epochs, "latency": latency,
        "eval_names": list(EVAL_SETS[dataset]),
        "eval_acc1es": {key: np.float64(rng.uniform(10, 95)) for key in evals},
        "eval_losses": {key: np.float64(rng.uniform(0, 3)) for key in evals},
        "eval_times": {key: float(rng.uniform(0.5, 2)) for key in evals},
    }


def _arch_results(rng, index: int, epochs: int) -> dict:
    """An ArchResults state dict: ``all_results`` keyed by (dataset, seed), ``dataset_seed`` the sorted seeds."""
    arch = ARCHS[index]
    return {"arch_index": index, "arch_str": arch, "clear_net_done": True,
            "all_results": {(d, s): _results_count(rng, arch, d, s, epochs) for d, seeds in SEEDS.items()
                            for s in seeds},
            "dataset_seed": {d: list(seeds) for d, seeds in SEEDS.items()}}


def write_pbz2(path: Path, payload: bytes) -> Path:
    with bz2.BZ2File(path, "wb") as f:
        f.write(payload)
    return path


@dataclass
class Archive:
    path: Path
    raw: dict[int, dict]
    """What each architecture file holds, as written (for expected values computed in the tests)."""
    archs: tuple[str, ...] = tuple(ARCHS)


@pytest.fixture(scope="session")
def base_archive(tmp_path_factory) -> Archive:
    folder = tmp_path_factory.mktemp("nats") / "NATS-tss-v1_0-3ffb9-simple"
    folder.mkdir()
    rng = np.random.default_rng(0)
    write_pbz2(folder / "meta.pickle.pbz2",
               pickle.dumps({"meta_archs": list(ARCHS), "evaluated_indexes": [0, 1, 2]}, protocol=4))
    raw = {}
    for index in (0, 1, 2):
        raw[index] = {"12": _arch_results(rng, index, 12)}
        if index != 2:
            raw[index]["200"] = _arch_results(rng, index, 200)
        if index == 1:
            payload = pickle.dumps(raw[index], protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            assert b"cnumpy.core.multiarray\nscalar\n" in payload and b"c_codecs\nencode\n" in payload
        else:
            payload = pickle.dumps(raw[index], protocol=4)
        write_pbz2(folder / f"{index:06d}.pickle.pbz2", payload)
    return Archive(folder, raw)


@pytest.fixture
def archive(base_archive, tmp_path) -> Archive:
    """A fresh copy of the tiny archive, for tests that damage it."""
    folder = tmp_path / base_archive.path.name
    shutil.copytree(base_archive.path, folder)
    return Archive(folder, base_archive.raw)
