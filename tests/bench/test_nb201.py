"""`dmc bench nb201` and NB201Bench on a tiny archive in NATS-Bench's real format (tests/bench/conftest.py): the
numbers of the NAS-Bench-201 / DARTS- protocol, every way of naming a cell, and one-line errors for archives that
are missing, damaged, hostile or of another shape."""

from __future__ import annotations

import bz2
import io
import json
import os
import pickle
import statistics
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from dmc.api import Genotype, NB201Bench, published_genotypes, resolve_nb201_arch
from dmc.bench import RestrictedUnpickler, read_pickle_bz2
from dmc.errors import InvalidInputError

# (label, valid (NATS dataset, key at the last of 200 epochs), test, dataset of the costs): the paper's protocol
PROTOCOL = [("cifar10", ("cifar10-valid", "x-valid@199"), ("cifar10", "ori-test@199"), "cifar10"),
            ("cifar100", ("cifar100", "x-valid@199"), ("cifar100", "x-test@199"), "cifar100"),
            ("ImageNet16-120", ("ImageNet16-120", "x-valid@199"), ("ImageNet16-120", "x-test@199"), "ImageNet16-120")]


def _expected(state: dict) -> dict:
    runs = state["all_results"]

    def accuracy(dataset: str, key: str) -> tuple[float, float, list[int]]:
        seeds = sorted(seed for d, seed in runs if d == dataset)
        values = [float(runs[(dataset, s)]["eval_acc1es"][key]) for s in seeds]
        return statistics.fmean(values), statistics.pstdev(values), seeds

    out = {}
    for name, (vd, vk), (td, tk), cost in PROTOCOL:
        seeds = sorted(seed for d, seed in runs if d == cost)
        latencies = [statistics.fmean(runs[(cost, s)]["latency"]) for s in seeds if runs[(cost, s)]["latency"]]
        params = [float(runs[(cost, s)]["params"]) for s in seeds]
        if cost == "cifar100":  # seed 777's legacy count is wrong: NATS-Bench takes seed 888's (its issue #36)
            assert params[0] != params[1]
            params = [float(runs[(cost, 888)]["params"])]
        out[name] = {"valid": accuracy(vd, vk), "test": accuracy(td, tk), "params": statistics.fmean(params),
                     "flops": statistics.fmean(float(runs[(cost, s)]["flop"]) for s in seeds),
                     "latency": statistics.fmean(latencies)}
    return out


@pytest.mark.parametrize("index", [0, 1])  # 1 is written by numpy 1.x with pickle protocol 2
def test_lookup_is_the_mean_over_seeds_at_the_last_of_200_epochs(base_archive, index):
    result = NB201Bench(base_archive.path).lookup(base_archive.archs[index])
    expected = _expected(base_archive.raw[index]["200"])
    assert result.index == index and result.arch == base_archive.archs[index] and result.epochs == 200
    assert [d.dataset for d in result.datasets] == ["cifar10", "cifar100", "ImageNet16-120"]
    for row in result.datasets:
        want = expected[row.dataset]
        for got, (mean, std, seeds) in ((row.valid, want["valid"]), (row.test, want["test"])):
            assert got.mean == pytest.approx(mean, abs=1e-12) and got.std == pytest.approx(std, abs=1e-12)
            assert list(got.seeds) == seeds
        assert row.params_mb == pytest.approx(want["params"]) and row.flops_m == pytest.approx(want["flops"])
        assert row.latency_s == pytest.approx(want["latency"])
    # CIFAR-10: valid from the cifar10-valid runs (2 seeds), test from the cifar10 runs (1 seed, so std 0)
    assert len(result.cifar10.valid.seeds) == 2 and result.cifar10.test.seeds == (777,) and result.cifar10.test.std == 0
    assert result.cifar10.valid.source == "cifar10-valid x-valid" and result.cifar100.test.source == "cifar100 x-test"


