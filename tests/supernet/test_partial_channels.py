"""PC-DARTS in the supernet: partial channel connections with channel shuffle, and edge normalisation."""

import pytest
import torch
import torch.nn.functional as F

from dmc.derive import derive
from dmc.errors import InvalidInputError
from dmc.families.cell.derive import node_edge_weights
from dmc.space import bundled_spaces, load_space
from dmc.supernet import MixedEdge, auxiliary_edge, build_supernet

OPS = ["none", "skip_connect", "max_pool_3x3", "sep_conv_3x3"]


def _shuffled(x: torch.Tensor, groups: int) -> torch.Tensor:
    """PC-DARTS's channel_shuffle, written out as its code does it."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).contiguous().view(b, c, h, w)


@pytest.mark.parametrize("stride, side", [(1, 8), (2, 8), (1, 7)])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_a_partial_edge_mixes_the_first_channels_and_bypasses_the_rest(stride, side, shuffle, channels_last):
    torch.manual_seed(0)
    edge = MixedEdge(OPS, 8, 8, stride, lambda: auxiliary_edge(8, stride, False), partial=4, shuffle=shuffle).eval()
    x = torch.randn(2, 8, side, side)
    w, beta = torch.softmax(torch.randn(4), 0), torch.tensor(0.3)
    head, rest = x[:, :2], x[:, 2:]
    mixed = sum(w[k] * op(head) for k, op in zip(edge.computed, edge.ops))
    bypass = rest if stride == 1 else F.max_pool2d(rest, 2, 2)
    expected = torch.cat([mixed, bypass], 1)
    expected = (_shuffled(expected, 4) if shuffle else expected) + 0.3 * edge.aux(x)
    if channels_last:
        edge, x = edge.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    out = edge(x, w, beta)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert out.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert all(op[0].in_channels == 2 for op in edge.ops if isinstance(op, torch.nn.Sequential)
               and isinstance(op[0], torch.nn.Conv2d))


def test_a_partial_edge_of_none_only_bypasses():
    edge = MixedEdge(["none"], 4, 4, 1, lambda: auxiliary_edge(4, 1, False), partial=2)
    x = torch.randn(1, 4, 5, 5)
    torch.testing.assert_close(edge(x, torch.ones(1), None), torch.cat([torch.zeros(1, 2, 5, 5), x[:, 2:]], 1))


@pytest.mark.parametrize("name", sorted(n for n in bundled_spaces() if not n.endswith("_s5")))
def test_pc_supernets_of_every_cell_space_train_their_alphas_and_edge_weights(name):
    torch.manual_seed(0)
    small = dict(channels=4, layers=1) if name == "nb201" else dict(channels=4, layers=3)
    net = build_supernet(load_space(name).with_macro(**small), 10, partial_channels=2, channel_shuffle=True,
                         edge_normalization=True)
    net(torch.randn(2, 3, 16, 16)).logsumexp(1).sum().backward()
    names = net.arch_parameter_names()
    assert [n for n in names if n.startswith("edge_norm_")] == [f"edge_norm_{g}" for g in net.space.alpha_groups]
    for p in net.arch_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()
    for group, logits in net.edge_norms().items():
        assert logits.shape == (len(net.space.candidates(group)),)
        if name != "nb201":  # nb201's first node has a single incoming edge: its weight is constant
            assert logits.grad.abs().sum() > 0
    net.genotype()


def test_edge_weights_are_normalised_per_node():
    space = load_space("darts_s0")
    weights = node_edge_weights(torch.arange(14.0), space)
    start = 0
    for inputs in space.node_inputs:
        part = weights[start: start + len(inputs)]
        torch.testing.assert_close(part, torch.arange(start, start + len(inputs), dtype=torch.float).softmax(0))
        start += len(inputs)


def test_derivation_ranks_edges_by_op_weight_times_edge_weight():
    space = load_space("tiny")  # 2 nodes; node 1 (the second) has three incoming edges: 2, 3, 4
    alphas = {g: torch.zeros(5, 4) for g in ("normal", "reduce")}
    for g in alphas:
        alphas[g][:, 3] = 2.0  # sep_conv_3x3 everywhere
        alphas[g][2, 3] = 3.0  # edge 2 has the strongest op ...
    plain = derive(alphas, space).normal.nodes[1]
    assert [j for _, j in plain][0] == 0  # ... so DARTS keeps it first
    edge_norms = {g: torch.tensor([0.0, 0.0, -5.0, 1.0, 1.0]) for g in alphas}  # ... but its edge weighs little
    scaled = derive(alphas, space, edge_norms).normal.nodes[1]
    assert sorted(j for _, j in scaled) == [1, 2]  # inputs of edges 3 and 4


def test_pc_is_refused_on_chain_spaces_and_on_widths_that_do_not_split():
    with pytest.raises(InvalidInputError, match="chain space"):
        build_supernet(load_space("proxyless_s5").with_macro(width=0.1), 10, edge_normalization=True)
    with pytest.raises(InvalidInputError, match="does not split into 3"):
        build_supernet(load_space("tiny").with_macro(channels=4, layers=3), 10, partial_channels=3)
