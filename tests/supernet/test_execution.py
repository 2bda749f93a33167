"""How the supernet runs (kernels, memory format, recomputation, torch.compile) never changes what it computes."""

import copy

import pytest
import torch
import torch.nn.functional as F
import torch.utils._pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from dmc.kernels import fused_mixed_sum, mixed_sum
from dmc.kernels.layout import layout_of
from dmc.kernels.select import FUSED, REFERENCE
from dmc.ops.conv import DilConv, SepConv
from dmc.ops.mbconv import MBConv
from dmc.ops.pool import MaxPool
from dmc.space import load_space
from dmc.supernet import build_supernet, compile_backend, compile_edges
from dmc.supernet.mixed_edge import MixedEdge, auxiliary_edge


def tiny_supernet(seed=0):
    torch.manual_seed(seed)
    return build_supernet(load_space("tiny").with_macro(channels=4, layers=3), 10, 3)


def step_grads(model, x, y):
    """Loss, gradients of every parameter (alphas included) and the buffers after one training step."""
    model.train()
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads, {n: b.clone() for n, b in model.named_buffers()}


def assert_same_step(a, b, tol=1e-5):
    torch.testing.assert_close(a[0], b[0], rtol=tol, atol=tol)
    assert a[1].keys() == b[1].keys()
    for name in a[1]:
        torch.testing.assert_close(a[1][name], b[1][name], rtol=tol, atol=tol, msg=name)
    for name in a[2]:
        torch.testing.assert_close(a[2][name], b[2][name], rtol=tol, atol=tol, msg=name)


@pytest.fixture
def batch():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(5, 3, 16, 16, generator=gen), torch.randint(0, 10, (5,), generator=gen)


@pytest.mark.parametrize("setting", ["fused", "channels_last", "recompute", "all"])
def test_execution_settings_give_the_reference_step(setting, batch):
    reference = tiny_supernet()
    model = copy.deepcopy(reference)
    if setting in ("fused", "all"):
        model.set_kernels(FUSED)
    if setting in ("channels_last", "all"):
        model.set_channels_last(True)
    if setting in ("recompute", "all"):
        model.set_recompute_edges(True)
    assert_same_step(step_grads(model, *batch), step_grads(reference, *batch))


def test_recompute_keeps_only_edge_inputs(batch):
    """Saved activations shrink: the candidates' intermediates are not kept for backward."""
    def saved_bytes(model):
        total = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: total.append(t.nbytes) or t, lambda t: t):
            model(batch[0]).sum()
        return sum(total)

    model = tiny_supernet()
    plain = saved_bytes(model)
    model.set_recompute_edges(True)
    assert saved_bytes(model) < 0.5 * plain


def test_beta_zero_and_eval_mode_with_every_setting(batch):
    model = tiny_supernet()
    model.set_kernels(FUSED)
    model.set_recompute_edges(True)
    model.set_beta(0.0)
    reference = tiny_supernet()
    reference.set_beta(0.0)
    assert_same_step(step_grads(model, *batch), step_grads(reference, *batch))
    model.eval(), reference.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(batch[0]), reference(batch[0]), rtol=1e-5, atol=1e-5)


def test_compiled_edges_have_no_graph_breaks_and_match_eager(batch):
    """fullgraph=True: dmc::mixed_sum is one opaque node; aot_eager traces forward and backward."""
    reference = tiny_supernet()
    model = copy.deepcopy(reference)
    model.set_kernels(FUSED)
    model.set_channels_last(True)
    compile_edges(model, "aot_eager")
    assert_same_step(step_grads(model, *batch), step_grads(reference, *batch))
    torch._dynamo.reset()


def test_inductor_compiles_a_mixed_edge_with_the_fused_op():
    """The path `--compile` takes on CPU, on one edge: inductor's C++ backend around the opaque op."""
    torch.manual_seed(0)
    edge = MixedEdge(["skip_connect", "avg_pool_3x3", "sep_conv_3x3"], 4, 4, 1, lambda: auxiliary_edge(4, 1, False))
    edge.mixed_sum = fused_mixed_sum
    compiled = copy.deepcopy(edge)
    compiled.compile(backend="inductor", dynamic=False, fullgraph=True)
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    w = torch.rand(3, requires_grad=True)
    beta = torch.tensor(0.5)
    out, expected = compiled(x, w, beta), edge(x, w, beta)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    grads = torch.autograd.grad(out.square().sum(), (x, w))
    expected_grads = torch.autograd.grad(expected.square().sum(), (x, w))
    for g, e in zip(grads, expected_grads):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4)
    torch._dynamo.reset()


