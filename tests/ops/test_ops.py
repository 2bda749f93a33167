"""Every operation of the table: shapes, strides, affine switch, and the reference semantics."""

import pytest
import torch
from torch import nn

from dmc.errors import InvalidInputError
from dmc.ops import OPS, OpRegistry


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("spec", list(OPS), ids=lambda s: s.name)
@pytest.mark.parametrize("stride", [1, 2])
def test_every_op_maps_shapes(spec, stride):
    if spec.name == "factorized_reduce" and stride == 1:
        with pytest.raises(ValueError):
            spec.build(8, 8, 1, True)
        return
    op = spec.build(8, 8, stride, affine=False)
    y = op(torch.randn(2, 8, 16, 16))
    assert y.shape == (2, 8, 16 // stride, 16 // stride)
    assert (_params(op) > 0) == spec.parametric or spec.name in ("skip_connect", "skip") and stride == 2


@pytest.mark.parametrize("spec", [s for s in OPS if s.parametric], ids=lambda s: s.name)
def test_parametric_ops_follow_the_affine_switch(spec):
    stride = 2 if spec.name == "factorized_reduce" else 1
    affine, plain = spec.build(8, 8, stride, True), spec.build(8, 8, stride, False)
    bns = [m for m in affine.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(m.affine for m in bns)
    assert not any(m.affine for m in plain.modules() if isinstance(m, nn.BatchNorm2d))


def test_parameter_counts_match_the_darts_reference():
    # C=16, affine: per (dw k*k, pw 1x1, BN) unit = 16*k*k + 16*16 + 2*16
    assert _params(OPS["sep_conv_3x3"].build(16, 16, 1, True)) == 2 * (16 * 9 + 256 + 32)
    assert _params(OPS["sep_conv_5x5"].build(16, 16, 1, True)) == 2 * (16 * 25 + 256 + 32)
    assert _params(OPS["dil_conv_3x3"].build(16, 16, 1, True)) == 16 * 9 + 256 + 32
    assert _params(OPS["dil_conv_5x5"].build(16, 16, 1, True)) == 16 * 25 + 256 + 32
    assert _params(OPS["conv_7x1_1x7"].build(16, 16, 1, True)) == 2 * 16 * 16 * 7 + 32
    assert _params(OPS["skip_connect"].build(16, 16, 2, True)) == 2 * 16 * 8 + 32  # factorized reduce
    # NAS-Bench-201 convs carry a bias exactly when BN is not affine
    assert _params(OPS["nor_conv_3x3"].build(16, 16, 1, True)) == 16 * 16 * 9 + 32
    assert _params(OPS["nor_conv_3x3"].build(16, 16, 1, False)) == 16 * 16 * 9 + 16


def test_dilated_and_separable_layer_order():
    dil = OPS["dil_conv_3x3"].build(4, 4, 1, True)
    assert [type(m).__name__ for m in dil] == ["ReLU", "Conv2d", "Conv2d", "BatchNorm2d"]
    assert dil[1].dilation == (2, 2) and dil[1].padding == (2, 2) and dil[1].groups == 4
    sep = OPS["sep_conv_5x5"].build(4, 4, 2, True)
    assert sep[0][1].stride == (2, 2) and sep[1][1].stride == (1, 1) and sep[0][1].padding == (2, 2)


def test_pools_exclude_padding_and_identity_is_identity():
    x = torch.ones(1, 2, 4, 4)
    assert torch.equal(OPS["avg_pool_3x3"].build(2, 2, 1, False)(x), x)  # corners average real pixels only
    assert torch.equal(OPS["skip_connect"].build(2, 2, 1, False)(x), x)


def test_none_is_zero_and_noise_is_random_and_ignores_values():
    x = torch.randn(2, 3, 8, 8)
    assert torch.count_nonzero(OPS["none"].build(3, 3, 2, False)(x)) == 0
    noise = OPS["noise"].build(3, 3, 1, False)
    a, b = noise(x), noise(torch.zeros_like(x))
    assert a.shape == x.shape and not torch.equal(a, b)
    assert abs(torch.cat([noise(x) for _ in range(20)]).std().item() - 1) < 0.1
    assert not OPS["noise"].deterministic and OPS["none"].zero


def test_registry_refuses_duplicates_and_names_known_ops():
    registry = OpRegistry()
    registry.register("a", "first")(lambda *args: nn.Identity())
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a", "again")(lambda *args: nn.Identity())
    with pytest.raises(InvalidInputError, match="unknown operation 'b'") as info:
        registry["b"]
    assert "a" in info.value.hint


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_factorized_reduce_is_darts_and_keeps_the_gradient_layout(layout):
    torch.manual_seed(0)
    reduce = OPS["skip_connect"].build(8, 16, 2, False)
    x = torch.randn(3, 8, 10, 12).contiguous(memory_format=layout).requires_grad_()
    relu = torch.relu(x)  # DARTS: conv_1 on x[::2, ::2], conv_2 on x[1::2, 1::2], concatenated
    expected = torch.cat([reduce.conv_1(relu[:, :, ::2, ::2]), reduce.conv_2(relu[:, :, 1::2, 1::2])], dim=1)
    out = reduce.pre_norm(x)
    assert torch.equal(out, expected) and out.is_contiguous(memory_format=layout)
    g = torch.randn_like(out)
    (grad,), (expected_grad,) = torch.autograd.grad(out, x, g), torch.autograd.grad(expected, x, g)
    assert torch.equal(grad, expected_grad)
    # the subsampling's own gradient keeps the layout: a slice's backward would hand back a contiguous one, and the
    # ReLU's backward and the sums after it would take PyTorch's slow mixed-layout paths in a channels-last supernet
    reduce.relu = nn.Identity()
    (grad,) = torch.autograd.grad(reduce.pre_norm(x), x, g)
    assert grad.is_contiguous(memory_format=layout)


def test_factorized_reduce_is_twice_differentiable_in_training():
    """Hessian-vector products (dmc.search.hessian) differentiate the search's backward once more."""
    torch.manual_seed(0)
    reduce = OPS["skip_connect"].build(3, 4, 2, False).double()
    reduce.relu = nn.Identity()  # ReLU's second derivative is zero almost everywhere: check the subsampling's
    x = torch.randn(2, 3, 4, 6, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    assert torch.autograd.gradgradcheck(reduce.pre_norm, (x.requires_grad_(),))
