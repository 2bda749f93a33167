"""dmc::max_pool2d: PyTorch's max pooling, bit for bit, without stored indices."""

import pytest
import torch
import torch.nn.functional as F

from dmc.kernels import native
from dmc.kernels.max_pool import max_pool2d, recomputing_max_pool2d


@pytest.fixture(autouse=True, scope="module")
def cpu_kernels():
    native.load("cpu")
    assert torch._C._dispatch_has_kernel_for_dispatch_key("dmc::max_pool2d", "CPU")  # the compiled kernel runs


def grads(fn, x, g, *args):
    x = x.detach().requires_grad_()
    out = fn(x, *args)
    return out, torch.autograd.grad(out, x, g)[0]


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("stride", [1, 2])
def test_equal_to_pytorch_bit_for_bit_ties_included(layout, stride):
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 3, (3, 5, 9, 8), generator=gen).float()  # many ties: the same maxima must be chosen
    x = x.contiguous(memory_format=layout)
    g = torch.randn(F.max_pool2d(x, 3, stride, 1).shape, generator=gen)
    got, expected = grads(recomputing_max_pool2d, x, g, 3, stride, 1), grads(max_pool2d, x, g, 3, stride, 1)
    for a, b in zip(got, expected):
        assert torch.equal(a, b)
    assert got[0].is_contiguous(memory_format=layout) and got[1].is_contiguous(memory_format=layout)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("window", [(3, 1, 1), (3, 2, 1), (2, 2, 0), (5, 2, 2)])
def test_the_cpu_kernel_is_pytorch_bit_for_bit_with_nan_and_inf(dtype, window):
    """19 and 37 channels: vector blocks of 16 and a scalar rest; NaN (the last NaN of a window takes the gradient),
    -inf windows, signed zeros and ties."""
    gen = torch.Generator().manual_seed(1)
    for channels in (19, 37):
        x = torch.randint(-2, 3, (3, channels, 11, 13), generator=gen).float() * 0.5
        x[0, :, 2, 3] = float("nan")
        x[2, :, 5, 5:7] = float("nan")
        x[1, :, 4:7, :] = float("-inf")
        x[2, :3] = -x[2, :3]  # -0.0 next to 0.0
        x = x.to(dtype).contiguous(memory_format=torch.channels_last)
        g = torch.randn(F.max_pool2d(x, *window).shape, generator=gen).to(dtype)
        got, expected = grads(recomputing_max_pool2d, x, g, *window), grads(max_pool2d, x, g, *window)
        assert torch.equal(got[0].nan_to_num(), expected[0].nan_to_num())
        assert torch.equal(got[0].isnan(), expected[0].isnan())
        assert torch.equal(got[1], expected[1])
        assert got[1].stride() == expected[1].stride()


def test_stores_only_its_input():
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        recomputing_max_pool2d(x, 3, 1, 1)
    assert len(saved) == 1 and saved[0].dtype == x.dtype and saved[0].shape == x.shape


def test_opcheck_and_gradcheck():
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(torch.ops.dmc.max_pool2d.default, (x, 3, 2, 1))
    torch.library.opcheck(torch.ops.dmc.max_pool2d_backward.default,
                          (torch.randn(2, 3, 4, 3, dtype=torch.float64), x.detach(), 3, 2, 1))
    assert torch.autograd.gradcheck(lambda t: recomputing_max_pool2d(t, 3, 1, 1), (x,))
    x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    torch.library.opcheck(torch.ops.dmc.max_pool2d.default, (x, 3, 2, 1))
    torch.library.opcheck(torch.ops.dmc.max_pool2d_backward.default,
                          (torch.randn(2, 3, 4, 3, dtype=torch.float64).contiguous(memory_format=torch.channels_last),
                           x.detach(), 3, 2, 1))
    assert torch.autograd.gradcheck(lambda t: recomputing_max_pool2d(t, 3, 1, 1), (x,))
