"""dmc::max_pool2d: PyTorch's max pooling, bit for bit, without stored indices."""

import pytest
import torch
import torch.nn.functional as F

from dmc.kernels.max_pool import max_pool2d, recomputing_max_pool2d


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
