"""Genotypes: validation, dmc JSON, DARTS text (parsed as data, never evaluated), NAS-Bench-201 strings."""

import json
import re

import pytest

from dmc.errors import InvalidInputError
from dmc.families.cell.genotype import CellGenotype, Genotype
from dmc.families.genotype_file import GenotypeError
from dmc.genotype import genotype_from_dict, load_genotype, published_genotypes

PUBLISHED = {name: g for name, g in published_genotypes().items() if isinstance(g, Genotype)}
"""The published cells (chain networks: test_chain_*)."""


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_every_published_genotype_round_trips(name, tmp_path):
    genotype = PUBLISHED[name]
    assert genotype_from_dict(json.loads(json.dumps(genotype.to_dict()))) == genotype
    assert Genotype.from_darts_text(genotype.to_darts_text()) == genotype
    path = genotype.save(tmp_path / "g.json")
    assert load_genotype(path) == genotype
    assert genotype.deterministic == ("_s4_" not in name)


def test_darts_v2_matches_the_published_cell():
    g = PUBLISHED["DARTS_V2"]
    assert g.normal.nodes[0] == (("sep_conv_3x3", 0), ("sep_conv_3x3", 1))
    assert g.normal.nodes[3] == (("skip_connect", 0), ("dil_conv_3x3", 2))
    assert g.reduce.concat == (2, 3, 4, 5)


def test_darts_text_with_range_and_tuples(tmp_path):
    text = ("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1)], normal_concat=range(2, 3), "
            "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=range(2, 3))")
    g = Genotype.from_darts_text(text)
    assert g.normal.concat == (2,) and g.reduce.nodes == ((("max_pool_3x3", 0), ("max_pool_3x3", 1)),)
    (tmp_path / "g.txt").write_text(text)
    assert load_genotype(tmp_path / "g.txt") == g


@pytest.mark.parametrize("text", [
    "__import__('os').system('echo pwned')",
    "Genotype(normal=__import__('os').listdir('.'), normal_concat=[2], reduce=[], reduce_concat=[2])",
    "Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1)], normal_concat=list(range(2, 3)), "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2])",
    "Genotype(normal=[('sep_conv_3x3', 0)], normal_concat=[2], **{'reduce': [], 'reduce_concat': [2]})",
])
def test_darts_text_is_never_evaluated(text):
    with pytest.raises(GenotypeError):
        Genotype.from_darts_text(text)


def test_nb201_string_round_trip():
    text = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    g = Genotype.from_nb201_string(text)
    assert g.kind == "nb201" and g.reduce is None and g.normal.concat == (3,)
    assert g.to_nb201_string() == text
    assert genotype_from_dict(g.to_dict()) == g


@pytest.mark.parametrize("nodes,message", [
    (((("sep_conv_3x3", 0), ("sep_conv_3x3", 2)),), "input 2 of node 2 points forward"),
    (((("sep_conv_9x9", 0), ("sep_conv_3x3", 1)),), "unknown op 'sep_conv_9x9'"),
    (((),), "a node needs at least one edge"),
])
def test_invalid_cells_are_refused(nodes, message):
    cell = CellGenotype(nodes, (2,))
    with pytest.raises(GenotypeError, match=message):
        Genotype(cell, cell)


def test_malformed_files_give_clear_errors(tmp_path):
    (tmp_path / "a.json").write_text('{"format": "dmc.genotype", "version": 1, "cells": {"normal": {}}}')
    with pytest.raises(GenotypeError, match="a.json: malformed genotype"):
        load_genotype(tmp_path / "a.json")
    (tmp_path / "b.json").write_text('{"format": "dmc.genotype", "version": 7}')
    with pytest.raises(GenotypeError, match="version 7 is not supported"):
        load_genotype(tmp_path / "b.json")
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(GenotypeError, match="invalid JSON at line 1"):
        load_genotype(tmp_path / "c.json")
    with pytest.raises(GenotypeError, match="cannot read"):
        load_genotype(tmp_path / "missing.json")


def _darts_v2_dict():
    return published_genotypes()["DARTS_V2"].to_dict()


@pytest.mark.parametrize("index,shown", [(1.9, "1.9"), (1.0, "1.0"), ("1", "'1'"), (True, "True")])
def test_indices_must_be_integers_not_truncated(index, shown):
    data = _darts_v2_dict()
    data["cells"]["normal"]["nodes"][1][0][1] = index
    with pytest.raises(GenotypeError, match=rf"cells.normal.nodes\[1\]: index {re.escape(shown)} is not an integer"):
        genotype_from_dict(data)
    data = _darts_v2_dict()
    data["cells"]["reduce"]["concat"] = [2, 3, 4, index + 4 if isinstance(index, float) else index]
    with pytest.raises(GenotypeError, match="cells.reduce.concat: index"):
        genotype_from_dict(data)
    text = published_genotypes()["DARTS_V2"].to_darts_text().replace("0)", f"{index!r})", 1)
    with pytest.raises(GenotypeError, match="index .* is not an integer"):
        Genotype.from_darts_text(text)


def test_concat_must_list_each_state_once():
    data = _darts_v2_dict()
    data["cells"]["normal"]["concat"] = [2, 3, 3, 5]
    with pytest.raises(GenotypeError, match=r"cells.normal.concat: a state is listed twice: \[2, 3, 3, 5\]"):
        genotype_from_dict(data)
    data["cells"]["normal"]["concat"] = []
    with pytest.raises(GenotypeError, match="cells.normal.concat: empty"):
        genotype_from_dict(data)