def test_string_genotype_index_and_file_name_the_same_cell(base_archive, tmp_path):
    bench = NB201Bench(base_archive.path)
    arch = base_archive.archs[1]
    first = bench.lookup(arch)
    genotype = Genotype.from_nb201_string(arch)
    # a string with spaces and a node's edges in another order is the same cell
    shuffled = " |nor_conv_3x3~0|+|nor_conv_1x1~1|none~0|+|avg_pool_3x3~2|skip_connect~0|nor_conv_3x3~1| "
    assert bench.lookup(genotype) is first and bench.lookup(1) is first and bench.lookup(shuffled) is first
    assert len(bench) == 4 and bench.index(genotype) == 1
    with pytest.raises(InvalidInputError, match="True is not an index of the archive"):
        bench.index(True)
    saved = genotype.save(tmp_path / "cell.json")
    (tmp_path / "cell.txt").write_text(arch + "\n")
    for source in (str(saved), str(tmp_path / "cell.txt"), arch, "1"):
        assert resolve_nb201_arch(source) in (arch, 1)
        assert bench.lookup(resolve_nb201_arch(source)) is first


def test_cli_prints_the_table_and_json(cli, base_archive):
    arch = base_archive.archs[0]
    expected = _expected(base_archive.raw[0]["200"])
    result = cli("bench", "nb201", arch, "--data", str(base_archive.path))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"NAS-Bench-201 #0: {arch}" and "200 epochs" in lines[1]
    rows = {line.split()[0]: line for line in lines[3:]}
    assert set(rows) == {"CIFAR-10", "CIFAR-100", "ImageNet16-120"}
    c10 = expected["cifar10"]
    assert f"{c10['valid'][0]:.2f} ± {c10['valid'][1]:.2f}" in rows["CIFAR-10"]
    assert f"{c10['test'][0]:.2f} ± 0.00" in rows["CIFAR-10"]
    assert f"{c10['params']:.3f}" in rows["CIFAR-10"] and f"{c10['latency'] * 1000:.2f}" in rows["CIFAR-10"]
    assert rows["CIFAR-10"].split()[-1] == "2/1" and rows["CIFAR-100"].split()[-1] == "2"

    as_json = cli("bench", "nb201", arch, "--data", str(base_archive.path), "--json")
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert data == NB201Bench(base_archive.path).lookup(arch).to_dict()
    assert data["datasets"]["ImageNet16-120"]["test"]["mean"] == pytest.approx(expected["ImageNet16-120"]["test"][0])
    genotype_file = Genotype.from_nb201_string(arch).save(Path(base_archive.path).parent / "cell.json")
    assert cli("bench", "nb201", str(genotype_file), "--data", str(base_archive.path), "--json").stdout == \
        as_json.stdout


def _os_system_pickle(marker: Path) -> bytes:
    """A protocol-0 pickle whose loading would run ``os.system("touch MARKER")``."""
    return b"cos\nsystem\n(V" + f"touch {marker}".encode() + b"\ntR."


