"""Supernets of every bundled space, and the DARTS- mixed edge."""

import pytest
import torch
from torch import nn

from dmc.kernels import mixed_sum
from dmc.space import bundled_spaces, load_space, space_from_dict
from dmc.supernet import MixedEdge, auxiliary_edge, build_supernet

SMALL = {"nb201": dict(channels=4, layers=1), "fbnet_s5": dict(width=0.1), "proxyless_s5": dict(width=0.1)}


@pytest.mark.parametrize("name", sorted(bundled_spaces()))
def test_every_space_supernet_runs_forward_and_backward_at_32x32(name):
    torch.manual_seed(0)
    space = load_space(name).with_macro(**SMALL.get(name, dict(channels=4, layers=3)))
    net = build_supernet(space, num_classes=10)
    logits = net(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10)
    logits.logsumexp(1).sum().backward()
    for alpha in net.arch_parameters():
        assert alpha.grad is not None and torch.isfinite(alpha.grad).all() and alpha.grad.abs().sum() > 0
    assert {id(p) for p in net.weight_parameters()}.isdisjoint({id(p) for p in net.arch_parameters()})
    genotype = net.genotype()
    assert genotype.space == name and genotype.kind == space.macro.kind


def test_darts_supernet_follows_the_macro_layout():
    space = load_space("darts_s0").with_macro(channels=4, layers=5)
    net = build_supernet(space, 10)
    assert [c.reduction for c in net.blocks] == [False, True, False, True, False]
    assert net.stem[0].out_channels == 12
    assert net.classifier.in_features == 4 * 4 * 4  # multiplier * (C doubled twice)
    assert net.alpha_normal.shape == (14, 8)
    # supernet BatchNorms inside cells are not affine; pools get an extra BN (DARTS)
    edge = net.blocks[0].edges[0]
    assert all(not m.affine for m in edge.modules() if isinstance(m, nn.BatchNorm2d))
    assert isinstance(edge.ops[0], nn.Sequential) and isinstance(edge.ops[0][1], nn.BatchNorm2d)


def test_nb201_supernet_layout():
    net = build_supernet(load_space("nb201"), 10)
    kinds = [type(c).__name__ for c in net.blocks]
    assert kinds == (["SearchCell"] * 5 + ["ResNetBasicBlock"]) * 2 + ["SearchCell"] * 5
    assert net.classifier.in_features == 64 and net.alpha_normal.shape == (6, 5)


def test_mixed_edge_computes_beta_aux_plus_weighted_ops():
    torch.manual_seed(0)
    edge = MixedEdge(["none", "skip_connect", "avg_pool_3x3", "sep_conv_3x3"], 4, 4, 1,
                     lambda: auxiliary_edge(4, 1, False)).eval()
    x, w, beta = torch.randn(2, 4, 8, 8), torch.softmax(torch.randn(4), 0), torch.tensor(0.3)
    expected = 0.3 * x + w[1] * x + w[2] * edge.ops[1](x) + w[3] * edge.ops[2](x)
    torch.testing.assert_close(edge(x, w, beta), expected)
    torch.testing.assert_close(edge(x, w, None), expected - 0.3 * x)


def test_auxiliary_edges():
    x = torch.randn(2, 4, 8, 8)
    assert torch.equal(auxiliary_edge(4, 1, conv1x1=False)(x), x)
    torch.testing.assert_close(auxiliary_edge(4, 1, conv1x1=True)(x), x)  # identity-initialised 1x1 conv
    assert auxiliary_edge(4, 2, conv1x1=False)(x).shape == (2, 4, 4, 4)


def test_beta_zero_skips_the_auxiliary_edges():
    net = build_supernet(load_space("tiny"), 10)
    calls = []
    for module in net.modules():
        if isinstance(module, MixedEdge):
            module.aux.register_forward_hook(lambda *args: calls.append(1))
    net(torch.randn(1, 3, 32, 32))
    assert calls
    calls.clear()
    net.set_beta(0.0)
    net(torch.randn(1, 3, 32, 32))
    assert not calls and net.beta.item() == 0.0


def test_ragged_candidate_lists_are_masked_out_of_the_softmax():
    data = load_space("tiny").to_dict()
    data["cell"]["normal"] = {"edges": [["skip_connect"], ["sep_conv_3x3", "max_pool_3x3"], ["none", "skip_connect"],
                                        ["skip_connect", "max_pool_3x3", "sep_conv_3x3"], ["skip_connect"]]}
    net = build_supernet(space_from_dict(data), 10)
    weights = net.mixing_weights("normal")
    assert weights.shape == (5, 3)
    assert weights[0].tolist() == [1.0, 0.0, 0.0]
    torch.testing.assert_close(weights.sum(1), torch.ones(5))
    net(torch.randn(1, 3, 16, 16)).sum().backward()


def test_reference_mixed_sum():
    ys = [torch.randn(3, 2) for _ in range(3)]
    w, aux = torch.tensor([0.2, 0.3, 0.5]), torch.randn(3, 2)
    torch.testing.assert_close(mixed_sum(ys, w, aux, torch.tensor(0.5)),
                               0.2 * ys[0] + 0.3 * ys[1] + 0.5 * ys[2] + 0.5 * aux)
