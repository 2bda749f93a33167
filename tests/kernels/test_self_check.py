"""The fused kernels check themselves against the reference on a device before a search uses them."""

import math

import pytest
import torch

from dmc.kernels import mixed_sum, select_mixed_sum
from dmc.kernels import self_check as check
from dmc.kernels.native import KernelBuildError
from dmc.kernels.operator import fused_mixed_sum


@pytest.fixture
def fresh(monkeypatch):
    """A process in which no device has been checked yet."""
    monkeypatch.setattr(check, "_checked", {})


def test_the_cpu_kernels_pass_and_auto_uses_them(fresh):
    assert check.check_fused("cpu") <= check.TOLERANCE
    assert select_mixed_sum("auto", "cpu") == ("fused", fused_mixed_sum)


def test_the_check_catches_a_kernel_that_is_off_by_a_little(fresh, monkeypatch):
    def off(outputs, weights, aux=None, beta=None):
        return fused_mixed_sum(outputs, weights, aux, beta) * (1 + 1e-4)

    monkeypatch.setattr(check, "fused_mixed_sum", off)
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
    assert select_mixed_sum("auto", "cpu", said.append) == ("reference", mixed_sum)
    assert len(said) == 1 and "differ from the reference mixed sum on cpu" in said[0]
    with pytest.raises(KernelBuildError, match="differ from the reference") as raised:
        select_mixed_sum("fused", "cpu")
    assert "--kernels reference" in raised.value.hint
    assert select_mixed_sum("reference", "cpu") == ("reference", mixed_sum)


def test_the_check_runs_once_per_device_type(fresh, monkeypatch):
    calls = []
    original = check._difference
    monkeypatch.setattr(check, "_difference", lambda *args: calls.append(args) or original(*args))
    check.check_fused("cpu")
    check.check_fused(torch.device("cpu"))
    assert len(calls) == 4  # contiguous / channels-last x with / without the auxiliary branch, once


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_cuda_kernels_pass(fresh):
    assert check.check_fused("cuda") <= check.TOLERANCE
