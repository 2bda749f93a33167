"""Genotypes: validation, dmc JSON, DARTS text (parsed as data, never evaluated), NAS-Bench-201 strings."""

import json

import pytest

from dmc.genotype import CellGenotype, Genotype, GenotypeError, load_genotype, published_genotypes

PUBLISHED = published_genotypes()


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_every_published_genotype_round_trips(name, tmp_path):
    genotype = PUBLISHED[name]
    assert Genotype.from_dict(json.loads(json.dumps(genotype.to_dict()))) == genotype
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
])
def test_darts_text_is_never_evaluated(text):
    with pytest.raises(GenotypeError):
        Genotype.from_darts_text(text)


def test_nb201_string_round_trip():
    text = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    g = Genotype.from_nb201_string(text)
    assert g.kind == "nb201" and g.reduce is None and g.normal.concat == (3,)
    assert g.to_nb201_string() == text
    assert Genotype.from_dict(g.to_dict()) == g


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
