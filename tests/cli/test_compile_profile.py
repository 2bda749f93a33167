"""`dmc compile` and `dmc profile` through the CLI, with the bad-genotype corpus."""

import json
import os
import re
import stat

import pytest

from dmc.compiler import load_network
from dmc.genotype import published_genotypes


def test_compile_and_profile_a_published_genotype(cli, tmp_path):
    out = tmp_path / "dv2.pt"
    result = cli("compile", "DARTS_V2", "--channels", "8", "--layers", "5", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "parameters" in result.stdout and "MACs at 32x32" in result.stdout
    assert load_network(out).build_args.macro.channels == 8
    profiled = cli("profile", str(out), "--repeats", "1")
    assert profiled.exit_code == 0, profiled.output
    assert "latency, batch 32" in profiled.stdout and "MACs" in profiled.stdout
    by_genotype = cli("profile", "DARTS_V2", "--channels", "8", "--layers", "5", "--repeats", "1")
    assert by_genotype.exit_code == 0


def test_the_number_of_classes_is_num_classes_as_in_python_and_classes_still_works(cli, tmp_path):
    for flag, classes in (("--num-classes", 7), ("--classes", 5)):
        out = tmp_path / f"{classes}.pt"
        result = cli("compile", "FairNAS_A", "--width", "0.25", flag, str(classes), "-o", str(out))
        assert result.exit_code == 0, result.output
        assert load_network(out).num_classes == classes


def test_profile_names_the_auxiliary_head_only_when_there_is_one_and_gives_the_latency_range(cli, tmp_path):
    with_head = tmp_path / "aux.pt"
    assert cli("compile", "DARTS_V2", "--channels", "8", "--layers", "5", "--auxiliary", "-o",
               str(with_head)).exit_code == 0
    profiled = cli("profile", str(with_head), "--repeats", "3", "--input-size", "32")
    assert profiled.exit_code == 0, profiled.output
    assert "with auxiliary head" in profiled.stdout
    plain = cli("profile", "DARTS_V2", "--channels", "8", "--layers", "5", "--repeats", "3")
    assert plain.exit_code == 0, plain.output
    assert "auxiliary" not in plain.stdout
    for batch in (1, 32):
        line = next(line for line in plain.stdout.splitlines() if f"latency, batch {batch}" in line)
        median, fastest, slowest = map(float, re.search(r"([\d.]+) ms median, ([\d.]+)-([\d.]+) ms over 3 runs",
                                                        line).groups())
        assert fastest <= median <= slowest


def test_noise_genotypes_compile_with_a_warning(cli, tmp_path):
    result = cli("compile", "cifar10_s4_0", "--channels", "8", "--layers", "5", "-o", str(tmp_path / "n.pt"))
    assert result.exit_code == 0 and "'noise' ops" in result.stderr


def _write(tmp_path, data):
    path = tmp_path / "g.json"
    path.write_text(json.dumps(data) if isinstance(data, dict) else data)
    return path


def _darts_v2():
    return published_genotypes()["DARTS_V2"].to_dict()


def _edit(path, value):
    data = _darts_v2()
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


BAD = {
    "unknown op": (_edit(["cells", "normal", "nodes", 0, 0, 0], "sep_conv_9x9"), "unknown op 'sep_conv_9x9'"),
    "forward input": (_edit(["cells", "normal", "nodes", 0, 0, 1], 4), "input 4 of node 2 points forward"),
    "no reduce": ({k: v for k, v in _edit(["cells", "reduce"], None).items()}, "malformed genotype"),
    "bad version": (_edit(["version"], 2), "genotype version 2 is not supported"),
    "not json": ("{oops", "invalid JSON"),
    "not a genotype": ("hello", "not a genotype"),
    "darts text code": ("Genotype(normal=exec('1'), normal_concat=[2], reduce=[], reduce_concat=[2])",
                        "unsupported expression"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_genotypes_get_one_line_and_exit_2(cli, tmp_path, case):
    data, message = BAD[case]
    result = cli("compile", str(_write(tmp_path, data)), "-o", str(tmp_path / "out.pt"))
    assert result.exit_code == 2, result.output
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "out.pt").exists()


def test_wrong_space_and_bad_sizes(cli, tmp_path):
    result = cli("compile", "cifar10_s3_0", "--space", "rdarts_s4", "-o", str(tmp_path / "x.pt"))
    assert result.exit_code == 2 and "not a candidate of space 'rdarts_s4'" in result.stderr
    result = cli("compile", "DARTS_V2", "--input-size", "30", "--channels", "8", "--layers", "5",
                 "-o", str(tmp_path / "y.pt"))
    assert result.exit_code == 2 and "input size 30x30" in result.stderr
    result = cli("compile", "NOT_A_GENOTYPE", "-o", str(tmp_path / "z.pt"))
    assert result.exit_code == 2 and "no such genotype file or published genotype" in result.stderr
    result = cli("profile", str(tmp_path / "missing.pt"))
    assert result.exit_code == 2


def test_a_folder_does_not_hide_a_published_genotype_and_outputs_follow_the_umask(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "DARTS_V2").mkdir()
    old = os.umask(0o022)
    try:
        result = cli("compile", "DARTS_V2", "--channels", "2", "--layers", "3", "-o", "n.pt")
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert load_network(tmp_path / "n.pt").genotype == published_genotypes()["DARTS_V2"]
    assert stat.S_IMODE((tmp_path / "n.pt").stat().st_mode) == 0o644