class _RunsCommand:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _damage(kind: str, archive, tmp_path: Path) -> tuple[list[str], str]:
    """Damages the archive copy; returns the CLI arguments and what the error line must say."""
    data, meta, arch0 = archive.path, archive.path / "meta.pickle.pbz2", archive.path / "000000.pickle.pbz2"
    arch = archive.archs[0]
    if kind == "missing folder":
        return [arch, "--data", str(tmp_path / "nope")], "nope: no such folder"
    if kind == "tar file":
        (tmp_path / "NATS-tss-v1_0-3ffb9-simple.tar").write_bytes(b"x")
        return [arch, "--data", str(tmp_path / "NATS-tss-v1_0-3ffb9-simple.tar")], "extract it first"
    if kind == "missing meta":
        meta.unlink()
        return [arch, "--data", str(data)], "meta.pickle.pbz2: no such NATS-Bench meta file"
    if kind == "corrupt bz2":
        meta.write_bytes(b"this is not bz2 at all")
        return [arch, "--data", str(data)], "meta.pickle.pbz2: not a bz2-compressed NATS-Bench meta file"
    if kind == "truncated bz2":
        arch0.write_bytes(arch0.read_bytes()[:200])
        return [arch, "--data", str(data)], "000000.pickle.pbz2: not a bz2-compressed NATS-Bench architecture file"
    if kind == "corrupt pickle":
        with bz2.BZ2File(meta, "wb") as f:
            f.write(pickle.dumps({"meta_archs": list(archive.archs)}, protocol=4)[:-20])
        return [arch, "--data", str(data)], "meta.pickle.pbz2: not a readable NATS-Bench meta file (corrupt pickle"
    if kind == "os.system in meta":
        with bz2.BZ2File(meta, "wb") as f:
            f.write(_os_system_pickle(tmp_path / "pwned"))
        return [arch, "--data", str(data)], "meta.pickle.pbz2: the pickle refers to os.system, which benchmark data"
    if kind == "command in an arch file":
        with bz2.BZ2File(arch0, "wb") as f:
            pickle.dump({"200": {"arch_str": _RunsCommand(tmp_path / "pwned")}}, f, protocol=4)
        return [arch, "--data", str(data)], f"000000.pickle.pbz2: the pickle refers to {os.system.__module__}.system"
    if kind == "meta of another shape":
        with bz2.BZ2File(meta, "wb") as f:
            pickle.dump(list(archive.archs), f, protocol=4)
        return [arch, "--data", str(data)], "not a NATS-Bench meta file (no list of arch strings under 'meta_archs')"
    if kind == "size-space archive":
        with bz2.BZ2File(meta, "wb") as f:
            pickle.dump({"meta_archs": ["64:64:64:64:64"]}, f, protocol=4)
        return [arch, "--data", str(data)], "a NATS-Bench size-space (sss) archive"
    if kind == "arch file of another shape":
        with bz2.BZ2File(arch0, "wb") as f:
            pickle.dump({"200": {"dataset_seed": {"cifar10-valid": [777]}, "all_results": [1, 2]}}, f, protocol=4)
        return [arch, "--data", str(data)], "not a NATS-Bench architecture file (['200']['all_results']: a list"
    if kind == "arch not in the archive":
        other = "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_1x1~1|nor_conv_1x1~2|"
        return [other, "--data", str(data)], f"{other}: not among the archive's 4 architectures"
    if kind == "not an nb201 string":
        return ["|sep_conv_3x3~0|+|bogus~0|", "--data", str(data)], "unknown op 'bogus'"
    if kind == "index out of range":
        return ["99", "--data", str(data)], "index 99 is not in the archive (0..3)"
    if kind == "darts genotype":
        return ["DARTS_V2", "--data", str(data)], "DARTS_V2: a darts genotype is not a NAS-Bench-201 cell"
    if kind == "darts genotype file":
        path = published_genotypes()["DARTS_V2"].save(tmp_path / "darts.json")
        return [str(path), "--data", str(data)], "darts.json: a darts genotype is not a NAS-Bench-201 cell"
    if kind == "no 200-epoch results":
        return [archive.archs[2], "--data", str(data)], "#2 " + archive.archs[2] + " has no 200-epoch results in " \
            "this archive (it has: ['12'])"
    if kind == "arch file missing":
        return [archive.archs[3], "--data", str(data)], "no results for architecture #3"
    raise AssertionError(kind)


KINDS = ["missing folder", "tar file", "missing meta", "corrupt bz2", "truncated bz2", "corrupt pickle",
         "os.system in meta", "command in an arch file", "meta of another shape", "size-space archive",
         "arch file of another shape", "arch not in the archive", "not an nb201 string", "index out of range",
         "darts genotype", "darts genotype file", "no 200-epoch results", "arch file missing"]


