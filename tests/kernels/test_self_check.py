"""The fused kernels check themselves against the reference on a device before a search uses them."""

import math

import pytest
import torch
import torch.nn.functional as F

from dmc.kernels import fused_depthwise_conv2d, select_kernels
from dmc.kernels import self_check as check
from dmc.kernels.batchnorm_sum import fused_batchnorm_mixed_sum
from dmc.kernels.max_pool import recomputing_max_pool2d
from dmc.kernels.native import KernelBuildError
from dmc.kernels.operator import fused_mixed_sum
from dmc.kernels.select import FUSED, REFERENCE


@pytest.fixture
def fresh():
    """A process in which no device has been checked yet; the results of a test's wrong operators are forgotten
    after it."""
    check.RESULTS.clear()
    yield
    check.RESULTS.clear()


def test_the_cpu_kernels_pass_and_auto_uses_them(fresh):
    assert check.check_fused("cpu") <= check.TOLERANCE
    assert select_kernels("auto", "cpu") == FUSED


def test_the_check_catches_a_kernel_that_is_off_by_a_little(fresh, monkeypatch):
    def off(outputs, weights, aux=None, beta=None):
        return fused_mixed_sum(outputs, weights, aux, beta) * (1 + 1e-4)

    monkeypatch.setattr(check, "fused_mixed_sum", off)
    assert check.check_fused("cpu") > check.TOLERANCE


@pytest.mark.parametrize("case", check.DEPTHWISE_CASES[:: len(check.DEPTHWISE_CASES) - 1])
def test_the_check_catches_a_depthwise_conv_wrong_in_one_case(case, fresh, monkeypatch):
    """One wrong (kernel, dilation, stride, relu) case among all the checked ones is enough to fail."""
    def wrong_in_one_case(x, weight, stride, padding, dilation, relu, activated=None):
        out = fused_depthwise_conv2d(x, weight, stride, padding, dilation, relu, activated)
        return out * (1 + 1e-4) if (weight.shape[-1], dilation, stride, relu) == case else out

    monkeypatch.setattr(check, "fused_depthwise_conv2d", wrong_in_one_case)
    assert check.check_fused("cpu") > check.TOLERANCE


def test_the_check_catches_a_depthwise_conv_wrong_only_with_the_shared_relu(fresh, monkeypatch):
    """Searches hand their candidates ``activated=relu(x)``: a kernel that reads it wrongly must fail."""
    def wrong_when_shared(x, weight, stride, padding, dilation, relu, activated=None):
        if activated is not None:
            activated = activated * (1 + 1e-4)
        return fused_depthwise_conv2d(x, weight, stride, padding, dilation, relu, activated)

    monkeypatch.setattr(check, "fused_depthwise_conv2d", wrong_when_shared)
    assert check.check_fused("cpu") > check.TOLERANCE


class _GradientOffByOnePerMille(torch.autograd.Function):  # identity forward, the gradient 1e-3 too large
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * (1 + 1e-3)


@pytest.mark.parametrize("wrong", ["the last plain input's gradient", "the first running mean"])
def test_the_check_catches_a_small_tensor_off_by_a_little(wrong, fresh, monkeypatch):
    """A 1e-3 relative error in one of the batch-norm-folding sum's small results (a plain input whose weight is
    0.02: its gradient is ~1e-3 of the weights' gradient; a running mean, ~2e-3): each tensor is measured against
    its own scale, not the largest of all."""
    def off(zs, norms, ys, weights):
        if wrong == "the first running mean":
            out = fused_batchnorm_mixed_sum(zs, norms, ys, weights)
            norms[0].running_mean.mul_(1 + 1e-3)
            return out
        return fused_batchnorm_mixed_sum(zs, norms, [*ys[:-1], _GradientOffByOnePerMille.apply(ys[-1])], weights)

    monkeypatch.setattr(check, "fused_batchnorm_mixed_sum", off)
    assert check.check_fused("cpu") > check.TOLERANCE


def test_the_check_catches_a_max_pool_that_breaks_ties_otherwise(fresh, monkeypatch):
    def last_of_ties(x, kernel, stride, padding):  # flipped input: ties go to the window's last maximum
        return recomputing_max_pool2d(x.flip(-1), kernel, stride, padding).flip(-1)

    monkeypatch.setattr(check, "recomputing_max_pool2d", last_of_ties)
    assert check.check_fused("cpu") > check.TOLERANCE


def test_the_max_pool_is_checked_against_a_reference_of_its_own(fresh, monkeypatch):
    """On CUDA ``dmc::max_pool2d`` is ``F.max_pool2d``: a check against ``F.max_pool2d`` would pass any pooling.
    Here PyTorch's pooling itself breaks ties wrongly, and the operator runs it, as on CUDA."""
    pytorch_max_pool2d = F.max_pool2d

    def last_of_ties(x, kernel, stride, padding):
        return pytorch_max_pool2d(x.flip(-1), kernel, stride, padding).flip(-1)

    monkeypatch.setattr(F, "max_pool2d", last_of_ties)
    monkeypatch.setattr(check, "recomputing_max_pool2d", lambda x, kernel, stride, padding:
                        F.max_pool2d(x, kernel, stride, padding))
    assert check.check_fused("cpu") > check.TOLERANCE


