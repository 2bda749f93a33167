"""dmc::separable_conv2d against F.conv2d(F.conv2d(relu(x), dw, groups=C), pw): values, every gradient, layouts,
partial gradients, what it stores, tracing."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from dmc.kernels import fused_separable_conv2d, native, separable_conv2d

CASES = list(itertools.product((3, 5), (1, 2), (1, 2), (False, True)))  # kernel, dilation, stride, relu


@pytest.fixture(scope="module", autouse=True)
def cpu_kernels():
    native.load("cpu")


def eager(x, dw, pw, stride, padding, dilation, relu):
    """The layers as DARTS writes them."""
    return F.conv2d(F.conv2d(x.relu() if relu else x, dw, None, stride, padding, dilation, x.shape[1]), pw)


def inputs(channels_last=True, channels=21, out_channels=10, kernel=3, dtype=torch.float64):
    torch.manual_seed(0)
    x = torch.randn(2, channels, 11, 9, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    dw = torch.randn(channels, 1, kernel, kernel, dtype=dtype)
    pw = torch.randn(out_channels, channels, 1, 1, dtype=dtype)
    return x, dw, pw


@pytest.mark.parametrize("kernel,dilation,stride,relu", CASES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_float64_values_and_gradients_equal_the_layers(kernel, dilation, stride, relu, channels_last):
    x, dw, pw = inputs(channels_last, kernel=kernel)
    args = (stride, dilation * (kernel - 1) // 2, dilation, relu)
    results = []
    for implementation in (fused_separable_conv2d, separable_conv2d, eager):
        leaves = [t.detach().requires_grad_() for t in (x, dw, pw)]
        out = implementation(*leaves, *args)
        out.backward(torch.linspace(-1, 1, out.numel(), dtype=torch.float64).reshape(out.shape))
        results.append((out, *(t.grad for t in leaves)))
    fused, reference, layers = results
    for got, expected, plain in zip(fused, reference, layers):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got, plain, rtol=1e-12, atol=1e-12)
    assert fused[0].is_contiguous(memory_format=torch.channels_last) == channels_last
    assert fused[1].is_contiguous(memory_format=torch.channels_last) == channels_last


def test_gradcheck():
    x, dw, pw = inputs(channels=3, out_channels=4, kernel=3)
    x = x[:, :, :7, :6].contiguous(memory_format=torch.channels_last)
    x = x + 0.1 * x.sign()  # no value within gradcheck's step of the ReLU's kink
    assert torch.autograd.gradcheck(lambda a, b, c: fused_separable_conv2d(a, b, c, 2, 2, 2, True),
                                    (x.requires_grad_(), dw.requires_grad_(), pw.requires_grad_()))


def test_a_precomputed_relu_serves_the_forward_and_autograd_still_sees_x():
    x, dw, pw = inputs()
    x.requires_grad_()
    out = fused_separable_conv2d(x, dw, pw, 1, 1, 1, True, activated=x.detach().relu())
    expected = eager(x, dw, pw, 1, 1, 1, True)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(out)
    torch.testing.assert_close(torch.autograd.grad(out, x, grad)[0], torch.autograd.grad(expected, x, grad)[0],
                               rtol=1e-12, atol=1e-12)
    assert not torch.equal(fused_separable_conv2d(x, dw, pw, 1, 1, 1, True, activated=x.detach().abs()), out)


@pytest.mark.parametrize("wanted", [(0,), (1,), (2,), (0, 2), (1, 2), (0, 1, 2)])
def test_only_the_gradients_autograd_asks_for_are_computed(wanted):
    """The architecture step asks for the input gradient alone: the depthwise conv is then not run again."""
    x, dw, pw = (t.float().requires_grad_() for t in inputs(kernel=5))
    grad = torch.randn(2, 10, 11, 9)
    leaves = (x, dw, pw)
    got = torch.autograd.grad(fused_separable_conv2d(x, dw, pw, 1, 4, 2, True), [leaves[i] for i in wanted], grad)
    want = torch.autograd.grad(eager(x, dw, pw, 1, 4, 2, True), [leaves[i] for i in wanted], grad)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    needs = [i in wanted for i in range(3)]
    results = torch.ops.dmc.separable_conv2d_backward(grad, x, dw, pw, 1, 4, 2, True, *needs)
    assert [r.numel() > 0 for r in results] == needs


def test_input_gradient_runs_no_depthwise_forward():
    """Without the pointwise weight's gradient the backward never computes the depthwise output again."""
    x, dw, pw = (t.float().requires_grad_() for t in inputs())
    out = fused_separable_conv2d(x, dw, pw, 1, 1, 1, True)
    with torch.profiler.profile() as profile:
        torch.autograd.grad(out, x, torch.ones_like(out))
    names = [event.name for event in profile.events()]
    assert "dmc::separable_conv2d_backward" in names and "dmc::depthwise_conv2d" not in names
    with torch.profiler.profile() as profile:
        torch.autograd.grad(fused_separable_conv2d(x, dw, pw, 1, 1, 1, True), pw, torch.ones_like(out))
    assert "dmc::depthwise_conv2d" in [event.name for event in profile.events()]


