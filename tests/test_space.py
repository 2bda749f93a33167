"""Search-space specs: every bundled file, the published S0-S4 operation sets, and the bad-spec corpus."""

import copy
import json
from pathlib import Path

import pytest
import yaml

from dmc.space import SpecError, bundled_spaces, load_space, space_from_dict

DATA = Path(__file__).parent / "data"
REFERENCE = json.loads((DATA / "rdarts_spaces.json").read_text())["spaces"]


@pytest.mark.parametrize("name", sorted(bundled_spaces()))
def test_every_bundled_space_loads_and_round_trips(name):
    space = load_space(name)
    assert space.name == name
    again = space_from_dict(space.to_dict())
    assert again == space and hash(again) == hash(space) and again.content_hash == space.content_hash
    if space.kind == "chain":
        assert len(space.layer_candidates) == space.macro.num_layers
    else:
        assert len(space.normal.edges) == len(space.edges)


@pytest.mark.parametrize("key,name", [("S0", "darts_s0"), ("S1", "rdarts_s1"), ("S2", "rdarts_s2"),
                                      ("S3", "rdarts_s3"), ("S4", "rdarts_s4")])
def test_darts_spaces_match_the_published_operation_sets(key, name):
    space = load_space(name)
    assert [list(ops) for ops in space.normal.edges] == REFERENCE[key]["normal"]
    assert [list(ops) for ops in space.reduce.edges] == REFERENCE[key]["reduce"]
    assert space.edges[:5] == ((0, 0), (0, 1), (1, 0), (1, 1), (1, 2))
    assert (space.inputs, space.nodes, space.concat, space.derive_rule, space.derive_k) == (2, 4, (2, 3, 4, 5),
                                                                                           "top_k", 2)
    assert (space.macro.channels, space.macro.layers, space.macro.reduction_positions()) == (16, 8, (2, 5))


def test_nb201_space():
    space = load_space("nb201")
    assert space.reduce is None and space.inputs == 1 and len(space.edges) == 6
    assert space.normal.edges[0] == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    assert space.derive_rule == "all" and space.concat == (3,) and not space.pool_batchnorm
    assert (space.macro.kind, space.macro.channels, space.macro.layers) == ("nb201", 16, 5)


def test_macro_overrides_are_validated():
    space = load_space("darts_s0").with_macro(channels=8, layers=5)
    assert space.macro.reduction_positions() == (1, 3) and space.content_hash != load_space("darts_s0").content_hash
    with pytest.raises(SpecError, match="macro.channels"):
        load_space("darts_s0").with_macro(channels=0)


def _s0() -> dict:
    return yaml.safe_load(bundled_spaces()["darts_s0"].read_text())


def _mutate(path, value):
    def apply(data):
        node = data
        for key in path[:-1]:
            node = node[key]
        if value is KeyError:
            del node[path[-1]]
        else:
            node[path[-1]] = value
        return data
    return apply


def _per_edge(n):
    def apply(data):
        data["cell"]["normal"] = {"edges": [["skip_connect", "sep_conv_3x3"]] * n}
        return data
    return apply


