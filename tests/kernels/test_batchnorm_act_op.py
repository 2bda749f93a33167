"""dmc::batchnorm_act: the fused CPU kernel against eager BatchNorm2d + ReLU/ReLU6, opcheck, gradcheck."""

import pytest
import torch
from torch import nn

from dmc.kernels import native
from dmc.kernels.batchnorm_act import batchnorm_act, fused_batchnorm_act
from dmc.kernels.native import KernelBuildError


@pytest.fixture(scope="module", autouse=True)
def fused_kernels():
    native.load("cpu")


def inputs(shape, layout=torch.contiguous_format, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(shape, generator=gen, dtype=dtype) * 4 + 3  # off-centre: the statistics must not assume 0
    z[0, :, 0, 0] = 100  # an outlier per channel, normalised to more than 6 where there are enough values: clipped
    z = z.contiguous(memory_format=layout)
    return z.requires_grad_(), torch.randn(shape, generator=gen, dtype=dtype)


def run(implementation, z, grad, activation, momentum=0.1, steps=1):
    """Output, the input's gradient and the running statistics after ``steps`` calls."""
    norm = nn.BatchNorm2d(z.shape[1], affine=False, momentum=momentum).to(z.dtype)
    for _ in range(steps):
        out = implementation(z, norm, activation)
    (grad_z,) = torch.autograd.grad(out, z, grad)
    return [out, grad_z, norm.running_mean, norm.running_var, norm.num_batches_tracked]


@pytest.mark.parametrize("activation", ["relu", "relu6"])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("shape", [(2, 3, 1, 1), (3, 5, 7, 6), (2, 21, 9, 11), (4, 240, 4, 4)])
def test_matches_eager_batch_norm_and_activation(activation, layout, shape):
    z, grad = inputs(shape, layout)
    got, expected = run(fused_batchnorm_act, z, grad, activation), run(batchnorm_act, z, grad, activation)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * max(1.0, b.abs().max().item()))
    assert got[0].is_contiguous(memory_format=layout) and got[1].stride() == expected[1].stride()


def test_float64_to_rounding_and_momentum_none():
    z, grad = inputs((4, 6, 5, 5), torch.channels_last, torch.float64)
    for a, b in zip(run(fused_batchnorm_act, z, grad, "relu6", None, 3), run(batchnorm_act, z, grad, "relu6", None, 3)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_nan_propagates_as_in_relu6():
    z, _ = inputs((2, 3, 4, 4))
    z = z.detach().clone()
    z[0, 1, 2, 3] = float("nan")
    out = fused_batchnorm_act(z, nn.BatchNorm2d(3, affine=False), "relu6")
    assert out[:, 1].isnan().all() and not out[:, 0].isnan().any()  # channel 1's statistics are NaN


def test_opcheck():
    """Schema, fake kernel, autograd registration and AOT dispatch."""
    for layout in (torch.contiguous_format, torch.channels_last):
        z, grad = inputs((3, 5, 4, 6), layout)
        torch.library.opcheck(torch.ops.dmc.batchnorm_act.default, (z, 1e-5, "relu6"))
        z = z.detach()
        _, mean, var = torch.ops.dmc.batchnorm_act(z, 1e-5, "relu")
        torch.library.opcheck(torch.ops.dmc.batchnorm_act_backward.default, (grad, z, mean, var, 1e-5, "relu"))


@pytest.mark.parametrize("activation", ["relu", "relu6"])
def test_gradcheck_float64(activation):
    z, _ = inputs((3, 2, 3, 2), torch.channels_last, torch.float64)
    norm = nn.BatchNorm2d(2, affine=False, track_running_stats=False).double()
    assert torch.autograd.gradcheck(lambda t: fused_batchnorm_act(t, norm, activation), (z,))


def test_stores_only_its_input():
    """Eagerly the batch norm and the activation each keep a tensor; the fused op keeps the input (and the
    statistics)."""
    z, _ = inputs((4, 8, 6, 6), torch.channels_last)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        fused_batchnorm_act(z, nn.BatchNorm2d(8, affine=False), "relu6")
    assert [t.numel() for t in saved] == [z.numel(), 8, 8] and saved[0] is z


def test_refuses_what_it_cannot_fold():
    z, _ = inputs((2, 3, 4, 4))
    for norm in (nn.BatchNorm2d(3), nn.BatchNorm2d(3, affine=False).eval()):
        with pytest.raises(ValueError, match="training-mode BatchNorm2d without affine"):
            fused_batchnorm_act(z, norm, "relu6")
    with pytest.raises(RuntimeError, match="activation must be relu or relu6"):
        torch.ops.dmc.batchnorm_act(z, 1e-5, "swish")
    with pytest.raises(RuntimeError, match="more than one value per channel"):
        torch.ops.dmc.batchnorm_act(torch.randn(1, 3, 1, 1), 1e-5, "relu")


def test_other_devices_are_refused_not_run_through_the_fallback():
    z, _ = inputs((2, 3, 4, 4))
    with pytest.raises(KernelBuildError, match="CPU kernel only, got meta"):
        fused_batchnorm_act(z.detach().to("meta"), nn.BatchNorm2d(3, affine=False), "relu6")
