"""Published chain networks compiled from their genotypes: exact sizes, torchvision's mobilenet_v2 reproduced number
for number, FairNAS-A's published layer list, NoisyDARTS-A's activations, and the backbone interface."""

import pytest
import torch
import torchvision
from torch import nn

from dmc.compiler import build_network
from dmc.errors import InvalidInputError
from dmc.families.chain.genotype import ChainGenotype
from dmc.genotype import published_genotypes
from dmc.ops.mbconv import MBConv, SqueezeExcite
from dmc.profile import count_macs

CHAINS = {name: g for name, g in published_genotypes().items() if g.kind == "chain"}

# Parameters (sum of numel, 1000 classes) and conv + linear MACs of one 224 x 224 image. mobilenet_v2: torchvision's
# model meta (3,504,872 parameters); FairNAS-A/B/C: measured on xiaomi-automl/FairNAS by uninas's test_model_params
# (MACs there include the pooling ops, 10,240 of them); NoisyDARTS-A: xiaomi-automl/NoisyDARTS verify_se.py
# rebuilt with timm's SE semantics (paper: 5.5M parameters, 449M thop FLOPs with the SE pooling).
SIZES = {"mobilenet_v2": (3_504_872, 300_774_272), "FairNAS_A": (4_651_352, 388_122_848),
         "FairNAS_B": (4_506_272, 345_297_632), "FairNAS_C": (4_397_864, 321_024_992),
         "NoisyDARTS_A": (5_547_124, 446_669_312)}

# xiaomi-automl/FairNAS models/FairNAS_A.py: (kernel, expansion, stride, output channels) of its 19 searchable layers.
FAIRNAS_A_LAYERS = [
    (7, 3, 2, 32), (3, 3, 1, 32),
    (7, 3, 2, 40), (3, 6, 1, 40), (7, 6, 1, 40), (3, 3, 1, 40),
    (3, 3, 2, 80), (7, 6, 1, 80), (7, 6, 1, 80), (5, 3, 1, 80),
    (3, 6, 1, 96), (5, 3, 1, 96), (5, 3, 1, 96), (3, 6, 1, 96),
    (3, 6, 2, 192), (7, 6, 1, 192), (3, 6, 1, 192), (7, 6, 1, 192),
    (5, 6, 1, 320)]


def test_the_published_chain_networks_are_bundled():
    assert sorted(CHAINS) == sorted(SIZES)


@pytest.mark.parametrize("name", sorted(SIZES))
def test_exact_parameter_counts_and_macs(name):
    network = build_network(CHAINS[name])
    assert network.build_args.style == "chain" and network.build_args.input_size == 224
    assert network.build_args.num_classes == 1000 and network.build_args.macro.width == 1.0
    assert (network.num_parameters(), count_macs(network, 224)) == SIZES[name]


@pytest.mark.parametrize("width", [1.0, 0.5, 0.25])
def test_mobilenet_v2_equals_torchvision_with_its_weights(width, load_torchvision_weights):
    torch.manual_seed(0)
    reference = torchvision.models.mobilenet_v2(width_mult=width)
    for m in reference.modules():  # statistics away from their init, so a misplaced BN shows
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    network = build_network(CHAINS["mobilenet_v2"], width=width)
    assert network.num_parameters() == sum(p.numel() for p in reference.parameters())
    load_torchvision_weights(network, reference)
    network.eval()
    reference.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        diff = (network(x) - reference(x)).abs().max().item()
        features = (network.forward_features(x) - reference.features(x)).abs().max().item()
    assert diff < 1e-6 and features < 1e-6


def mbconv_layers(network) -> list[MBConv]:
    assert all(isinstance(b, MBConv) for b in network.blocks)
    return list(network.blocks)


