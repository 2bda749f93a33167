"""The fused kernels check themselves against the reference on a device before a search uses them."""

import math

import pytest
import torch

from dmc.kernels import fused_depthwise_conv2d, select_kernels
from dmc.kernels import self_check as check
from dmc.kernels.batchnorm_sum import fused_batchnorm_mixed_sum
from dmc.kernels.max_pool import recomputing_max_pool2d
from dmc.kernels.native import KernelBuildError
from dmc.kernels.operator import fused_mixed_sum
from dmc.kernels.select import FUSED, REFERENCE


@pytest.fixture
def fresh(monkeypatch):
    """A process in which no device has been checked yet."""
    monkeypatch.setattr(check, "_checked", {})


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
    def wrong_in_one_case(x, weight, stride, padding, dilation, relu):
        out = fused_depthwise_conv2d(x, weight, stride, padding, dilation, relu)
        return out * (1 + 1e-4) if (weight.shape[-1], dilation, stride, relu) == case else out

    monkeypatch.setattr(check, "fused_depthwise_conv2d", wrong_in_one_case)
    assert check.check_fused("cpu") > check.TOLERANCE


def test_the_check_catches_a_max_pool_that_breaks_ties_otherwise(fresh, monkeypatch):
    def last_of_ties(x, kernel, stride, padding):  # flipped input: ties go to the window's last maximum
        return recomputing_max_pool2d(x.flip(-1), kernel, stride, padding).flip(-1)

    monkeypatch.setattr(check, "recomputing_max_pool2d", last_of_ties)
    assert check.check_fused("cpu") > check.TOLERANCE


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
    assert "--kernels reference" in raised.value.hint
    assert select_kernels("reference", "cpu") == REFERENCE


def test_the_check_runs_once_per_device_type(fresh, monkeypatch):
    calls = []
    original = check._difference
    monkeypatch.setattr(check, "_difference", lambda *args: calls.append(args) or original(*args))
    check.check_fused("cpu")
    check.check_fused(torch.device("cpu"))
    # mixed sum: contiguous / channels-last x with / without the auxiliary branch; depthwise: 2 layouts x cases;
    # the batch-norm-folding sum (a CPU kernel only): 2 layouts; the batch norm + activation (CPU only): 2 layouts x
    # ReLU and ReLU6; the separable conv (CPU only): 2 layouts x cases; the max pool: 2 layouts x strides 1 and 2
    assert len(calls) == 4 + 2 * len(check.DEPTHWISE_CASES) + 2 + 4 + 2 * len(check.SEPARABLE_CASES) + 4


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
                        lambda x, dw, pw, stride, padding, dilation, relu: fused(x, dw, pw, stride, padding, dilation,
                                                                                  False))
    assert check.check_fused("cpu") > check.TOLERANCE


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_cuda_kernels_pass(fresh):
    assert check.check_fused("cuda") <= check.TOLERANCE