@pytest.mark.parametrize("stride", [1, 2])
def test_the_max_pool_reference_is_pytorch_max_pooling(stride):
    x = torch.randn(2, 5, 9, 8, generator=torch.Generator().manual_seed(0)).round().double()  # rounded: ties
    results = []
    for pool in (F.max_pool2d, check._unfolded_max_pool2d):
        inputs = x.clone().requires_grad_()
        out = pool(inputs, 3, stride, 1)
        out.backward(torch.ones_like(out).cumsum(-1).sin())
        results.append((out, inputs.grad))
    torch.testing.assert_close(results[1], results[0], rtol=1e-12, atol=0)


def test_the_check_catches_a_wrong_gradient(fresh, monkeypatch):
    class WrongGrad(torch.autograd.Function):  # right forward, weight gradient doubled
        @staticmethod
        def forward(ctx, w):
            return w.clone()

        @staticmethod
        def backward(ctx, grad):
            return 2 * grad

    monkeypatch.setattr(check, "fused_mixed_sum",
                        lambda outputs, weights, aux=None, beta=None: fused_mixed_sum(outputs, WrongGrad.apply(weights),
                                                                                      aux, beta))
    assert check.check_fused("cpu") > check.TOLERANCE


@pytest.mark.parametrize("error", [1e-3, math.nan])
def test_kernels_that_fail_the_check_are_refused_or_replaced(error, fresh, monkeypatch):
    monkeypatch.setattr("dmc.kernels.select.check_fused", lambda device: error)
    said = []
    assert select_kernels("auto", "cpu", said.append) == REFERENCE
    assert len(said) == 1 and "differ from the reference on cpu" in said[0]
    with pytest.raises(KernelBuildError, match="differ from the reference") as raised:
        select_kernels("fused", "cpu")
    assert "use kernels reference" in raised.value.hint and "use --kernels reference" in raised.value.cli_text()
    assert select_kernels("reference", "cpu") == REFERENCE


def test_the_check_runs_once_per_device_type(fresh, monkeypatch):
    calls = []
    original = check._difference
    monkeypatch.setattr(check, "_difference", lambda *args: calls.append(args) or original(*args))
    check.check_fused("cpu")
    check.check_fused(torch.device("cpu"))
    # mixed sum: contiguous / channels-last x with / without the auxiliary branch; depthwise: 2 layouts x cases,
    # those with a ReLU with and without it shared; the batch-norm-folding sum (a CPU kernel only): 2 layouts; the
    # batch norm + activation (CPU only): 2 layouts x ReLU and ReLU6; the separable conv (CPU only): as the
    # depthwise conv; the max pool: 2 layouts x strides 1 and 2
    depthwise, separable = (sum(1 + relu for *_, relu in cases) for cases in (check.DEPTHWISE_CASES,
                                                                                check.SEPARABLE_CASES))
    assert (depthwise, separable) == (36, 5)
    assert len(calls) == 4 + 2 * depthwise + 2 + 4 + 2 * separable + 4


def test_the_check_catches_a_batchnorm_sum_that_forgets_the_running_statistics(fresh, monkeypatch):
    def forgetful(zs, norms, ys, weights):
        state = [(norm.running_mean.clone(), norm.running_var.clone()) for norm in norms]
        out = fused_batchnorm_mixed_sum(zs, norms, ys, weights)
        for norm, (mean, var) in zip(norms, state):
            norm.running_mean.copy_(mean), norm.running_var.copy_(var)
        return out

    monkeypatch.setattr(check, "fused_batchnorm_mixed_sum", forgetful)
    assert check.check_fused("cpu") > check.TOLERANCE


def test_the_check_catches_a_batchnorm_act_with_the_wrong_activation(fresh, monkeypatch):
    fused = check.fused_batchnorm_act
    monkeypatch.setattr(check, "fused_batchnorm_act", lambda z, norm, activation: fused(z, norm, "relu"))
    assert check.check_fused("cpu") > check.TOLERANCE


def test_the_check_catches_a_separable_conv_that_skips_the_relu(fresh, monkeypatch):
    fused = check.fused_separable_conv2d
    monkeypatch.setattr(check, "fused_separable_conv2d",
                        lambda x, dw, pw, stride, padding, dilation, relu, activated=None:
                        fused(x, dw, pw, stride, padding, dilation, False))
    assert check.check_fused("cpu") > check.TOLERANCE


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_cuda_kernels_pass(fresh):
    assert check.check_fused("cuda") <= check.TOLERANCE
