"""The chain supernet: per-layer architecture weights (padded and masked), DARTS-'s auxiliary skip on every layer,
beta, gradients, and a one-hot supernet that computes exactly the compiled network of its derived genotype."""

import pytest
import torch
from torch import nn

from dmc.compiler import build_network
from dmc.families.chain.space import chain_space_from_dict
from dmc.ops.basic import FactorizedReduce, Identity
from dmc.ops.conv import ReLUConvBN
from dmc.space import load_space
from dmc.supernet import build_supernet
from dmc.supernet.mixed_edge import MixedEdge, chain_auxiliary


def tiny_space(shape_change="factorized_reduce"):
    """Four layers: 8->8 stride 2, 8->8, 8->16 stride 1 (width change only), 16->24 stride 2; skip projected."""
    return chain_space_from_dict({
        "format": "dmc.space/1", "name": "tiny_chain", "kind": "chain",
        "macro": {"kind": "chain", "activation": "relu", "stem": {"channels": 8, "stride": 2},
                  "first_block": {"channels": 8},
                  "stages": [{"channels": 8, "layers": 2, "stride": 2}, {"channels": 16, "layers": 1, "stride": 1},
                             {"channels": 24, "layers": 1, "stride": 2}],
                  "head": {"channels": 32, "dropout": 0.0}},
        "layers": {"candidates": ["mbconv_k3_e3", "mbconv_k5_e1_g2", "mbconv_k3_e6_se", "skip"],
                   "skip_projection": True},
        "auxiliary": {"shape_change": shape_change}})


def test_alpha_layers_are_padded_and_masked_for_proxyless_s5():
    space = load_space("proxyless_s5").with_macro(width=0.1)
    net = build_supernet(space, 10)
    assert net.alpha_layers.shape == (19, 7) and net.arch_parameters() == [net.alpha_layers]
    first_of_stage = [0, 2, 6, 10, 14, 18]
    assert [i for i in range(19) if not net.mask_layers[i, 6]] == first_of_stage
    assert net.mask_layers[:, :6].all()
    with torch.no_grad():
        net.alpha_layers[:, 6] = 50.0  # the padding of first-of-stage rows must not count
    weights = net.mixing_weights("layers")
    assert (weights[first_of_stage, 6] == 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(19))
    assert all(len(w) == len(ops) for w, ops in zip(net.edge_weights()["layers"], space.layer_candidates))
    assert [len(b.ops) for b in net.blocks] == [len(ops) for ops in space.layer_candidates]
    assert [b.row for b in net.blocks] == list(range(19))


def test_auxiliary_skip_of_each_proxyless_layer():
    net = build_supernet(load_space("proxyless_s5").with_macro(width=0.1), 10)
    for block, slot in zip(net.blocks, net.space.layer_slots()):
        expected = Identity if slot.keeps_shape else FactorizedReduce if slot.stride == 2 else ReLUConvBN
        assert type(block.aux) is expected, slot


def test_auxiliary_skip_kinds_and_shapes():
    x = torch.randn(2, 8, 6, 6)
    identity = chain_auxiliary(8, 8, 1, "factorized_reduce")
    assert isinstance(identity, Identity) and torch.equal(identity(x), x)
    reduce = chain_auxiliary(8, 16, 2, "factorized_reduce")
    assert isinstance(reduce, FactorizedReduce) and not reduce.bn.affine and reduce(x).shape == (2, 16, 3, 3)
    widen = chain_auxiliary(8, 16, 1, "factorized_reduce")
    assert isinstance(widen, ReLUConvBN) and widen[1].kernel_size == (1, 1) and not widen[2].affine
    assert widen(x).shape == (2, 16, 6, 6)
    assert isinstance(chain_auxiliary(8, 8, 1, "conv1x1"), Identity)


@pytest.mark.parametrize("c_in,c_out,stride", [(8, 16, 1), (8, 16, 2), (8, 8, 2), (16, 8, 1)])
def test_conv1x1_auxiliary_starts_as_the_identity_on_the_first_channels(c_in, c_out, stride):
    aux = chain_auxiliary(c_in, c_out, stride, "conv1x1")
    assert isinstance(aux, nn.Conv2d) and aux.stride == (stride, stride) and aux.bias is None
    x = torch.randn(2, c_in, 7, 7)
    with torch.no_grad():
        out = aux(x)
    kept = x[:, :, ::stride, ::stride]
    n = min(c_in, c_out)
    assert torch.equal(out[:, :n], kept[:, :n])
    assert not out[:, n:].any()


