"""`dmc search nb201 --bench ARCHIVE`: each epoch's cell looked up in NAS-Bench-201 (NATS-Bench's archive)."""

import bz2
import itertools
import json
import pickle

import numpy as np
import pytest
import yaml

from dmc.bench import NB201Bench
from dmc.errors import InvalidInputError
from dmc.genotype import genotype_from_dict
from dmc.search import SearchConfig, search
from dmc.search.run import nb201_record
from dmc.space import load_space

OPS = ("skip_connect", "nor_conv_3x3")
DATASETS = {"cifar10-valid": ("x-valid",), "cifar10": ("ori-test",), "cifar100": ("x-valid", "x-test"),
            "ImageNet16-120": ("x-valid", "x-test")}


def _arch(ops: tuple[str, ...]) -> str:
    a, b, c, d, e, f = ops
    return f"|{a}~0|+|{b}~0|{c}~1|+|{d}~0|{e}~1|{f}~2|"


@pytest.fixture(scope="module")
def two_op_space(tmp_path_factory):
    """The nb201 space with two candidates per edge (64 cells), and a NATS-Bench archive of all of them in the
    real format (200-epoch results, one seed, accuracies that encode the cell's index)."""
    root = tmp_path_factory.mktemp("two-op")
    spec = load_space("nb201").to_dict()
    spec["name"] = "nb201_two_ops"
    spec["cell"]["normal"] = {"ops": list(OPS)}
    (root / "space.yaml").write_text(yaml.safe_dump(spec))
    archive = root / "NATS-tss-v1_0-3ffb9-simple"
    archive.mkdir()
    archs = [_arch(ops) for ops in itertools.product(OPS, repeat=6)]
    with bz2.open(archive / "meta.pickle.pbz2", "wb") as f:
        pickle.dump({"meta_archs": archs, "evaluated_indexes": list(range(len(archs)))}, f)
    for index, arch in enumerate(archs):
        results = {(dataset, 777): {"params": np.float64(0.1), "flop": np.float64(10.0), "latency": [0.01],
                                    "epochs": 200, "seed": 777,
                                    "eval_acc1es": {f"{name}@199": np.float64(index + k / 10)
                                                    for k, name in enumerate(names)}}
                   for dataset, names in DATASETS.items()}
        state = {"arch_index": index, "arch_str": arch, "all_results": results,
                 "dataset_seed": {dataset: [777] for dataset in DATASETS}}
        with bz2.open(archive / f"{index:06d}.pickle.pbz2", "wb") as f:
            pickle.dump({"200": state}, f)
    return root / "space.yaml", archive


def test_each_epochs_cell_is_looked_up(cli, tmp_path, toy_data, two_op_space):
    space, archive = two_op_space
    run = tmp_path / "run"
    result = cli("search", str(space), "--dataset", toy_data, "--epochs", "2", "--batch-size", "8", "--channels",
                 "4", "--layers", "1", "--bench", str(archive), "--out", str(run))
    assert result.exit_code == 0, result.output
    bench = NB201Bench(archive)
    for line in (run / "history.jsonl").read_text().splitlines():
        record = json.loads(line)
        cell = bench.index(genotype_from_dict(record["genotype"]))
        assert record["nb201"]["index"] == cell
        assert record["nb201"]["cifar10"] == {"valid": cell, "test": cell}  # x-valid of cifar10-valid, ori-test
        assert record["nb201"]["cifar100"] == pytest.approx({"valid": cell, "test": cell + 0.1})
    last = nb201_record(bench, genotype_from_dict(record["genotype"]))
    assert last["ImageNet16-120"]["test"] == pytest.approx(cell + 0.1)


def test_bench_is_refused_outside_nb201_and_for_a_missing_archive(cli, tmp_path, two_op_space):
    space, _ = two_op_space
    darts = cli("search", "tiny", "--bench", str(tmp_path), "--out", str(tmp_path / "a"))
    assert darts.exit_code == 2 and "not its space" in darts.stderr
    missing = cli("search", str(space), "--bench", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b"))
    assert missing.exit_code == 2 and missing.stderr.count("error:") == 1
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_benchmark_for_another_space_than_nb201s_names_the_setting(cli, tmp_path):
    with pytest.raises(InvalidInputError, match="bench looks cells up in NAS-Bench-201; tiny is not its space") as info:
        search(SearchConfig(space="tiny", bench=str(tmp_path)), tmp_path / "run")
    assert info.value.hint == "search the nb201 space, or drop bench" and not (tmp_path / "run").exists()
    result = cli("search", "tiny", "--bench", str(tmp_path), "--out", str(tmp_path / "cli"))
    assert result.exit_code == 2 and result.stderr == ("error: --bench looks cells up in NAS-Bench-201; tiny is not "
                                                       "its space (hint: search the nb201 space, or drop --bench)\n")
