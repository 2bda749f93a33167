"""dmc::batchnorm_mixed_sum: the fused CPU kernel against eager BatchNorm2d + weighted sum, opcheck, gradcheck."""

import pytest
import torch
from torch import nn

from dmc.kernels import native
from dmc.kernels.batchnorm_sum import batchnorm_mixed_sum, fused_batchnorm_mixed_sum
from dmc.kernels.native import KernelBuildError


@pytest.fixture(scope="module", autouse=True)
def fused_kernels():
    native.load("cpu")


def inputs(k, j, shape, layout=torch.contiguous_format, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)

    def tensor():  # off-centre values: the statistics must not rely on a zero mean
        t = torch.randn(shape, generator=gen, dtype=dtype) * 2 + 3
        return t.contiguous(memory_format=layout).requires_grad_()
    return [tensor() for _ in range(k)], [tensor() for _ in range(j)], torch.randn(k + j, generator=gen, dtype=dtype)


def run(implementation, zs, ys, w, grad, momentum=0.1, steps=1):
    """Output, every input gradient, and the running statistics after ``steps`` calls."""
    norms = [nn.BatchNorm2d(zs[0].shape[1], affine=False, momentum=momentum).to(zs[0].dtype) for _ in zs]
    w = w.detach().requires_grad_()
    for _ in range(steps):
        out = implementation(zs, norms, ys, w)
    grads = torch.autograd.grad(out, [*zs, *ys, w], grad)
    stats = [t for norm in norms for t in (norm.running_mean, norm.running_var, norm.num_batches_tracked)]
    return [out, *grads, *stats]


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("k,j,shape", [(1, 0, (2, 3, 1, 1)), (3, 0, (3, 5, 7, 6)), (4, 3, (2, 21, 9, 11)),
                                       (6, 2, (32, 16, 8, 8))])
def test_matches_eager_batch_norms_and_sum(layout, k, j, shape):
    zs, ys, w = inputs(k, j, shape, layout)
    grad = torch.randn(shape).contiguous(memory_format=layout)
    got, expected = run(fused_batchnorm_mixed_sum, zs, ys, w, grad), run(batchnorm_mixed_sum, zs, ys, w, grad)
    for a, b in zip(got, expected):
        # with 2 values per channel the gradient of z is exactly 0 (rounding noise on both sides): absolute scale 1
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * max(1.0, b.abs().max().item()))
    assert got[0].is_contiguous(memory_format=layout)


def test_float64_to_rounding_and_momentum_none():
    """The cumulative average of BatchNorm2d(momentum=None), over three calls."""
    zs, ys, w = inputs(3, 2, (4, 6, 5, 5), torch.channels_last, torch.float64)
    grad = torch.randn(4, 6, 5, 5, dtype=torch.float64)
    for a, b in zip(run(fused_batchnorm_mixed_sum, zs, ys, w, grad, None, 3),
                    run(batchnorm_mixed_sum, zs, ys, w, grad, None, 3)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_running_statistics_follow_each_norms_own_settings():
    """One update call over norms that differ: momenta, the cumulative average, one that tracks nothing."""
    zs, ys, w = inputs(4, 1, (3, 5, 4, 4), dtype=torch.float64)

    def norms():
        made = [nn.BatchNorm2d(5, affine=False, momentum=m).double() for m in (0.1, 0.3, None, 0.1)]
        made[3].track_running_stats = False
        return made

    fused, eager = norms(), norms()
    for _ in range(2):
        fused_batchnorm_mixed_sum(zs, fused, ys, w)
        batchnorm_mixed_sum(zs, eager, ys, w)
    for a, b in zip(fused, eager):
        for x, y in zip(a.buffers(), b.buffers()):
            torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)
    assert int(fused[0].num_batches_tracked) == 2 and int(fused[3].num_batches_tracked) == 0


def test_mixed_layouts_are_accepted():
    zs, ys, w = inputs(2, 1, (2, 4, 5, 5))
    zs[1] = zs[1].detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    grad = torch.randn(2, 4, 5, 5)
    for a, b in zip(run(fused_batchnorm_mixed_sum, zs, ys, w, grad), run(batchnorm_mixed_sum, zs, ys, w, grad)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)


def test_opcheck():
    """Schema, fake kernel, autograd registration and AOT dispatch."""
    for layout in (torch.contiguous_format, torch.channels_last):
        zs, ys, w = inputs(3, 2, (3, 5, 4, 6), layout)
        torch.library.opcheck(torch.ops.dmc.batchnorm_mixed_sum.default, (zs, ys, w.requires_grad_(), 1e-5))
        zs, ys, w = [z.detach() for z in zs], [y.detach() for y in ys], w.detach()
        _, mean, var = torch.ops.dmc.batchnorm_mixed_sum(zs, ys, w, 1e-5)
        grad = torch.randn_like(zs[0])
        torch.library.opcheck(torch.ops.dmc.batchnorm_mixed_sum_backward.default,
                              (grad, zs, ys, w, mean, var, 1e-5))


def test_gradcheck_float64():
    zs, ys, w = inputs(2, 2, (3, 2, 3, 2), dtype=torch.float64)
    norms = [nn.BatchNorm2d(2, affine=False, track_running_stats=False).double() for _ in zs]
    assert torch.autograd.gradcheck(lambda *t: fused_batchnorm_mixed_sum(t[:2], norms, t[2:4], t[4]),
                                    (*zs, *ys, w.requires_grad_()))


def test_backward_is_one_operator_call():
    zs, ys, w = inputs(3, 1, (2, 3, 4, 4))
    norms = [nn.BatchNorm2d(3, affine=False) for _ in zs]
    out = fused_batchnorm_mixed_sum(zs, norms, ys, w.requires_grad_())
    with torch.profiler.profile() as prof:
        out.backward(torch.randn_like(out))
    counts = {e.key: e.count for e in prof.key_averages()}
    assert counts.get("dmc::batchnorm_mixed_sum_backward") == 1
    assert "aten::native_batch_norm_backward" not in counts and "aten::mul" not in counts


def test_refuses_what_it_cannot_fold():
    zs, ys, w = inputs(2, 0, (2, 3, 4, 4))
    for norms in ([nn.BatchNorm2d(3), nn.BatchNorm2d(3, affine=False)],             # affine
                  [nn.BatchNorm2d(3, affine=False).eval(), nn.BatchNorm2d(3, affine=False)],  # eval mode
                  [nn.BatchNorm2d(3, affine=False), nn.BatchNorm2d(3, eps=1e-3, affine=False)]):  # two eps
        with pytest.raises(ValueError, match="training-mode batch norms without affine"):
            fused_batchnorm_mixed_sum(zs, norms, ys, w)
    with pytest.raises(RuntimeError, match="expected 2 weights"):
        torch.ops.dmc.batchnorm_mixed_sum(zs, ys, torch.ones(3), 1e-5)
    with pytest.raises(RuntimeError, match="more than one value per channel"):
        torch.ops.dmc.batchnorm_mixed_sum([torch.randn(1, 3, 1, 1)], [], torch.ones(1), 1e-5)


def test_other_devices_are_refused_not_run_through_the_fallback():
    zs, ys, w = inputs(1, 0, (2, 3, 4, 4))
    with pytest.raises(KernelBuildError, match="CPU kernel only, got meta"):
        fused_batchnorm_mixed_sum([zs[0].detach().to("meta")], [nn.BatchNorm2d(3, affine=False)], [], w.to("meta")[:1])