def test_beta_scales_the_auxiliary_and_zero_skips_it():
    torch.manual_seed(0)
    space = tiny_space()
    net = build_supernet(space, 10).eval()
    edge = net.blocks[3]  # 16 -> 24, stride 2: factorized reduce
    x = torch.randn(2, 16, 6, 6)
    w = torch.softmax(torch.randn(4), 0)
    with torch.no_grad():
        plain = sum(w[k] * op(x) for k, op in enumerate(edge.ops))
        torch.testing.assert_close(edge(x, w, None), plain)
        torch.testing.assert_close(edge(x, w, torch.tensor(0.7)), plain + 0.7 * edge.aux(x))

    class Refuse(nn.Module):
        def forward(self, x):
            raise AssertionError("beta = 0 must not compute the auxiliary skip")

    y = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        net.set_beta(0.0)
        before = net(y)
        for block in net.blocks:
            block.aux = Refuse()
        torch.testing.assert_close(net(y), before)


def proxyless_at_width_01(shape_change="factorized_reduce"):
    data = load_space("proxyless_s5").with_macro(width=0.1).to_dict()
    data["auxiliary"]["shape_change"] = shape_change
    return chain_space_from_dict(data)


# factorized reduces need even maps at every stride-2 layer (32 px here); the conv1x1 auxiliary takes any size, as
# the chain layers do (16 px: the last stride-2 layer gets 1x1 maps). dmc/search/input_size.py refuses the rest.
@pytest.mark.parametrize("shape_change,size", [("factorized_reduce", 32), ("conv1x1", 16), ("conv1x1", 24)])
def test_forward_and_backward_are_finite_at_width_01(shape_change, size):
    torch.manual_seed(0)
    net = build_supernet(proxyless_at_width_01(shape_change), 10)
    logits = net(torch.randn(2, 3, size, size))
    assert logits.shape == (2, 10)
    nn.functional.cross_entropy(logits, torch.tensor([1, 2])).backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert torch.isfinite(logits).all() and all(torch.isfinite(g).all() for g in grads)
    assert net.alpha_layers.grad.abs().sum() > 0
    assert not net.alpha_layers.grad[~net.mask_layers].any()  # padding gets no gradient


@pytest.mark.parametrize("shape_change", ["factorized_reduce", "conv1x1"])
def test_one_hot_supernet_equals_the_compiled_derived_network(shape_change):
    torch.manual_seed(1)
    space = tiny_space(shape_change)
    net = build_supernet(space, 10)
    chosen = [1, 3, 3, 2]  # g2 at a stride-2 layer, a removed skip, a projecting skip, SE at a stride-2 layer
    with torch.no_grad():
        net.alpha_layers.zero_()
        for row, k in enumerate(chosen):
            net.alpha_layers[row, k] = 1e4
        net.train()
        for _ in range(3):  # BN statistics away from their init
            net(torch.randn(4, 3, 32, 32))
    genotype = net.genotype()
    assert genotype.layers == ("mbconv_k5_e1_g2", "skip", "skip", "mbconv_k3_e6_se")
    assert genotype.macro == space.macro and genotype.depth() == 3

    compiled = build_network(genotype, width=space.macro.width, num_classes=10)
    outer = {k: v for k, v in net.state_dict().items()
             if k.split(".")[0] in ("stem", "stem1", "head_act", "classifier")}
    compiled.load_state_dict(outer, strict=False)
    for row, (block, k) in enumerate(zip(net.blocks, chosen)):
        assert isinstance(block, MixedEdge)
        missing, unexpected = compiled.blocks[row].load_state_dict(block.ops[k].state_dict(), strict=False)
        assert not unexpected and all(name.endswith(("weight", "bias")) for name in missing)  # BN affine only
    net.eval().set_beta(0.0)
    compiled.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), net(x), rtol=1e-5, atol=1e-6)
