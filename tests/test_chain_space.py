"""Chain search spaces: the bundled specs against the published spaces, and a corpus of broken specs through the
real CLI (one `error:` line naming the file and the field, exit code 2, no traceback)."""

import copy
from pathlib import Path

import pytest
import yaml

from dmc.errors import InvalidInputError
from dmc.families.chain.space import ChainSpace, chain_space_from_dict
from dmc.space import bundled_spaces, load_space

# FBNet (Wu et al., 2019), Table 1: stem conv 3x3 s2 to 16, ReLU; (channels, layers, first stride) per stage of
# searchable layers; head 1x1 conv to 1984; 9 candidates per layer. FBNet's builder turns 'skip' into a 1x1 conv +
# BN + ReLU where the shape changes, so every layer offers all 9.
FBNET = {"stem": (16, 2), "first_block": None, "activation": "relu", "head": 1984, "layers": 22,
         "stages": [(16, 1, 1), (24, 4, 2), (32, 4, 2), (64, 4, 2), (112, 4, 1), (184, 4, 2), (352, 1, 1)],
         "candidates": ["mbconv_k3_e1", "mbconv_k3_e1_g2", "mbconv_k3_e3", "mbconv_k3_e6", "mbconv_k5_e1",
                        "mbconv_k5_e1_g2", "mbconv_k5_e3", "mbconv_k5_e6", "skip"]}
# ProxylessNAS / FairNAS (xiaomi-automl/FairNAS models/FairNAS_*.py): stem 32 s2, separable block to 16, ReLU6,
# 19 searchable layers choosing among k{3,5,7} x e{3,6} and skip; skip only where the shape is kept (not on the
# first layer of a stage); head 1x1 conv to 1280, dropout 0.2.
PROXYLESS = {"stem": (32, 2), "first_block": 16, "activation": "relu6", "head": 1280, "layers": 19,
             "stages": [(32, 2, 2), (40, 4, 2), (80, 4, 2), (96, 4, 1), (192, 4, 2), (320, 1, 1)],
             "candidates": ["mbconv_k3_e3", "mbconv_k3_e6", "mbconv_k5_e3", "mbconv_k5_e6", "mbconv_k7_e3",
                            "mbconv_k7_e6", "skip"]}
SPEC_FILES = {"fbnet_s5": FBNET, "proxyless_s5": PROXYLESS}


@pytest.mark.parametrize("name", sorted(SPEC_FILES))
def test_bundled_chain_spaces_match_the_published_spaces(name):
    facts, space = SPEC_FILES[name], load_space(name)
    assert isinstance(space, ChainSpace) and space.kind == "chain" and space.alpha_groups == ("layers",)
    m = space.macro
    assert (m.stem_channels, m.stem_stride, m.first_block, m.activation, m.head_channels) == (
        *facts["stem"], facts["first_block"], facts["activation"], facts["head"])
    assert [(s.channels, s.layers, s.stride) for s in m.stages] == facts["stages"]
    assert len(space.layer_candidates) == m.num_layers == facts["layers"]
    for slot, ops in zip(space.layer_slots(), space.candidates("layers")):
        first_of_stage = slot.index == 0 or space.layer_slots()[slot.index - 1].stage != slot.stage
        if name == "proxyless_s5" and first_of_stage:
            assert list(ops) == facts["candidates"][:-1]  # no skip where the stage starts
        else:
            assert list(ops) == facts["candidates"]
    assert space.skip_projection == (name == "fbnet_s5")
    assert space.operations == sorted(facts["candidates"])


def test_proxyless_first_of_stage_layers_have_six_candidates():
    counts = [len(ops) for ops in load_space("proxyless_s5").layer_candidates]
    assert counts == [6, 7, 6, 7, 7, 7, 6, 7, 7, 7, 6, 7, 7, 7, 6, 7, 7, 7, 6]
    assert [len(ops) for ops in load_space("fbnet_s5").layer_candidates] == [9] * 22


@pytest.mark.parametrize("name", sorted(SPEC_FILES))
def test_specs_round_trip_and_keep_their_hash(name):
    space = load_space(name)
    again = chain_space_from_dict(space.to_dict())
    assert again == space and again.content_hash == space.content_hash
    assert dict(space.search_defaults)["lr"] == 0.045 and dict(space.search_defaults)["epochs"] == 30


def test_with_macro_scales_the_width_and_refuses_cell_settings():
    space = load_space("proxyless_s5")
    narrow = space.with_macro(width=0.25)
    assert narrow.macro.width == 0.25 and narrow.layer_candidates == space.layer_candidates
    assert narrow.content_hash != space.content_hash and space.with_macro(width=None) is space
    with pytest.raises(InvalidInputError, match="chain space"):
        space.with_macro(channels=16)


# ------------------------------------------------------------------------------------------ the CLI
def spec(name: str) -> dict:
    return yaml.safe_load((Path(__file__).parents[1] / "spaces" / f"{name}.yaml").read_text())


