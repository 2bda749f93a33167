"""The genotype compiler: every published genotype, the reference parameter count, feature_info, checks."""

import json
from pathlib import Path

import pytest
import torch

from dmc.compiler import BuildArgs, build_network, load_network, save_network
from dmc.errors import InvalidInputError
from dmc.families.cell.genotype import Genotype
from dmc.genotype import genotype_from_dict, published_genotypes
from dmc.genotype_checks import check_genotype_in_space
from dmc.profile import count_macs
from dmc.space import load_space

PUBLISHED = {name: g for name, g in published_genotypes().items() if isinstance(g, Genotype)}
"""The published cells (chain networks: tests/compiler/test_chain_networks.py)."""
NB201_BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def _check_features(network, size):
    network.eval()
    x = torch.randn(2, network.build_args.in_channels, size, size)
    with torch.no_grad():
        torch.manual_seed(0)  # 'noise' ops draw random outputs
        last, features = network.forward_intermediates(x)
        torch.manual_seed(0)
        assert torch.equal(network.forward_features(x), last) and torch.equal(network.head_act(features[-1]), last)
        torch.manual_seed(0)
        torch.testing.assert_close(network.forward_head(last), network(x))
    assert len(features) == len(network.feature_info)
    for feature, info in zip(features, network.feature_info):
        assert feature.shape[1] == info["num_chs"]
        assert feature.shape[-1] * info["reduction"] == size
        assert network.get_submodule(info["module"]) is not None
    picked = network.forward_intermediates(x, [1, -1], intermediates_only=True)
    assert [f.shape for f in picked] == [features[1].shape, features[-1].shape]
    assert [f.shape for f in network.forward_intermediates(x, 2, intermediates_only=True)] == \
        [f.shape for f in features[-2:]]
    with pytest.raises(InvalidInputError, match="out of range"):
        network.forward_intermediates(x, [len(features)])
    with pytest.raises(InvalidInputError, match="indices=True: expected a number of stages or a list"):
        network.forward_intermediates(x, True)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_every_published_genotype_compiles_runs_and_reports(name):
    network = build_network(PUBLISHED[name], channels=8, layers=5, auxiliary=True)
    network.eval()
    assert network(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert 0 < network.num_parameters() < network.num_parameters(include_auxiliary=True)
    assert count_macs(network, 32) > 0
    _check_features(network, 32)
    assert network.deterministic == ("_s4_" not in name)


def test_darts_v2_has_exactly_the_published_parameter_count():
    network = build_network(PUBLISHED["DARTS_V2"], channels=36, layers=20, num_classes=10, auxiliary=True)
    assert network.num_parameters() == 3_349_342  # auxiliary head excluded, as DARTS counts
    assert count_macs(network, 32) == 528_359_040


def test_imagenet_style_has_two_stems_and_stride_8_before_the_cells():
    full = build_network(PUBLISHED["DARTS_V2"], BuildArgs.defaults_for("imagenet"))
    assert full.num_parameters() == 4_718_752  # DARTS reports 4.7M
    small_args = BuildArgs.defaults_for("imagenet").replace(num_classes=10, channels=8, layers=5, auxiliary=True)
    small = build_network(PUBLISHED["DARTS_V2"], small_args)
    assert [i["reduction"] for i in small.feature_info] == [8, 8, 16, 32]
    small.train()
    logits, aux = small(torch.randn(2, 3, 224, 224))  # the auxiliary head expects 7x7 maps, as in DARTS
    assert logits.shape == aux.shape == (2, 10)
    _check_features(small, 64)


def test_nb201_network():
    g = Genotype.from_nb201_string(NB201_BEST)
    network = build_network(g)
    macro = network.build_args.macro
    assert network.build_args.style == "nb201" and (macro.channels, macro.layers) == (16, 5)
    kinds = [type(b).__name__ for b in network.blocks]
    assert kinds.count("DerivedCell") == 15 and kinds.count("ResNetBasicBlock") == 2
    assert [i["num_chs"] for i in network.feature_info] == [16, 16, 32, 64]
    assert network(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    _check_features(network.eval(), 32)
    with pytest.raises(InvalidInputError, match="cannot build a cifar network"):
        build_network(g, style="cifar")


def test_drop_path_only_in_training():
    network = build_network(PUBLISHED["DARTS_V2"], channels=8, layers=5)
    network.drop_path_prob = 0.5
    x = torch.randn(4, 3, 32, 32)
    network.eval()
    with torch.no_grad():
        assert torch.equal(network(x), network(x))
    network.train()
    torch.manual_seed(0)
    a = network(x)
    b = network(x)
    assert not torch.allclose(a, b)


def test_input_sizes_a_factorized_reduce_cannot_halve_are_refused():
    network = build_network(PUBLISHED["DARTS_V2"], channels=8, layers=5)
    network.check_input_size(32, 32)
    with pytest.raises(InvalidInputError, match=r"input size 30x30: reduction cell 3 gets 15x15 feature maps") as info:
        network.check_input_size(30, 30)
    assert "divisible by 4" in info.value.hint
    with pytest.raises(InvalidInputError, match="input size 30x30"):
        network(torch.randn(1, 3, 30, 30))


def test_genotype_must_belong_to_the_named_space():
    s3 = load_space("rdarts_s3")
    cell = PUBLISHED["cifar10_s3_0"]
    check_genotype_in_space(cell, s3)
    with pytest.raises(InvalidInputError, match=r"op 'skip_connect' on input 1 is not a candidate of space "
                                                r"'rdarts_s4' \(allowed: noise, sep_conv_3x3\)"):
        check_genotype_in_space(cell, load_space("rdarts_s4"))
    derived = genotype_from_dict({**cell.to_dict(), "space": {"name": "rdarts_s3", "hash": "0" * 16}})
    with pytest.raises(InvalidInputError, match="the spec changed since the search"):
        check_genotype_in_space(derived, s3)
    with pytest.raises(InvalidInputError, match="comes from space 'rdarts_s3', not 'darts_s0'") as info:
        build_network(derived, space=load_space("darts_s0"))
    assert info.value.hint == "compile it with space rdarts_s3, or without space"


def test_the_command_line_names_the_space_flag(cli, tmp_path):
    path = tmp_path / "g.json"
    derived = {**PUBLISHED["cifar10_s3_0"].to_dict(), "space": {"name": "rdarts_s3", "hash": "0" * 16}}
    path.write_text(json.dumps(derived))
    result = cli("compile", str(path), "--space", "darts_s0", "-o", str(tmp_path / "n.pt"))
    assert result.exit_code == 2 and "(hint: compile it with --space rdarts_s3, or without --space)" in result.stderr


def test_network_files_round_trip(tmp_path):
    network = build_network(PUBLISHED["DARTS_V2"], channels=8, layers=5).eval()
    path = save_network(network, tmp_path / "net.pt")
    again = load_network(path).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(network(x), again(x))
    assert again.genotype == network.genotype and again.build_args == network.build_args
    (tmp_path / "bad.pt").write_bytes(path.read_bytes()[:1000])
    with pytest.raises(InvalidInputError, match="corrupt or unreadable"):
        load_network(tmp_path / "bad.pt")


def test_a_genotype_cell_that_the_space_lacks_is_refused(tmp_path):
    """A darts space of normal cells only (no reduction positions) cannot have produced a reduction cell."""
    spec = (Path(__file__).parents[2] / "spaces" / "tiny.yaml").read_text()
    spec = spec.replace("  reduce:\n    ops: [none, skip_connect, max_pool_3x3, sep_conv_3x3]\n", "")
    (tmp_path / "normal_only.yaml").write_text(spec.replace("reductions: thirds", "reductions: []"))
    space = load_space(tmp_path / "normal_only.yaml")
    genotype = Genotype.from_darts_text(
        "Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1), ('sep_conv_3x3', 0), ('skip_connect', 1)], "
        "normal_concat=[2, 3], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
        "('max_pool_3x3', 1)], reduce_concat=[2, 3])")
    with pytest.raises(InvalidInputError, match="cells.reduce: space 'tiny' has no reduce cell"):
        check_genotype_in_space(genotype, space)


def test_a_genotype_naming_a_bundled_space_of_another_family_is_not_checked_against_it():
    """With a space hash, it names another spec of that name (a cell genotype naming fbnet_s5): no crash, no check."""
    data = PUBLISHED["DARTS_V2"].to_dict()
    data["space"] = {"name": "fbnet_s5", "hash": "0" * 16}
    assert genotype_from_dict(data).cells == PUBLISHED["DARTS_V2"].cells
