"""dmc::update_running_stats: the CPU kernel against BatchNorm2d's own update and the plain-PyTorch implementation;
opcheck (its mutated arguments are declared)."""

import pytest
import torch
from torch import nn

from dmc.kernels import native
from dmc.kernels.running_stats import plain_update_running_stats, update_running_stats


@pytest.fixture(scope="module", autouse=True)
def fused_kernels():
    native.load("cpu")


def buffers(k: int, c: int, dtype=torch.float64):
    gen = torch.Generator().manual_seed(k)
    return ([torch.randn(c, generator=gen, dtype=dtype) for _ in range(k)],
            [torch.rand(c, generator=gen, dtype=dtype) + 0.5 for _ in range(k)],
            [torch.tensor(3 + i) for i in range(k)])


def test_matches_batch_norm_s_own_update():
    """Norms of another momentum each, one a cumulative average, over three batches of float32."""
    z = torch.randn(3, 4, 4, 5, 6, 6) * 3 + 1  # 3 batches of 4 norms' inputs (4, 5, 6, 6)
    eager = [nn.BatchNorm2d(5, affine=False, momentum=m) for m in (0.1, 0.7, None, 0.1)]
    fused = [nn.BatchNorm2d(5, affine=False, momentum=m) for m in (0.1, 0.7, None, 0.1)]
    for batch in z:
        for norm, x in zip(eager, batch):
            norm(x)
        update_running_stats(fused, batch.mean((1, 3, 4)), batch.var((1, 3, 4), unbiased=False), 4 * 6 * 6)
    for a, b in zip(fused, eager):
        for x, y in zip(a.buffers(), b.buffers()):
            torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-6)


def test_kernel_equals_the_plain_implementation_in_float64():
    mean, var = torch.randn(3, 7, dtype=torch.float64), torch.rand(3, 7, dtype=torch.float64)
    factors = [0.1, 0.5, 1 / 4]
    by_kernel, byplain_update_running_stats = buffers(3, 7), buffers(3, 7)
    torch.ops.dmc.update_running_stats(*by_kernel, mean, var, 9, factors)
    plain_update_running_stats(*byplain_update_running_stats, mean, var, 9, factors)
    for a, b in zip(by_kernel, byplain_update_running_stats):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, rtol=1e-14, atol=1e-14)
    assert [int(n) for n in by_kernel[2]] == [4, 5, 6]


def test_versions_move_as_an_in_place_op_s_do():
    """Autograd then refuses a backward that reads a running statistic saved before the update."""
    written = buffers(2, 5)
    before = [t._version for ts in written for t in ts]
    torch.ops.dmc.update_running_stats(*written, torch.randn(2, 5, dtype=torch.float64),
                                       torch.rand(2, 5, dtype=torch.float64), 6, [0.1, 0.1])
    assert all(t._version > v for t, v in zip([t for ts in written for t in ts], before))
    x = torch.randn(4, 5, 3, 3, dtype=torch.float64, requires_grad=True)
    norm = nn.BatchNorm2d(5, affine=False).double().eval()  # eval: the batch norm saves its running statistics
    out = norm(x)
    update_running_stats([norm], torch.randn(1, 5, dtype=torch.float64), torch.rand(1, 5, dtype=torch.float64), 36)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_opcheck():
    torch.library.opcheck(torch.ops.dmc.update_running_stats.default,
                          (*buffers(2, 5, torch.float32), torch.randn(2, 5), torch.rand(2, 5), 6, [0.1, 0.2]))


def test_refuses_mismatched_arguments():
    means, variances, counts = buffers(2, 5)
    with pytest.raises(RuntimeError, match="one running variance, batch counter and factor per running mean"):
        torch.ops.dmc.update_running_stats(means, variances[:1], counts, torch.randn(2, 5, dtype=torch.float64),
                                           torch.rand(2, 5, dtype=torch.float64), 6, [0.1, 0.1])
    with pytest.raises(RuntimeError, match="running statistics must be contiguous CPU vectors of 4 values"):
        torch.ops.dmc.update_running_stats(means, variances, counts, torch.randn(2, 4, dtype=torch.float64),
                                           torch.rand(2, 4, dtype=torch.float64), 6, [0.1, 0.1])
