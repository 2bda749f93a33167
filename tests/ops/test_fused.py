"""Ops run the kernels they are built with (or switched to, one instance at a time), with the same math."""

import copy

import pytest
import torch
from torch import nn

from dmc.kernels import native
from dmc.kernels.select import FUSED, REFERENCE
from dmc.ops import OPS
from dmc.ops.fused import use_kernels
from dmc.ops.mbconv import MBConv
from dmc.ops.pool import MaxPool


@pytest.fixture(autouse=True, scope="module")
def cpu_kernels():
    native.load("cpu")


def dmc_operators(fn) -> dict[str, int]:
    """The ``dmc::`` operators ``fn()`` calls, with their counts."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        fn()
    return {e.key: e.count for e in profile.key_averages() if e.key.startswith("dmc::")}


def forward_backward(op: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    x = x.detach().requires_grad_()
    out = op(x)
    out.square().sum().backward()
    return [out.detach(), x.grad, *(p.grad for p in op.parameters())]


@pytest.mark.parametrize("name", ["sep_conv_5x5", "dil_conv_3x3", "max_pool_3x3", "mbconv_k5_e3"])
def test_ops_built_with_different_kernels_compute_alike_each_with_its_own(name):
    """A supernet's candidates (training mode, batch norms without affine): the op built with the fused kernels
    runs them, the one built with the reference kernels in the same process does not, and both give the same
    output and gradients in float64."""
    torch.manual_seed(0)
    reference = OPS[name].build(6, 6, 2, affine=False, act="relu6", kernels=REFERENCE).double()
    torch.manual_seed(0)
    fused = OPS[name].build(6, 6, 2, affine=False, act="relu6", kernels=FUSED).double()
    x = torch.randn(3, 6, 10, 10, dtype=torch.float64)
    results = {}
    calls = {op: dmc_operators(lambda op=op: results.setdefault(op, forward_backward(op, x)))
             for op in (reference, fused)}
    assert not calls[reference] and calls[fused]
    for got, expected in zip(results[fused], results[reference], strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_use_kernels_switches_every_op_inside_one_module_and_no_other():
    sep = OPS["sep_conv_3x3"].build(4, 4, 1, affine=False)
    pool = nn.Sequential(nn.Conv2d(4, 4, 1), MaxPool(3, 1, 1))  # a max pool inside a module without kernels
    other = copy.deepcopy(sep)
    use_kernels(sep, FUSED)
    use_kernels(pool, FUSED)
    assert sep.batchnorm_act is FUSED.batchnorm_act
    assert all(half.depthwise is FUSED.depthwise and half.separable is FUSED.separable for half in sep)
    assert pool[1].function is FUSED.max_pool
    assert other.batchnorm_act is None and all(half.depthwise is None for half in other)
    use_kernels(sep, REFERENCE)
    assert sep.batchnorm_act is None and all(half.depthwise is None and half.separable is None for half in sep)


def test_an_inverted_residual_keeps_its_3x3_depthwise_conv_with_pytorch():
    assert MBConv(4, 4, 3, 3, 1, kernels=FUSED).depthwise is None
    assert MBConv(4, 4, 5, 3, 1, kernels=FUSED).depthwise is FUSED.depthwise
    assert MBConv(4, 4, 3, 3, 1, kernels=FUSED).batchnorm_act is FUSED.batchnorm_act