def test_stores_only_its_input_and_weights():
    x, dw, pw = (t.float().requires_grad_() for t in inputs())
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        fused_separable_conv2d(x, dw, pw, 1, 1, 1, True)
    assert {t.data_ptr() for t in saved} == {x.data_ptr(), dw.data_ptr(), pw.data_ptr()}


def test_weight_gradients_keep_the_weights_strides():
    """DDP's gradient buckets expect each gradient in its parameter's strides; [C, 1, k, k] has two layouts."""
    x, dw, pw = inputs()
    dw = dw.contiguous(memory_format=torch.channels_last).requires_grad_()
    pw = pw.requires_grad_()
    fused_separable_conv2d(x.requires_grad_(), dw, pw, 1, 1, 1, True).sum().backward()
    assert dw.grad.stride() == dw.stride() and pw.grad.stride() == pw.stride()


def test_traced_as_one_node():
    x, dw, pw = (t.float().requires_grad_() for t in inputs())
    compiled = torch.compile(lambda a, b, c: fused_separable_conv2d(a, b, c, 2, 2, 2, True), fullgraph=True,
                             backend="aot_eager")
    out = compiled(x, dw, pw)
    torch.testing.assert_close(out, eager(x, dw, pw, 2, 2, 2, True), rtol=1e-4, atol=1e-4)
    out.sum().backward()
    assert all(t.grad is not None for t in (x, dw, pw))
    torch._dynamo.reset()


def test_bad_inputs_are_named():
    x, dw, _ = inputs(dtype=torch.float32)
    with pytest.raises(RuntimeError, match=r"the pointwise weight must be \(C_out, 21, 1, 1\)"):
        torch.ops.dmc.separable_conv2d(x, dw, torch.randn(4, 20, 1, 1), 1, 1, 1, True)
    with pytest.raises(RuntimeError, match=r"the weight must be \(C, 1, K, K\)"):
        torch.ops.dmc.separable_conv2d(x, torch.randn(20, 1, 3, 3), torch.randn(4, 21, 1, 1), 1, 1, 1, True)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("dilation", [1, 2])
def test_fake_kernels_describe_the_real_results(layout, dilation):
    x = torch.randn(2, 5, 8, 8).contiguous(memory_format=layout)
    dw = torch.randn(5, 1, 3, 3)
    pw = torch.randn(6, 5, 1, 1)
    grad = torch.randn(2, 6, 8, 8).contiguous(memory_format=layout)
    torch.library.opcheck(torch.ops.dmc.separable_conv2d.default, (x, dw, pw, 1, dilation, dilation, True),
                          test_utils=("test_schema", "test_faketensor"))
    torch.library.opcheck(torch.ops.dmc.separable_conv2d_backward.default,
                          (grad, x, dw, pw, 1, dilation, dilation, True, True, True, True),
                          test_utils=("test_schema", "test_faketensor"))


@pytest.mark.parametrize("needs", [(True, True, True), (True, False, False), (False, False, True)])
def test_the_plain_pytorch_implementations_equal_the_cpu_kernels(needs):
    """Devices without compiled kernels (CUDA here) run the composite forward and backward: same results."""
    from dmc.kernels import separable

    x, dw, pw = inputs(kernel=5)
    args = (2, 4, 2, True)
    torch.testing.assert_close(separable._forward_composite(x, dw, pw, *args),
                               torch.ops.dmc.separable_conv2d(x, dw, pw, *args), rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(torch.ops.dmc.separable_conv2d(x, dw, pw, *args))
    got = separable._backward_composite(grad, x, dw, pw, *args, *needs)
    want = torch.ops.dmc.separable_conv2d_backward(grad, x, dw, pw, *args, *needs)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