@pytest.mark.parametrize("concat,message", [
    ("range(0, 3000000000)", "3000000000 indices, more than a cell has states"),
    ("range(10**9)", "unsupported expression"),
    ("range(2, 6, 0)", "arg 3 must not be zero"),
    ("range(2, 6, 1, 1)", "range expected at most 3 arguments"),
])
def test_darts_text_ranges_are_bounded_before_they_are_built(concat, message):
    text = ("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1)], normal_concat=" + concat
            + ", reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2])")
    with pytest.raises(GenotypeError, match=re.escape(message)):
        Genotype.from_darts_text(text)


def test_cells_have_at_most_16_nodes():
    data = _darts_v2_dict()
    data["cells"]["normal"]["nodes"] = [[["skip_connect", 0]]] * 17
    data["cells"]["normal"]["concat"] = [2]
    with pytest.raises(GenotypeError, match="cells.normal: 17 nodes, more than dmc builds"):
        genotype_from_dict(data)


def test_binary_and_deeply_nested_genotype_files(tmp_path):
    (tmp_path / "g.json").write_bytes(b"\x80\x81\x82")
    with pytest.raises(GenotypeError, match=r"g.json: not a text file \(invalid UTF-8 at byte 0\)"):
        load_genotype(tmp_path / "g.json")
    (tmp_path / "d.json").write_text('{"cells": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(GenotypeError, match="d.json: nested too deeply"):
        load_genotype(tmp_path / "d.json")
    (tmp_path / "d.txt").write_text("Genotype(normal=" + "[" * 1000 + "]" * 1000 + ")")
    with pytest.raises(GenotypeError, match="d.txt: not a DARTS genotype"):
        load_genotype(tmp_path / "d.txt")


def _edited(path, value):
    data = _darts_v2_dict()
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize("path, value, message", [
    (["cells", "normal2"], {"nodes": [[["skip_connect", 0]]], "concat": [2]},
     "cells.normal2: unknown cell type (allowed: normal, reduce)"),
    (["cells"], [], "cells: expected a mapping of cell types to cells, got list"),
    (["colour"], "red", "unknown field 'colour' in a genotype"),
    (["cells", "normal", "nodes", 0, 0, 0], ["sep_conv_3x3"], "cells.normal.nodes[0]: operation ['sep_conv_3x3'] is "
                                                             "not a name"),
    (["cells", "reduce", "nodes", 1, 1, 0], {"max_pool_3x3": 1},
     "cells.reduce.nodes[1]: operation {'max_pool_3x3': 1} is not a name"),
    (["space"], "darts_s0", "space must be a mapping of a name and a hash"),
    (["space", "name"], ["darts_s0"], "space must be a mapping of a name and a hash (text or null); its name is "
                                      "['darts_s0']"),
    (["macro"], {"kind": "darts", "channels": 16, "layers": 8, "reductions": [[2], 5]},
     "macro: reduction positions [[2], 5] do not fit 8 cells"),
])
def test_fields_of_the_wrong_kind_are_refused_by_name(path, value, message):
    with pytest.raises(InvalidInputError) as info:
        genotype_from_dict(_edited(path, value), "g.json")
    assert str(info.value).startswith(f"g.json: {message}")


def test_a_genotype_is_checked_against_the_bundled_space_it_names():
    """The bundled space a genotype names must be able to produce it, unless its hash says it is another spec."""
    from dmc.space import load_space

    tiny = load_space("tiny")
    data = _edited(["space"], {"name": "tiny", "hash": None})
    with pytest.raises(GenotypeError, match=r"g.json: cells.normal: 4 nodes, but space 'tiny' has 2 \(hint: the "
                                            r"genotype names the bundled space tiny, which cannot produce it"):
        genotype_from_dict(data, "g.json")
    data["space"]["hash"] = tiny.content_hash
    with pytest.raises(GenotypeError, match="4 nodes, but space 'tiny' has 2"):
        genotype_from_dict(data, "g.json")
    data["space"]["hash"] = "0123456789abcdef"  # a copy of tiny.yaml, edited: a space dmc cannot see
    assert genotype_from_dict(data).space == "tiny"
    narrow = tiny.with_macro(channels=2, layers=5)  # as `dmc search tiny --channels 2 --layers 5` hashes it
    cell = CellGenotype(((("sep_conv_3x3", 0), ("skip_connect", 1)), (("max_pool_3x3", 0), ("dil_conv_3x3", 2))),
                        (2, 3))
    searched = Genotype(cell, cell, space="tiny", space_hash=narrow.content_hash, macro=narrow.macro)
    with pytest.raises(GenotypeError, match=r"cells.normal.nodes\[1\]: op 'dil_conv_3x3' on input 2 is not a "
                                            "candidate of space 'tiny'"):
        genotype_from_dict(searched.to_dict(), "g.json")
    allowed = Genotype(*[CellGenotype(cell.nodes[:1] + ((("max_pool_3x3", 0), ("sep_conv_3x3", 2)),), (2, 3))] * 2,
                       space="tiny", space_hash=narrow.content_hash, macro=narrow.macro)
    assert genotype_from_dict(allowed.to_dict()) == allowed
