"""dmc::depthwise_conv2d against F.conv2d(relu(x)): values, both gradients, layouts, partial gradients, tracing."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from dmc.kernels import depthwise_conv2d, fused_depthwise_conv2d, native

CASES = list(itertools.product((3, 5, 7), (1, 2), (1, 2), (False, True)))  # kernel, dilation, stride, relu


@pytest.fixture(scope="module", autouse=True)
def cpu_kernels():
    native.load("cpu")


def padding_of(kernel, dilation):
    return dilation * (kernel - 1) // 2


@pytest.mark.parametrize("kernel,dilation,stride,relu", CASES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_float64_values_and_gradients_equal_the_reference(kernel, dilation, stride, relu, channels_last):
    """21 channels: full vector blocks, a narrower block and single channels; 11x9: borders on every side."""
    torch.manual_seed(0)
    x = torch.randn(2, 21, 11, 9, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(21, 1, kernel, kernel, dtype=torch.float64)
    args = (stride, padding_of(kernel, dilation), dilation, relu)
    results = []
    for implementation in (fused_depthwise_conv2d, depthwise_conv2d):
        xi, wi = x.detach().requires_grad_(), weight.detach().requires_grad_()
        out = implementation(xi, wi, *args)
        out.backward(torch.linspace(-1, 1, out.numel(), dtype=torch.float64).reshape(out.shape))
        results.append((out, xi.grad, wi.grad))
    for got, expected in zip(*results):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
        assert got.is_contiguous(memory_format=torch.channels_last) == \
            expected.is_contiguous(memory_format=torch.channels_last)


def test_gradcheck_through_the_relu():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    x = x + 0.1 * x.sign()  # no value within gradcheck's step of the ReLU's kink
    w = torch.randn(3, 1, 5, 5, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: fused_depthwise_conv2d(a, b, 2, 4, 2, True),
                                    (x.requires_grad_(), w.requires_grad_()))


def test_float32_matches_within_rounding():
    torch.manual_seed(0)
    x = torch.randn(4, 32, 16, 16).contiguous(memory_format=torch.channels_last)
    w = torch.randn(32, 1, 5, 5)
    torch.testing.assert_close(fused_depthwise_conv2d(x, w, 1, 4, 2, True), depthwise_conv2d(x, w, 1, 4, 2, True),
                               rtol=1e-5, atol=1e-5)


def test_a_precomputed_relu_serves_the_forward_and_autograd_still_sees_x():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 9, 9, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    w = torch.randn(6, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    expected_x = x.clone().requires_grad_()
    expected = depthwise_conv2d(expected_x, w, 1, 1, 1, True)
    x.requires_grad_()
    out = fused_depthwise_conv2d(x, w, 1, 1, 1, True, activated=x.detach().relu())
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, (x, w), grad)
    want = torch.autograd.grad(expected, (expected_x, w), grad)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # the forward really reads it: the CPU kernel computes no ReLU of its own
    assert not torch.equal(fused_depthwise_conv2d(x, w, 1, 1, 1, True, activated=x.detach().abs()), out)
    with pytest.raises(RuntimeError, match="activated must be relu"):
        fused_depthwise_conv2d(x, w, 1, 1, 1, True, activated=x.detach()[:1].relu())


def test_only_the_gradients_autograd_asks_for_are_computed():
    """The architecture step differentiates through the convs but never needs their weight gradients."""
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    w = torch.randn(4, 1, 3, 3, requires_grad=True)
    grad = torch.randn(2, 4, 8, 8)
    grad_x, grad_w = torch.ops.dmc.depthwise_conv2d_backward(grad, x, w, 1, 2, 2, True, True, False)
    assert grad_x.shape == x.shape and grad_w.numel() == 0
    grad_x, grad_w = torch.ops.dmc.depthwise_conv2d_backward(grad, x, w, 1, 2, 2, True, False, True)
    assert grad_x.numel() == 0 and grad_w.shape == w.shape
    (only_x,) = torch.autograd.grad(fused_depthwise_conv2d(x, w, 1, 2, 2, True).sum(), (x,))
    torch.testing.assert_close(only_x, torch.autograd.grad(depthwise_conv2d(x, w, 1, 2, 2, True).sum(), (x,))[0])


def test_traced_as_one_node_and_shapes_on_meta():
    x = torch.randn(2, 4, 9, 9).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(4, 1, 5, 5, requires_grad=True)
    compiled = torch.compile(lambda a, b: fused_depthwise_conv2d(a, b, 2, 4, 2, True), fullgraph=True,
                             backend="aot_eager")
    out = compiled(x, w)
    torch.testing.assert_close(out, depthwise_conv2d(x, w, 2, 4, 2, True))
    out.sum().backward()
    assert x.grad is not None and w.grad is not None
    meta = torch.ops.dmc.depthwise_conv2d(torch.empty(2, 4, 9, 9, device="meta"), torch.empty(4, 1, 5, 5,
                                                                                              device="meta"), 2, 4, 2,
                                          True)
    assert meta.shape == F.conv2d(torch.empty(2, 4, 9, 9), torch.empty(4, 1, 5, 5), None, 2, 4, 2, 4).shape
    torch._dynamo.reset()


def test_bad_inputs_are_named():
    with pytest.raises(RuntimeError, match=r"the weight must be \(C, 1, K, K\)"):
        torch.ops.dmc.depthwise_conv2d(torch.randn(1, 4, 8, 8), torch.randn(3, 1, 3, 3), 1, 1, 1, True)
    with pytest.raises(RuntimeError, match="float32 or float64"):
        torch.ops.dmc.depthwise_conv2d_backward(torch.randn(1, 4, 8, 8).half(), torch.randn(1, 4, 8, 8).half(),
                                                torch.randn(4, 1, 3, 3).half(), 1, 1, 1, True, True, True)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("dilation", [1, 2])
def test_fake_kernels_describe_the_real_results(layout, dilation):
    """torch.compile's inductor asserts the real strides against the fake kernels' (opcheck checks both ops)."""
    x = torch.randn(2, 5, 8, 8).contiguous(memory_format=layout)
    w = torch.randn(5, 1, 3, 3).contiguous(memory_format=layout)
    grad = torch.randn(2, 5, 8, 8).contiguous(memory_format=layout)
    torch.library.opcheck(torch.ops.dmc.depthwise_conv2d.default, (x, w, 1, dilation, dilation, True),
                          test_utils=("test_schema", "test_faketensor"))
    torch.library.opcheck(torch.ops.dmc.depthwise_conv2d_backward.default,
                          (grad, x, w, 1, dilation, dilation, True, True, True),
                          test_utils=("test_schema", "test_faketensor"))
