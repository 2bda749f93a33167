"""Chain-space ops against independent references: torchvision's InvertedResidual, FBNet's IRFBlock order (1x1 kept
at expansion 1, 2-group 1x1 convs, shuffle after the expansion), the EfficientNet/NoisyDARTS squeeze-excitation and
FBNet's chain skip, written out here with torch.nn.functional."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.mobilenetv2 import InvertedResidual

from dmc.errors import InvalidInputError
from dmc.ops import OPS
from dmc.ops.mbconv import ChannelShuffle, MBConv, SqueezeExcite


def randomise_bn(module: nn.Module, seed: int = 0) -> None:
    """BN statistics and affine parameters away from their identity init, so a wrong order shows."""
    g = torch.Generator().manual_seed(seed)
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.copy_(torch.randn(bn.num_features, generator=g) * 0.1)
            bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
            if bn.affine:
                bn.weight.data.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
                bn.bias.data.copy_(torch.randn(bn.num_features, generator=g) * 0.1)


def copy_state(src: nn.Module, dst: nn.Module) -> None:
    """Copies ``src``'s tensors into ``dst`` in registration order, checking each pair has the same kind and shape."""
    a, b = list(src.state_dict().items()), list(dst.state_dict().items())
    assert len(a) == len(b)
    for (ka, va), (kb, vb) in zip(a, b):
        assert ka.rsplit(".", 1)[-1] == kb.rsplit(".", 1)[-1] and va.shape == vb.shape, (ka, kb)
    dst.load_state_dict({kb: va for (_, va), (kb, _) in zip(a, b)})


def bn(x: torch.Tensor, module: nn.BatchNorm2d) -> torch.Tensor:
    return F.batch_norm(x, module.running_mean, module.running_var, module.weight, module.bias, False, 0.0, module.eps)