BAD_SPECS = {
    "unknown op": (_mutate(["cell", "normal", "ops", 1], "sep_conv_9x9"),
                   "cell.normal.ops[1]: unknown op 'sep_conv_9x9' (known: none, noise,"),
    "wrong edge count": (_per_edge(13), "cell.normal.edges: expected 14 edges (one per node input), got 13"),
    "node input out of range": (_mutate(["cell", "node_inputs"], [[0, 1], [0, 1, 2], [0, 1, 5], [0, 1, 2, 3, 4]]),
                                "cell.node_inputs[2][2]: 5 is out of range (allowed: 0..3)"),
    "reduction past last cell": (_mutate(["macro", "reductions"], [2, 8]),
                                 "macro.reductions[1]: position 8 is past the last cell (layers: 8, allowed: 0..7)"),
    "unknown field": (_mutate(["cell", "nodez"], 4), "cell.nodez: unknown field"),
    "missing field": (_mutate(["macro", "layers"], KeyError), "macro.layers: missing required field"),
    "bad kind": (_mutate(["macro", "kind"], "resnet"), "macro.kind: 'resnet' is not allowed (allowed: darts, nb201)"),
    "bad format": (_mutate(["format"], "dmc.space/9"), "format: 'dmc.space/9' is not supported"),
    "k too large": (_mutate(["derive", "k"], 3), "derive.k: 3 is out of range (allowed: 1..2)"),
    "multiplier": (_mutate(["cell", "multiplier"], 5), "cell.multiplier: 5 is out of range (allowed: 1..4)"),
    "duplicate op": (_mutate(["cell", "reduce", "ops"], ["none", "none"]), "cell.reduce.ops: an op is listed twice"),
    "only none": (_mutate(["cell", "reduce", "ops"], ["none"]), "cell.reduce.edges[0]: only 'none' is offered"),
    "nb201 with reduce": (_mutate(["macro"], {"kind": "nb201", "channels": 16, "layers": 5}),
                          "cell.reduce: nb201 networks have no reduction cells: remove this field"),
    "channels 1e12": (_mutate(["macro", "channels"], 10**12),
                      "macro.channels: 1000000000000 is out of range (allowed: 1..1024)"),
    "layers 1e6": (_mutate(["macro", "layers"], 10**6), "macro.layers: 1000000 is out of range (allowed: 1..256)"),
    "stem multiplier 1e6": (_mutate(["macro", "stem_multiplier"], 10**6),
                            "macro.stem_multiplier: 1000000 is out of range (allowed: 1..16)"),
    "nodes 17": (_mutate(["cell", "nodes"], 17), "cell.nodes: 17 is out of range (allowed: 1..16)"),
    "op a list": (_mutate(["cell", "normal", "ops", 1], ["skip_connect"]),
                  "cell.normal.ops[1]: expected an operation name, got list ['skip_connect']"),
    "op a mapping": (_mutate(["cell", "reduce", "ops", 0], {"max_pool_3x3": 1}),
                     "cell.reduce.ops[0]: expected an operation name, got dict {'max_pool_3x3': 1}"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_specs_name_file_field_and_allowed_values(case, tmp_path):
    mutate, expected = BAD_SPECS[case]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(mutate(copy.deepcopy(_s0()))))
    with pytest.raises(SpecError) as info:
        load_space(path)
    assert str(info.value).startswith(f"{path}: ")
    assert expected in str(info.value)
    assert info.value.exit_code == 2


def test_yaml_syntax_errors_give_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("format: dmc.space/1\nname: x\ncell: [unclosed\nmacro: {}\n")
    with pytest.raises(SpecError, match=r"broken.yaml: line 4, column \d+: YAML syntax error"):
        load_space(path)


def test_duplicate_keys_and_non_utf8_specs_are_refused(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text(bundled_spaces()["tiny"].read_text().replace("  nodes: 2\n", "  nodes: 2\n  nodes: 3\n"))
    with pytest.raises(SpecError, match=r"dup.yaml: line \d+, column 3: duplicate key 'nodes'"):
        load_space(path)
    path.write_bytes(bundled_spaces()["tiny"].read_bytes().replace(b"tiny", b"t\xefny"))
    with pytest.raises(SpecError, match="dup.yaml: not a text file"):
        load_space(path)


def test_a_folder_does_not_hide_a_bundled_name(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny").mkdir()
    assert load_space("tiny") == load_space(bundled_spaces()["tiny"])
    shown = cli("spaces", "show", "tiny")
    assert shown.exit_code == 0 and "name: tiny" in shown.stdout
    (tmp_path / "myspace").mkdir()
    with pytest.raises(SpecError, match="myspace: is a folder, not a spec file"):
        load_space("myspace")
    (tmp_path / "tiny.yaml").write_text(bundled_spaces()["tiny"].read_text().replace("name: tiny", "name: mine"))
    assert load_space("tiny.yaml").name == "mine"  # an existing file is still read as a path


def test_unknown_space_name_lists_the_bundled_ones():
    with pytest.raises(SpecError, match="no such spec file or bundled space") as info:
        load_space("darts_s9")
    assert "rdarts_s3" in info.value.hint


def test_cli_validate_ok_and_bad(cli, tmp_path):
    ok = cli("spaces", "validate", str(bundled_spaces()["rdarts_s1"]))
    assert ok.exit_code == 0 and "ok:" in ok.stdout and "14 edges/cell" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_mutate(["cell", "normal", "ops", 1], "sep_conv_9x9")(_s0())))
    result = cli("spaces", "validate", str(bad))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "unknown op 'sep_conv_9x9'" in result.stderr
    assert "Traceback" not in result.output


def test_cli_list_and_show(cli):
    listed = cli("spaces", "list")
    assert listed.exit_code == 0 and all(n in listed.stdout for n in bundled_spaces())
    shown = cli("spaces", "show", "nb201")
    assert shown.exit_code == 0
    assert space_from_dict(yaml.safe_load(shown.stdout)) == load_space("nb201")