def set_in(data, path, value):
    *parents, last = path
    for key in parents:
        data = data[key]
    if value is DELETE:
        del data[last]
    else:
        data[last] = value


DELETE = object()
BAD_SPECS = {
    # name: (base spec, [(path, value)], text the error line must contain)
    "stride_3": ("proxyless_s5", [(("macro", "stages", 1, "stride"), 3)], "macro: stages[1].stride must be 1 or 2"),
    "stem_stride": ("fbnet_s5", [(("macro", "stem", "stride"), 4)], "macro: stem.stride must be 1 or 2"),
    "zero_channels": ("fbnet_s5", [(("macro", "stages", 2, "channels"), 0)], "macro: stages[2].channels"),
    "skip_at_shape_change": ("proxyless_s5", [(("layers", "first_of_stage"), DELETE)],
                             "layers: layer 0 (stage 0, 16->32, stride 2): offers 'skip' but changes the shape"),
    "unknown_op": ("proxyless_s5", [(("layers", "candidates", 0), "mbconv_k9_e6")],
                   "layers.candidates[0]: unknown op 'mbconv_k9_e6'"),
    "op_a_mapping": ("proxyless_s5", [(("layers", "first_of_stage", 2), {"mbconv_k3_e3": None})],
                     "layers.first_of_stage[2]: expected an operation name, got dict"),
    "op_a_list": ("fbnet_s5", [(("layers", "candidates", 1), ["skip"])],
                  "layers.candidates[1]: expected an operation name, got list"),
    "cell_op": ("fbnet_s5", [(("layers", "candidates", 8), "sep_conv_3x3")],
                "layers: layer 0 (stage 0, 16->16, stride 1): 'sep_conv_3x3' is not a chain layer operation"),
    "per_stage_count": ("proxyless_s5", [(("layers", "candidates"), DELETE), (("layers", "first_of_stage"), DELETE),
                                         (("layers", "per_stage"), [["mbconv_k3_e3"]] * 5)],
                        "layers.per_stage: expected 6 lists (one per stage), got 5"),
    "two_forms": ("proxyless_s5", [(("layers", "per_layer"), [["mbconv_k3_e3"]] * 19)],
                  "layers: give exactly one of candidates"),
    "g2_odd_width": ("fbnet_s5", [(("macro", "stages", 0, "channels"), 15)],
                     "layers: layer 0 (stage 0, 16->15, stride 1): 'mbconv_k3_e1_g2' needs widths divisible by 2"),
    "bad_shape_change": ("proxyless_s5", [(("auxiliary", "shape_change"), "conv3x3")],
                         "auxiliary.shape_change: 'conv3x3' is not allowed (allowed: factorized_reduce, conv1x1)"),
    "odd_reduce_width": ("proxyless_s5", [(("macro", "stages", 1, "channels"), 41)],
                         "auxiliary.shape_change: a factorized reduce needs an even width; layer 2 has 41"),
    "negative_lr": ("fbnet_s5", [(("search", "lr"), -1)], "search.lr: learning rates must be > 0"),
    "cell_search_setting": ("proxyless_s5", [(("search", "layers"), 8)], "search.layers: unknown field"),
    "unknown_top_field": ("proxyless_s5", [(("cells",), {})], "cells: unknown field"),
    "bad_activation": ("proxyless_s5", [(("macro", "activation"), "gelu")], "macro: activation 'gelu' is unknown"),
    "skip_projection_not_bool": ("fbnet_s5", [(("layers", "skip_projection"), "yes")],
                                 "layers.skip_projection: expected true or false"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_broken_specs_give_one_error_line_naming_file_and_field(case, cli, tmp_path):
    base, changes, expected = BAD_SPECS[case]
    data = copy.deepcopy(spec(base))
    for path, value in changes:
        set_in(data, path, value)
    path = tmp_path / f"{case}.yaml"
    path.write_text(yaml.safe_dump(data))
    result = cli("spaces", "validate", str(path))
    assert result.exit_code == 2, result.output  # InvalidInputError's exit code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.output and result.stdout == ""


@pytest.mark.parametrize("name", sorted(SPEC_FILES))
def test_cli_validates_the_bundled_files(name, cli):
    result = cli("spaces", "validate", str(bundled_spaces()[name]))
    assert result.exit_code == 0
    assert f"space '{name}', {SPEC_FILES[name]['layers']} layers, width 1, " \
           f"{len(SPEC_FILES[name]['candidates'])} ops" in result.stdout


def test_cli_lists_and_shows_the_chain_spaces(cli):
    listed = cli("spaces", "list")
    assert listed.exit_code == 0 and "fbnet_s5" in listed.stdout and "proxyless_s5" in listed.stdout
    shown = cli("spaces", "show", "proxyless_s5")
    assert shown.exit_code == 0
    assert chain_space_from_dict(yaml.safe_load(shown.stdout)) == load_space("proxyless_s5")