def test_compile_backend_is_triton_free_without_triton(monkeypatch):
    import torch.utils._triton as triton_utils

    assert compile_backend("cpu") == "inductor"
    monkeypatch.setattr(triton_utils, "has_triton", lambda: False)
    assert compile_backend("cuda") == "aot_eager"
    monkeypatch.setattr(triton_utils, "has_triton", lambda: True)
    assert compile_backend("cuda") == "inductor"


def test_reference_kernels_are_the_default_of_a_bare_supernet():
    model = tiny_supernet()
    assert all(edge.mixed_sum is mixed_sum for edge in model.mixed_edges())
    convs = [m for m in model.modules() if isinstance(m, DilConv)]
    assert convs and all(m.depthwise is None for m in convs)
    model.set_kernels(FUSED)
    assert all(m.depthwise is FUSED.depthwise for m in convs)


class DmcOperators(TorchDispatchMode):
    """Records the ``dmc::`` operators called (the fused kernels)."""

    def __init__(self):
        super().__init__()
        self.called = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == "dmc":
            self.called.add(str(func))
        return func(*args, **(kwargs or {}))


def dmc_operator_calls(model, x) -> set[str]:
    with DmcOperators() as mode:
        model(x)
    return mode.called


@pytest.mark.parametrize("space", ["darts_s0", "chain"])
def test_supernets_built_with_different_kernels_each_run_their_own(space, chain_spec):
    """Kernels are chosen per supernet when it is built: in one process, the supernet built with the fused kernels
    runs them and the one built with the reference kernels (before it) does not; both take the same step in float64.
    Switching kernels later is the supernet's own business too."""
    if space == "darts_s0":
        spec = load_space("darts_s0").with_macro(channels=4, layers=3)
    else:
        candidates = ["mbconv_k3_e3", "mbconv_k5_e6", "skip"]
        spec = load_space(chain_spec("kernels_chain", candidates, candidates[:2]))
    models = {}
    for kernels in (REFERENCE, FUSED):
        torch.manual_seed(0)
        models[kernels.name] = build_supernet(spec, 10, 3, kernels=kernels).double()
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(3, 3, 16, 16, generator=gen, dtype=torch.float64), torch.tensor([0, 1, 2])
    assert_same_step(step_grads(models["fused"], x, y), step_grads(models["reference"], x, y), tol=1e-10)
    assert dmc_operator_calls(models["fused"], x) and not dmc_operator_calls(models["reference"], x)
    models["fused"].set_kernels(REFERENCE)
    assert not dmc_operator_calls(models["fused"], x)


def assert_fused_step_is_the_reference_in_float64(space, channels_last, image_size, alpha):
    """The fused supernet's loss and gradients, alphas included, equal the reference's within float64 rounding."""
    torch.manual_seed(0)
    reference = build_supernet(space, 10, 3).double()
    fused = copy.deepcopy(reference)
    fused.set_kernels(FUSED)
    fused.set_channels_last(channels_last)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 3, image_size, image_size, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 10, (3,), generator=gen)
    step = [step_grads(model, x, y) for model in (fused, reference)]
    assert step[1][1][alpha].abs().max() > 1e-6
    assert_same_step(*step, tol=1e-10)
    return fused