def convs(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def bns(module: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


# ------------------------------------------------------------------------------------------ torchvision
@pytest.mark.parametrize("c_in,c_out,stride", [(16, 16, 1), (16, 24, 2), (24, 24, 2), (16, 24, 1)])
@pytest.mark.parametrize("train", [False, True])
def test_mbconv_e6_equals_torchvision_inverted_residual(c_in, c_out, stride, train):
    torch.manual_seed(0)
    reference = InvertedResidual(c_in, c_out, stride, expand_ratio=6)
    ours = OPS["mbconv_k3_e6"].build(c_in, c_out, stride, affine=True, act="relu6")
    randomise_bn(reference)
    copy_state(reference, ours)
    assert ours.residual == reference.use_res_connect == (stride == 1 and c_in == c_out)
    reference.train(train)
    ours.train(train)
    x = torch.randn(2, c_in, 9, 9)
    with torch.no_grad():
        expected, got = reference(x), ours(x)
    assert got.shape == (2, c_out, 5 if stride == 2 else 9, 5 if stride == 2 else 9)
    assert torch.equal(got, expected)


def test_layer_order_and_widths_of_an_inverted_residual():
    block = OPS["mbconv_k5_e3"].build(16, 24, 2, affine=True, act="relu6")
    c = convs(block)
    assert [(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.groups, m.bias is None) for m in c] == [
        (16, 48, (1, 1), (1, 1), 1, True), (48, 48, (5, 5), (2, 2), 48, True), (48, 24, (1, 1), (1, 1), 1, True)]
    assert [type(m) for m in block.body[0]] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU6]
    assert [type(m) for m in block.body[-1]] == [nn.Conv2d, nn.BatchNorm2d]  # linear bottleneck
    assert [m.padding for m in c] == [(0, 0), (2, 2), (0, 0)]


# ------------------------------------------------------------------------------------------ FBNet
def irf_reference(block: MBConv, x: torch.Tensor, groups: int, act=F.relu) -> torch.Tensor:
    """FBNet's IRFBlock: pw (group) conv-BN-act, shuffle, dw conv-BN-act, pwl (group) conv-BN, residual."""
    pw, dw, pwl = convs(block)
    bn1, bn2, bn3 = bns(block)
    y = act(bn(F.conv2d(x, pw.weight, groups=groups), bn1))
    if groups > 1:
        c = y.shape[1]
        perm = [g * (c // groups) + i for i in range(c // groups) for g in range(groups)]
        y = y[:, perm]
    y = act(bn(F.conv2d(y, dw.weight, stride=dw.stride, padding=dw.padding, groups=y.shape[1]), bn2))
    y = bn(F.conv2d(y, pwl.weight, groups=groups), bn3)
    return y + x if block.residual else y


@pytest.mark.parametrize("name,c_in,c_out,stride,groups", [
    ("mbconv_k3_e1", 16, 16, 1, 1), ("mbconv_k5_e1", 16, 24, 2, 1),
    ("mbconv_k3_e1_g2", 16, 16, 1, 2), ("mbconv_k5_e1_g2", 8, 24, 2, 2), ("mbconv_k3_e3_g2", 8, 8, 1, 2)])
def test_fbnet_blocks_follow_the_irf_builder(name, c_in, c_out, stride, groups):
    torch.manual_seed(1)
    block = OPS[name].build(c_in, c_out, stride, affine=True, act="relu").eval()
    randomise_bn(block)
    pw, dw, pwl = convs(block)  # expansion 1 keeps its 1x1 conv (FBNet's builder, unlike torchvision)
    hidden = c_in * int(name.split("_e")[1][0])
    assert (pw.in_channels, pw.out_channels, pw.groups) == (c_in, hidden, groups)
    assert (dw.groups, dw.stride) == (hidden, (stride, stride))
    assert (pwl.in_channels, pwl.out_channels, pwl.groups) == (hidden, c_out, groups)
    assert any(isinstance(m, ChannelShuffle) for m in block.modules()) == (groups == 2)
    x = torch.randn(2, c_in, 7, 7)
    with torch.no_grad():
        torch.testing.assert_close(block(x), irf_reference(block, x, groups), rtol=1e-5, atol=1e-6)


def test_channel_shuffle_interleaves_the_groups():
    x = torch.arange(6.0).view(1, 6, 1, 1).expand(2, 6, 2, 3).contiguous()
    assert ChannelShuffle(2)(x)[0, :, 0, 0].tolist() == [0, 3, 1, 4, 2, 5]
    assert ChannelShuffle(3)(x)[1, :, 1, 2].tolist() == [0, 2, 4, 1, 3, 5]
    cl = x.contiguous(memory_format=torch.channels_last)  # the search runs channels-last
    assert torch.equal(ChannelShuffle(2)(cl), ChannelShuffle(2)(x))


def test_group_convs_need_even_widths():
    with pytest.raises(InvalidInputError, match="divisible by 2"):
        OPS["mbconv_k3_e1_g2"].build(15, 16, 1, affine=True, act="relu")


# ------------------------------------------------------------------------------------------ squeeze-excitation
def test_squeeze_excite_matches_the_formula():
    torch.manual_seed(2)
    se = SqueezeExcite(12, 3, "swish")
    x = torch.randn(2, 12, 5, 4)
    s = x.mean((2, 3))  # (B, C)
    z = F.silu(s @ se.reduce.weight.view(3, 12).T + se.reduce.bias)
    gate = torch.sigmoid(z @ se.expand.weight.view(12, 3).T + se.expand.bias)
    torch.testing.assert_close(se(x), x * gate[:, :, None, None])


@pytest.mark.parametrize("c_in,c_out,stride", [(16, 16, 1), (32, 40, 2)])
def test_se_block_is_placed_after_the_depthwise_conv_and_reduces_from_the_input_width(c_in, c_out, stride):
    torch.manual_seed(3)
    block = OPS["mbconv_k3_e6_se"].build(c_in, c_out, stride, affine=True, act="swish").eval()
    randomise_bn(block)
    se = [m for m in block.modules() if isinstance(m, SqueezeExcite)]
    assert len(se) == 1
    se = se[0]
    hidden, reduced = 6 * c_in, int(0.25 * c_in)  # NoisyDARTS verify_se.py: se_ratio 0.25 of the block input
    assert (se.reduce.in_channels, se.reduce.out_channels, se.expand.out_channels) == (hidden, reduced, hidden)
    assert se.reduce.bias is not None and se.expand.bias is not None
    assert isinstance(se.act, nn.SiLU)
    pw, dw, _, _, pwl = convs(block)
    bn1, bn2, bn3 = bns(block)
    x = torch.randn(2, c_in, 6, 6)
    y = F.silu(bn(F.conv2d(x, pw.weight), bn1))
    y = F.silu(bn(F.conv2d(y, dw.weight, stride=stride, padding=1, groups=hidden), bn2))
    y = y * torch.sigmoid(se.expand(F.silu(se.reduce(y.mean((2, 3), keepdim=True)))))
    y = bn(F.conv2d(y, pwl.weight), bn3)
    expected = y + x if stride == 1 and c_in == c_out else y
    with torch.no_grad():
        torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------ skip
def test_skip_is_the_identity_where_the_shape_is_kept():
    x = torch.randn(2, 8, 5, 5)
    assert OPS["skip"].skip and OPS["skip"].chain and not OPS["mbconv_k3_e3"].skip
    op = OPS["skip"].build(8, 8, 1, affine=True, act="relu")
    assert isinstance(op, nn.Identity) and not list(op.parameters())
    assert op(x) is x


@pytest.mark.parametrize("c_out,stride", [(16, 1), (8, 2), (16, 2)])
def test_skip_projects_where_the_shape_changes(c_out, stride):
    torch.manual_seed(4)
    op = OPS["skip"].build(8, c_out, stride, affine=True, act="relu").eval()
    randomise_bn(op)
    (conv,), (norm,) = convs(op), bns(op)
    assert conv.kernel_size == (1, 1) and conv.stride == (stride, stride) and conv.bias is None
    x = torch.randn(2, 8, 7, 7)
    with torch.no_grad():
        out = op(x)
    torch.testing.assert_close(out, F.relu(bn(F.conv2d(x, conv.weight, stride=stride), norm)))
    assert out.shape == (2, c_out, 4 if stride == 2 else 7, 4 if stride == 2 else 7)


# ------------------------------------------------------------------------------------------ sizes
def mbconv_params(c_in, c_out, k, e, groups=1, se=False):
    """Conv weights + BN affine parameters of an inverted residual, by formula."""
    h = c_in * e
    n = c_in * h // groups + 2 * h + h * k * k + 2 * h + h * c_out // groups + 2 * c_out
    if se:
        r = int(0.25 * c_in)
        n += (h * r + r) + (r * h + h)
    return n


@pytest.mark.parametrize("name,c_in,c_out,k,e,groups,se", [
    ("mbconv_k3_e6", 32, 40, 3, 6, 1, False), ("mbconv_k7_e3", 40, 40, 7, 3, 1, False),
    ("mbconv_k5_e1", 16, 24, 5, 1, 1, False), ("mbconv_k5_e1_g2", 24, 24, 5, 1, 2, False),
    ("mbconv_k3_e6_se", 96, 96, 3, 6, 1, True), ("mbconv_k7_e6_g2_se", 16, 32, 7, 6, 2, True)])
def test_parameter_counts_by_formula(name, c_in, c_out, k, e, groups, se):
    op = OPS[name].build(c_in, c_out, 1, affine=True, act="relu6")
    assert sum(p.numel() for p in op.parameters()) == mbconv_params(c_in, c_out, k, e, groups, se)
    unaffine = OPS[name].build(c_in, c_out, 1, affine=False, act="relu6")  # supernet ops: BN without affine
    bn_affine = 2 * (c_in * e) * 2 + 2 * c_out
    assert sum(p.numel() for p in unaffine.parameters()) == mbconv_params(c_in, c_out, k, e, groups, se) - bn_affine


def test_skip_projection_parameter_count():
    assert sum(p.numel() for p in OPS["skip"].build(24, 40, 2, affine=True, act="relu").parameters()) == 24 * 40 + 80


def test_strided_blocks_take_odd_sizes():
    block = OPS["mbconv_k7_e3"].build(8, 16, 2, affine=True, act="relu6")
    assert block(torch.randn(1, 8, 9, 7)).shape == (1, 16, 5, 4)