@pytest.mark.parametrize("kind", KINDS)
def test_errors_are_one_line_with_exit_2(cli, archive, tmp_path, monkeypatch, kind):
    monkeypatch.delenv("DMC_DEBUG", raising=False)
    args, message = _damage(kind, archive, tmp_path)
    result = cli("bench", "nb201", *args)
    lines = result.stderr.splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0], lines[0]
    assert "Traceback" not in result.output and "unexpected" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "pwned").exists()  # a refused global is never called


@pytest.mark.parametrize("file", ["meta.pickle.pbz2", "000000.pickle.pbz2"])
def test_an_array_that_would_crash_numpy_is_one_error_line(dmc_process, archive, hostile_array, file):
    with bz2.BZ2File(archive.path / file, "wb") as f:
        pickle.dump({"meta_archs": list(archive.archs), "x": hostile_array}, f, protocol=2)
    result = dmc_process("bench", "nb201", archive.archs[0], "--data", str(archive.path))
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert f"{file}: numpy dtype 'O8' is not plain data" in result.stderr, result.stderr


def test_the_refused_global_is_never_imported_or_called(tmp_path):
    """The unpickler refuses before importing: a global of a module not yet loaded stays unloaded."""
    marker = tmp_path / "pwned"
    payload = b"cantigravity_never_imported\nfly\n(tR."
    with pytest.raises(InvalidInputError, match=r"x.pbz2: the pickle refers to antigravity_never_imported\.fly"):
        RestrictedUnpickler(io.BytesIO(payload), "x.pbz2").load()
    assert "antigravity_never_imported" not in sys.modules
    with pytest.raises(InvalidInputError, match="refers to os.system"):
        RestrictedUnpickler(io.BytesIO(_os_system_pickle(marker)), "x.pbz2").load()
    assert not marker.exists()
    # an instance of a plain class needs copyreg / the class itself: refused too
    with pytest.raises(InvalidInputError, match="refers to copyreg._reconstructor"):
        RestrictedUnpickler(io.BytesIO(b"ccopy_reg\n_reconstructor\n(tR."), "x.pbz2").load()
    # _codecs.encode is resolved only for what pickles of bytes use it for
    with pytest.raises(InvalidInputError, match="not a readable"):
        read_pickle_bz2(_pbz2(tmp_path / "c.pbz2", b"c_codecs\nencode\n(Vx\nVzlib_codec\ntR."), "test file")


def _pbz2(path: Path, payload: bytes) -> Path:
    with bz2.BZ2File(path, "wb") as f:
        f.write(payload)
    return path


def test_a_bz2_bomb_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr("dmc.bench.archive.MAX_DECOMPRESSED_BYTES", 1000)
    path = _pbz2(tmp_path / "bomb.pbz2", pickle.dumps(b"\0" * 5000, protocol=4))
    with pytest.raises(InvalidInputError, match="decompresses to more than"):
        read_pickle_bz2(path, "test file")


def test_numpy_values_load_but_no_array_of_a_chosen_size_is_allocated(tmp_path):
    data = {"array": np.arange(3.0), "scalar": np.float64(2.5), "ordered": OrderedDict(k=np.int64(1)), "set": {1, 2}}
    for protocol in (2, 4):
        out = read_pickle_bz2(_pbz2(tmp_path / f"p{protocol}.pbz2", pickle.dumps(data, protocol=protocol)), "test file")
        assert np.array_equal(out["array"], data["array"]) and out["scalar"] == 2.5 and out["set"] == {1, 2}
        assert type(out["ordered"]) is OrderedDict and out["ordered"]["k"] == 1
    calls = [b"cnumpy\nndarray\n(I1000000000000\ntR.",  # numpy.ndarray((10**12,)) stands for no callable
             b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(I100000000000\ntVb\ntR."]  # only shape (0,)
    for i, payload in enumerate(calls):
        with pytest.raises(InvalidInputError, match="not a readable test file"):
            read_pickle_bz2(_pbz2(tmp_path / f"call{i}.pbz2", payload), "test file")
