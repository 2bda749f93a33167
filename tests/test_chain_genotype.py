"""Chain genotypes: the JSON file format, describe() and depth(), and broken genotype files through `dmc compile`
(one `error:` line, exit code 2, no network file written)."""

import copy
import json

import pytest

from dmc.families.chain.genotype import ChainGenotype
from dmc.families.genotype_file import GenotypeError
from dmc.genotype import genotype_from_dict, load_genotype, published_genotypes
from dmc.space import load_space

FAIRNAS_A = published_genotypes()["FairNAS_A"]


def fbnet_genotype(layers):
    space = load_space("fbnet_s5")
    return ChainGenotype(tuple(layers), space.macro, space.name, space.content_hash)


def test_json_file_round_trip(tmp_path):
    genotype = fbnet_genotype(["mbconv_k3_e1_g2", "skip"] + ["mbconv_k5_e6"] * 19 + ["skip"])
    path = genotype.save(tmp_path / "g.json")
    data = json.loads(path.read_text())
    assert data["kind"] == "chain" and data["format"] == "dmc.genotype" and data["version"] == 1
    assert data["space"] == {"name": "fbnet_s5", "hash": load_space("fbnet_s5").content_hash}
    assert data["layers"][:2] == ["mbconv_k3_e1_g2", "skip"] and data["macro"]["head"]["channels"] == 1984
    again = load_genotype(path)
    assert isinstance(again, ChainGenotype) and again == genotype
    assert genotype_from_dict(FAIRNAS_A.to_dict()) == FAIRNAS_A


def test_describe_names_every_stage_and_strided_layer():
    assert FAIRNAS_A.describe() == (
        "stage 0 (32): k7_e3 s2, k3_e3; stage 1 (40): k7_e3 s2, k3_e6, k7_e6, k3_e3; "
        "stage 2 (80): k3_e3 s2, k7_e6, k7_e6, k5_e3; stage 3 (96): k3_e6, k5_e3, k5_e3, k3_e6; "
        "stage 4 (192): k3_e6 s2, k7_e6, k3_e6, k7_e6; stage 5 (320): k5_e6")
    described = fbnet_genotype(["skip"] * 22).describe()
    assert described.startswith("stage 0 (16): skip; stage 1 (24): skip s2, skip, skip, skip;")


def test_depth_drops_only_skips_that_keep_the_shape():
    assert FAIRNAS_A.depth() == 19
    ops = ["mbconv_k3_e3"] * 22
    assert fbnet_genotype(ops).depth() == 22
    ops[2] = "skip"  # 24 -> 24, stride 1: the layer is removed
    assert fbnet_genotype(ops).depth() == 21
    ops[1] = "skip"  # 16 -> 24, stride 2: a 1x1 projection stays
    assert fbnet_genotype(ops).depth() == 21
    # the shape-changing layers of FBNet's skeleton: first of stages 1, 2, 3, 4 (64 -> 112), 5, 6 (184 -> 352)
    assert fbnet_genotype(["skip"] * 22).depth() == 6


def test_bad_genotypes_in_memory():
    macro = FAIRNAS_A.macro
    with pytest.raises(GenotypeError, match="18 operations for a skeleton of 19 layers"):
        ChainGenotype(FAIRNAS_A.layers[:-1], macro)
    with pytest.raises(GenotypeError, match=r"layers\[3\]: 'nor_conv_3x3' is not a chain layer operation"):
        ChainGenotype(FAIRNAS_A.layers[:3] + ("nor_conv_3x3",) + FAIRNAS_A.layers[4:], macro)


def mutate(change):
    data = copy.deepcopy(FAIRNAS_A.to_dict())
    change(data)
    return data


BAD_GENOTYPES = {
    "too_few_layers": (lambda d: d["layers"].pop(), "layers: 18 operations for a skeleton of 19 layers"),
    "too_many_layers": (lambda d: d["layers"].append("skip"), "layers: 20 operations for a skeleton of 19 layers"),
    "unknown_op": (lambda d: d["layers"].__setitem__(4, "mbconv_k9_e6"),
                   "layers[4]: 'mbconv_k9_e6' is not a chain layer operation"),
    "cell_op": (lambda d: d["layers"].__setitem__(0, "sep_conv_3x3"),
                "layers[0]: 'sep_conv_3x3' is not a chain layer operation"),
    "not_a_name": (lambda d: d["layers"].__setitem__(1, ["skip"]), "layers[1]: ['skip'] is not a chain layer"),
    "bad_stride": (lambda d: d["macro"]["stages"][0].update(stride=3), "macro: stages[0].stride must be 1 or 2"),
    "bad_activation": (lambda d: d["macro"].update(activation="gelu"), "macro: activation 'gelu' is unknown"),
    "macro_not_mapping": (lambda d: d.update(macro=[1]), "macro: expected a mapping, got list"),
    "no_macro": (lambda d: d.pop("macro"), "a chain genotype needs 'macro'"),
    "unknown_field": (lambda d: d.update(cells={}), "unknown field 'cells' in a chain genotype"),
    "space_name_not_text": (lambda d: d.update(space={"name": 5}), "space must be a mapping of a name and a hash"),
    "skip_where_proxyless_s5_changes_the_shape": (lambda d: d["layers"].__setitem__(2, "skip"),
                                                  "layers[2]: op 'skip' is not a candidate of space 'proxyless_s5'"),
    "odd_width_g2": (lambda d: (d["macro"]["stages"][0].update(channels=33),
                                d["layers"].__setitem__(1, "mbconv_k3_e3_g2")),
                     "layers[1]: 'mbconv_k3_e3_g2' needs widths divisible by 2"),
}


@pytest.mark.parametrize("case", sorted(BAD_GENOTYPES))
def test_dmc_compile_refuses_bad_genotype_files_in_one_line(case, cli, tmp_path):
    change, expected = BAD_GENOTYPES[case]
    path, out = tmp_path / "bad.json", tmp_path / "x.pt"
    path.write_text(json.dumps(mutate(change)))
    result = cli("compile", str(path), "-o", str(out))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), result.stderr
    assert expected in lines[0] and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]  # no network file, no temporary left


def test_a_skip_is_checked_against_the_bundled_space_the_genotype_names():
    """proxyless_s5 offers 'skip' only where the shape is kept; elsewhere it would compile into a strided 1x1 conv."""
    layers = ("skip",) + FAIRNAS_A.layers[1:]
    narrow = load_space("proxyless_s5").with_macro(width=0.25)  # as `dmc search proxyless_s5 --width 0.25` hashes it
    searched = ChainGenotype(layers, narrow.macro, "proxyless_s5", narrow.content_hash)
    with pytest.raises(GenotypeError, match=r"g.json: layers\[0\]: op 'skip' is not a candidate of space "
                                            r"'proxyless_s5' .*\(hint: the genotype names the bundled space"):
        genotype_from_dict(searched.to_dict(), "g.json")
    for space, space_hash in ((None, None), ("proxyless_s5", "0123456789abcdef")):  # no space, another spec
        other = ChainGenotype(layers, FAIRNAS_A.macro, space, space_hash)
        assert genotype_from_dict(other.to_dict()) == other
