"""dmc::mixed_sum: the fused kernels against the plain-PyTorch reference, opcheck, gradcheck."""

import pytest
import torch

from dmc.kernels import fused_mixed_sum, mixed_sum, native
from dmc.kernels.reference import weighted_sum, weighted_sum_backward

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module", autouse=True)
def fused_kernels():
    for device in DEVICES:
        native.load(device)


def layouts(shape, gen, device):
    """The same values in the layouts an edge's candidate outputs come in."""
    base = torch.randn(shape, generator=gen).to(device)
    return {
        "contiguous": base.clone(),
        "channels_last": base.contiguous(memory_format=torch.channels_last),
        "non_contiguous": base.transpose(2, 3).contiguous().transpose(2, 3),  # dense, other strides
        "strided_view": torch.cat([base, base], dim=3)[..., ::2].clone().zero_().add_(base),
        "sliced": torch.cat([base, base], dim=1)[:, : shape[1]],  # not dense: a view into a bigger tensor
    }


def sample_inputs(device, dtype=torch.float32):
    gen = torch.Generator().manual_seed(0)
    for k, shape in [(1, (1, 3, 5, 7)), (2, (2, 4, 3, 3)), (8, (3, 5, 7, 9)), (9, (1, 1, 1, 1))]:
        for layout in ("contiguous", "channels_last", "sliced"):
            ys = [layouts(shape, gen, device)[layout].to(dtype).requires_grad_() for _ in range(k)]
            w = torch.randn(k, generator=gen).to(device, dtype).requires_grad_()
            yield ys, w


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    """Schema, fake kernel, autograd registration and AOT dispatch, on odd shapes and layouts."""
    for ys, w in sample_inputs(device):
        torch.library.opcheck(torch.ops.dmc.mixed_sum.default, (ys, w))
        grad = torch.randn_like(ys[0])
        torch.library.opcheck(torch.ops.dmc.mixed_sum_backward.default, (grad, [y.detach() for y in ys], w.detach()))


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_float64(device):
    gen = torch.Generator().manual_seed(1)
    ys = [torch.randn(2, 3, 4, 5, generator=gen, dtype=torch.float64).to(device).requires_grad_() for _ in range(3)]
    aux = torch.randn(2, 3, 4, 5, generator=gen, dtype=torch.float64).to(device).requires_grad_()
    w = torch.rand(3, generator=gen, dtype=torch.float64).to(device).requires_grad_()
    beta = torch.tensor(0.4, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *t: fused_mixed_sum(list(t[:3]), t[3], t[4], t[5]),
                                    (*ys, w, aux, beta))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k", range(1, 10))
def test_random_parity_with_reference(device, k):
    """Forward and every gradient match the eager expression, whatever the layout of each input."""
    gen = torch.Generator().manual_seed(100 + k)
    names = ["contiguous", "channels_last", "non_contiguous", "strided_view", "sliced"]
    for trial in range(4):
        shape = (1 if trial == 0 else int(torch.randint(1, 5, (1,), generator=gen)),
                 *torch.randint(1, 12, (3,), generator=gen).tolist())
        picks = torch.randint(0, len(names), (k + 1,), generator=gen).tolist()
        ys = [layouts(shape, gen, device)[names[p]].requires_grad_() for p in picks[:k]]
        aux = layouts(shape, gen, device)[names[picks[k]]].requires_grad_()
        w = torch.randn(k, generator=gen).softmax(0).to(device).requires_grad_()
        beta = torch.tensor([0.0, 0.7, 1.0, 0.3][trial], device=device)
        grad = torch.randn(shape, generator=gen).to(device)
        for use_aux in (True, False):
            args = (aux, beta) if use_aux else (None, None)
            inputs = [*ys, w, *([aux] if use_aux else [])]
            expected = mixed_sum(ys, w, *args)
            got = fused_mixed_sum(ys, w, *args)
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
            grads = zip(torch.autograd.grad(got, inputs, grad), torch.autograd.grad(expected, inputs, grad))
            for g_got, g_exp in grads:
                torch.testing.assert_close(g_got, g_exp, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_other_dtypes(device, dtype):
    gen = torch.Generator().manual_seed(3)
    ys = [torch.randn(2, 8, 5, 5, generator=gen).to(device, dtype) for _ in range(5)]
    w = torch.rand(5, generator=gen).to(device, dtype)
    grad = torch.randn(2, 8, 5, 5, generator=gen).to(device, dtype)
    tol = {"rtol": 1e-2, "atol": 1e-2} if dtype == torch.bfloat16 else {}
    torch.testing.assert_close(torch.ops.dmc.mixed_sum(ys, w), weighted_sum(ys, w), **tol)
    got, expected = torch.ops.dmc.mixed_sum_backward(grad, ys, w), weighted_sum_backward(grad, ys, w)
    torch.testing.assert_close(got[0], expected[0], **tol)
    torch.testing.assert_close(got[1], expected[1], **({"rtol": 2e-2, "atol": 5e-2} if tol else {}))


def test_output_keeps_the_memory_format():
    ys = [torch.randn(2, 6, 4, 4).contiguous(memory_format=torch.channels_last) for _ in range(3)]
    out = torch.ops.dmc.mixed_sum(ys, torch.rand(3))
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_bad_inputs_are_refused():
    with pytest.raises(RuntimeError, match="weights"):
        torch.ops.dmc.mixed_sum([torch.randn(2, 3)], torch.rand(2))
    with pytest.raises(RuntimeError, match="shape"):
        torch.ops.dmc.mixed_sum([torch.randn(2, 3), torch.randn(3, 2)], torch.rand(2))


def test_backward_is_one_operator_call():
    """All K input gradients and all K weight gradients come from one dmc::mixed_sum_backward."""
    ys = [torch.randn(2, 3, 4, 4, requires_grad=True) for _ in range(4)]
    w = torch.rand(4, requires_grad=True)
    out = torch.ops.dmc.mixed_sum(ys, w)
    with torch.profiler.profile() as prof:
        out.backward(torch.randn_like(out))
    counts = {e.key: e.count for e in prof.key_averages()}
    assert counts.get("dmc::mixed_sum_backward") == 1
    assert "aten::mul" not in counts and "aten::sum" not in counts