def test_fairnas_a_layers_are_the_published_ones():
    network = build_network(CHAINS["FairNAS_A"])
    got = []
    for block in mbconv_layers(network):
        convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
        pw, dw, pwl = convs
        got.append((dw.kernel_size[0], pw.out_channels // pw.in_channels, dw.stride[0], pwl.out_channels))
    assert got == FAIRNAS_A_LAYERS
    widths_in = [16] + [c for _, _, _, c in FAIRNAS_A_LAYERS[:-1]]
    assert [b.residual for b in network.blocks] == [s == 1 and c_in == c for c_in, (_, _, s, c) in
                                                    zip(widths_in, FAIRNAS_A_LAYERS)]
    assert all(isinstance(m, nn.ReLU6) for m in network.modules() if isinstance(m, (nn.ReLU, nn.ReLU6, nn.SiLU)))


def test_noisydarts_a_uses_swish_in_its_layers_and_relu_outside():
    network = build_network(CHAINS["NoisyDARTS_A"])
    acts = lambda module: {type(m) for m in module.modules() if isinstance(m, (nn.ReLU, nn.ReLU6, nn.SiLU))}  # noqa: E731
    assert acts(network.stem) == acts(network.stem1) == acts(network.head_act) == {nn.ReLU}
    for block in mbconv_layers(network):
        assert acts(block) == {nn.SiLU}
        (se,) = [m for m in block.modules() if isinstance(m, SqueezeExcite)]
        c_in = block.body[0][0].in_channels
        assert se.reduce.out_channels == c_in // 4 and se.reduce.in_channels == block.body[0][0].out_channels


@pytest.mark.parametrize("name,channels", [("FairNAS_A", (16, 32, 40, 96, 320)),
                                           ("mobilenet_v2", (16, 24, 32, 96, 320))])
def test_feature_info_gives_the_stage_outputs(name, channels):
    network = build_network(CHAINS[name], num_classes=10).eval()
    info = network.feature_info
    assert [i["reduction"] for i in info] == [2, 4, 8, 16, 32]
    assert tuple(i["num_chs"] for i in info) == channels
    assert info[0]["module"] == "stem1" and all(network.get_submodule(i["module"]) is not None for i in info)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        last, features = network.forward_intermediates(x)
        assert [f.shape[1:] for f in features] == [(c, 64 // r, 64 // r) for c, r in zip(channels, (2, 4, 8, 16, 32))]
        assert torch.equal(network.forward_features(x), last) and last.shape == (1, 1280, 2, 2)
        assert torch.equal(network.head_act(features[-1]), last)  # forward_features is the head conv's output
        torch.testing.assert_close(network.forward_head(last), network(x))
        picked = network.forward_intermediates(x, [1, -1], intermediates_only=True)
    assert [f.shape for f in picked] == [features[1].shape, features[-1].shape]


def test_forward_intermediates_at_224():
    network = build_network(CHAINS["FairNAS_C"], num_classes=10, width=0.25).eval()
    with torch.no_grad():
        last, features = network.forward_intermediates(torch.randn(1, 3, 224, 224))
    assert [tuple(f.shape[-2:]) for f in features] == [(112, 112), (56, 56), (28, 28), (14, 14), (7, 7)]
    assert last.shape == (1, 1280, 7, 7)


@pytest.mark.parametrize("size", [33, 50, 65])
def test_odd_input_sizes_work(size):
    network = build_network(CHAINS["NoisyDARTS_A"], num_classes=5, width=0.25).eval()
    with torch.no_grad():
        features = network.forward_intermediates(torch.randn(1, 3, size, size), intermediates_only=True)
        logits = network(torch.randn(2, 3, size, size))
    expected, side = [], size
    for _ in range(5):
        side = (side + 1) // 2  # 'same' padding: ceil at every stride 2
        expected.append(side)
    assert [f.shape[-1] for f in features] == expected and logits.shape == (2, 5)


def test_width_and_classes_overrides():
    network = build_network(CHAINS["FairNAS_B"], width=0.5, num_classes=10)
    assert network.build_args.describe() == "chain network: width 0.5, 19 layers, 10 classes"
    assert network.classifier[-1].out_features == 10 and network.feature_info[-1]["num_chs"] == 160


def test_compiling_with_its_space_checks_a_chain_genotype():
    from dmc.space import load_space

    network = build_network(CHAINS["FairNAS_A"], space=load_space("proxyless_s5"), width=0.25)
    assert network.num_parameters() > 0
    fairnas = CHAINS["FairNAS_A"]
    with_se = ChainGenotype(("mbconv_k3_e6_se",) + fairnas.layers[1:], fairnas.macro)
    with pytest.raises(InvalidInputError, match=r"layers\[0\]: op 'mbconv_k3_e6_se' is not a candidate"):
        build_network(with_se, space=load_space("proxyless_s5"))
    with pytest.raises(InvalidInputError, match="skeleton"):
        build_network(CHAINS["NoisyDARTS_A"], space=load_space("proxyless_s5"))  # swish layers
    with pytest.raises(InvalidInputError, match="skeleton"):
        build_network(CHAINS["mobilenet_v2"], space=load_space("proxyless_s5"))
    with pytest.raises(InvalidInputError, match="does not belong"):
        build_network(CHAINS["mobilenet_v2"], space=load_space("darts_s0"))