def relu_calls(fn) -> int:
    """ReLUs computed by ``fn()``, including those inside compiled operators (the profiler sees aten calls made
    from C++)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        fn()
    return sum(event.count for event in profile.key_averages() if event.key == "aten::relu")


def test_a_fused_edge_computes_its_input_relu_once():
    """DARTS's four separable and dilated candidates all start with ReLU(x): the fused edge computes it once, the
    sep convs' second halves get theirs from the fused ``BN -> ReLU`` between the halves, and the backward masks
    instead of recomputing any."""
    torch.manual_seed(0)
    names = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
             "dil_conv_5x5")
    edge = MixedEdge(names, 4, 4, 1, lambda: auxiliary_edge(4, 1, False))
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    weights = torch.rand(len(names), requires_grad=True)
    counts = {}
    for kernels in (REFERENCE, FUSED):
        for module in edge.modules():
            if isinstance(module, DilConv):
                module.depthwise = kernels.depthwise
            elif isinstance(module, SepConv):
                module.batchnorm_act = kernels.batchnorm_act
        outputs = []
        forward = relu_calls(lambda outputs=outputs: outputs.append(edge(x, weights, torch.tensor(0.5))))
        counts[kernels.name] = forward, relu_calls(lambda outputs=outputs: outputs[0].square().sum().backward())
    assert counts == {"reference": (6, 0), "fused": (1, 0)}


@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_kernels_give_the_reference_gradients_in_float64(channels_last):
    """Every S0 candidate (separable and dilated 3x3/5x5, pools with their batch norms, skip and the factorized
    reduce) in a three-cell supernet, through the fused mixed sums with the batch norms folded in, the
    ReLU-depthwise convs and the index-free max-pools; the running statistics too."""
    space = load_space("darts_s0").with_macro(channels=4, layers=3)
    fused = assert_fused_step_is_the_reference_in_float64(space, channels_last, 12, "alpha_normal")
    assert all(edge.batchnorm_mixed_sum is FUSED.batchnorm_mixed_sum for edge in fused.mixed_edges())
    pools = [m for m in fused.modules() if isinstance(m, MaxPool)]
    assert pools and all(m.function is FUSED.max_pool for m in pools)


def test_fused_kernels_give_the_reference_chain_gradients_in_float64(chain_spec):
    """Inverted residuals with 3x3, 5x5 and 7x7 depthwise convs (the last two through the fused op), squeeze-excite
    and group convs, strided and not."""
    candidates = ["mbconv_k3_e3", "mbconv_k5_e3_g2", "mbconv_k7_e6_se", "skip"]
    space = load_space(chain_spec("fused_chain", candidates, candidates[:3]))
    fused = assert_fused_step_is_the_reference_in_float64(space, True, 16, "alpha_layers")
    assert sum(m.depthwise is not None for m in fused.modules() if isinstance(m, MBConv)) == 2 * 4
    # every expansion's and depthwise conv's BN -> ReLU6 of the 3 x 4 inverted residuals went through the fused op
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        fused(torch.randn(3, 3, 16, 16, dtype=torch.float64))
    assert {e.key: e.count for e in profile.key_averages()}.get("dmc::batchnorm_act") == 2 * 3 * 4


class LayoutMixes(TorchDispatchMode):
    """Records the ops that get both contiguous and channels-last activations (batch-sized 4-D tensors)."""

    def __init__(self, batch: int):
        super().__init__()
        self.batch, self.mixed = batch, set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        layouts = {layout_of(t) for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)
                   and t.dim() == 4 and t.shape[0] == self.batch and min(t.shape[1:]) > 1
                   and (t.is_contiguous() or t.is_contiguous(memory_format=torch.channels_last))}
        if len(layouts) > 1:
            self.mixed.add(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("space", ["darts_s0", "chain"])
def test_a_channels_last_supernet_never_mixes_layouts(space, chain_spec):
    """PyTorch runs ops on mixed contiguous / channels-last operands on slow paths (a slice's or the global pool's
    backward returns a contiguous gradient: the S0 search step was 20% slower for it)."""
    torch.manual_seed(0)
    if space == "darts_s0":
        spec = load_space("darts_s0").with_macro(channels=4, layers=3)
    else:
        candidates = ["mbconv_k3_e3", "mbconv_k5_e6", "skip"]
        spec = load_space(chain_spec("layouts_chain", candidates, candidates[:2]))
    model = build_supernet(spec, 10, 3)
    model.set_channels_last(True)
    x, y = torch.randn(3, 3, 16, 16), torch.tensor([0, 1, 2])
    mode = LayoutMixes(batch=3)
    with mode:
        F.cross_entropy(model(x), y).backward()
    assert not mode.mixed
