"""Recomputed mixed edges: the gradients each backward pass asks for, and nothing else, equal to the stored path's."""

import copy

import pytest
import torch
import torch.nn.functional as F

from dmc.kernels.select import FUSED
from dmc.ops.conv import DilConv
from dmc.space import load_space
from dmc.supernet import build_supernet, compile_edges
from dmc.supernet.mixed_edge import MixedEdge, auxiliary_edge
from dmc.supernet.recompute import recomputed


def supernet(recompute: bool, kernels=None):
    torch.manual_seed(0)
    model = build_supernet(load_space("tiny").with_macro(channels=4, layers=3), 10, 3).double()
    if kernels is not None:
        model.set_kernels(kernels)
    model.set_recompute_edges(recompute, min_share=0)  # every edge
    return model.train()


@pytest.fixture
def batch():
    gen = torch.Generator().manual_seed(1)
    return (torch.randn(4, 3, 12, 12, generator=gen, dtype=torch.float64),
            torch.randint(0, 10, (4,), generator=gen))


def search_step_grads(model, x, y):
    """The two backward passes of a DARTS step: alphas only (the architecture step), then weights only."""
    F.cross_entropy(model(x), y).backward(inputs=model.arch_parameters())
    alphas = [p.grad.clone() for p in model.arch_parameters()]
    assert all(p.grad is None for p in model.weight_parameters())
    F.cross_entropy(model(x), y).backward(inputs=model.weight_parameters())
    weights = [p.grad.clone() for p in model.weight_parameters()]
    return alphas, weights, [b.clone() for b in model.buffers()]


@pytest.mark.parametrize("kernels", [None, FUSED], ids=["reference", "fused"])
def test_each_backward_pass_gets_the_stored_paths_gradients_in_float64(kernels, batch):
    plain = search_step_grads(supernet(False, kernels), *batch)
    lean = search_step_grads(supernet(True, kernels), *batch)
    for a, b in zip(plain, lean):
        for t, u in zip(a, b):
            torch.testing.assert_close(u, t, rtol=1e-10, atol=1e-12)


def test_the_architecture_step_computes_no_weight_gradient_in_a_recomputation(batch):
    """Without the check of what the surrounding pass wants, every conv's weight gradient would be computed in
    the alpha-only pass and thrown away."""
    model = supernet(True)
    computed = []
    for edge in model.mixed_edges():
        for p in edge.parameters():
            p.register_hook(lambda g: computed.append(g.shape))
    F.cross_entropy(model(batch[0]), batch[1]).backward(inputs=model.arch_parameters())
    assert computed == []
    F.cross_entropy(model(batch[0]), batch[1]).backward(inputs=model.weight_parameters())
    assert len(computed) == sum(1 for e in model.mixed_edges() for _ in e.parameters())


def test_dropout_masks_are_replayed_and_the_generator_moves_on_as_without_recomputation():
    torch.manual_seed(0)
    edge = MixedEdge(["skip_connect", "sep_conv_3x3"], 4, 4, 1, lambda: auxiliary_edge(4, 1, False)).double()
    edge.skip_dropout = 0.5
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64, requires_grad=True)
    w = torch.tensor([0.3, 0.7], dtype=torch.float64, requires_grad=True)
    beta = torch.tensor(0.5, dtype=torch.float64)
    results = []
    for run in (edge, lambda *a: recomputed(edge, *a)):
        torch.manual_seed(1)
        out = run(x, w, beta)
        grads = torch.autograd.grad((out * out).sum(), [x, w, *edge.parameters()])
        results.append((out, grads, torch.rand(3)))
    (out, grads, after), (out_r, grads_r, after_r) = results
    torch.testing.assert_close(out_r, out, rtol=0, atol=0)
    for g, g_r in zip(grads, grads_r):
        torch.testing.assert_close(g_r, g, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(after_r, after)


def test_running_statistics_move_once_per_forward(batch):
    """The recomputation normalises with the batch's statistics but leaves the running ones alone."""
    model = supernet(True)
    reference = supernet(False)
    for m in (model, reference):
        F.cross_entropy(m(batch[0]), batch[1]).backward()
    for (name, b), r in zip(model.named_buffers(), reference.buffers()):
        torch.testing.assert_close(b, r, rtol=1e-12, atol=1e-12, msg=name)
    assert all(norm.track_running_stats for edge in model.mixed_edges() for norm in edge.modules()
               if isinstance(norm, torch.nn.BatchNorm2d))


def test_compiled_edges_recompute(batch):
    reference = supernet(False)
    model = copy.deepcopy(reference)
    model.set_recompute_edges(True, min_share=0)
    compile_edges(model, "aot_eager")
    try:
        for a, b in zip(search_step_grads(reference, *batch), search_step_grads(model, *batch)):
            for t, u in zip(a, b):
                torch.testing.assert_close(u, t, rtol=1e-10, atol=1e-12)
    finally:
        torch._dynamo.reset()


def test_double_backward_through_a_recomputed_edge_is_refused():
    edge = MixedEdge(["skip_connect", "avg_pool_3x3"], 4, 4, 1, lambda: auxiliary_edge(4, 1, False))
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    w = torch.tensor([0.3, 0.7], requires_grad=True)
    (g,) = torch.autograd.grad(recomputed(edge, x, w, None).square().sum(), [w], create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|differentiable"):
        g.sum().backward()


def test_by_default_the_edges_holding_the_most_memory_are_recomputed():
    """S0: the first two stages' cells (outputs of 16 and 8 channels per input pixel at 16 channels) are recomputed,
    the last stage's (4) keep their activations; min_share=0 recomputes every edge; the share is kept."""
    model = build_supernet(load_space("darts_s0").with_macro(channels=16, layers=8), 10, 3)
    recomputed_cells = lambda: [all(e.recompute for e in cell.edges) for cell in model.blocks]  # noqa: E731
    assert recomputed_cells() == [False] * 8
    model.set_recompute_edges(True)
    assert recomputed_cells() == [True] * 5 + [False] * 3
    assert not any(e.recompute for cell in model.blocks[5:] for e in cell.edges)
    model.set_recompute_edges(True, min_share=0)
    assert recomputed_cells() == [True] * 8
    model.set_recompute_edges(False)
    assert recomputed_cells() == [False] * 8
    model.set_recompute_edges(True)
    assert recomputed_cells() == [True] * 8


def test_recomputed_edges_run_the_plain_separable_pair():
    """The one-op separable conv saves memory by computing the depthwise conv twice; a recomputed edge has no
    memory to save, so only the edges that keep their activations use it, whatever the order of the settings."""
    model = build_supernet(load_space("darts_s0").with_macro(channels=8, layers=5), 10, 3)

    def fused_convs():  # recomputed or not -> whether the edges' convs use the one-op separable conv
        seen = {}
        for edge in model.mixed_edges():
            seen.setdefault(edge.recompute, set()).update(
                m.separable is FUSED.separable for m in edge.modules() if isinstance(m, DilConv))
        return seen

    model.set_recompute_edges(True)
    model.set_kernels(FUSED)
    assert fused_convs() == {True: {False}, False: {True}}
    model.set_recompute_edges(False)
    assert fused_convs() == {False: {True}}
    model.set_recompute_edges(True, min_share=0)
    assert fused_convs() == {True: {False}}


def test_chain_layers_are_chosen_by_their_output_size(chain_spec):
    candidates = ["mbconv_k3_e3", "skip"]
    model = build_supernet(load_space(chain_spec("recompute_chain", candidates, candidates[:1])), 10, 3)
    model.set_recompute_edges(True)
    stride, sizes = model.macro.stem_stride, []
    for slot in model.macro.layer_slots():
        stride *= slot.stride
        sizes.append(slot.c_out / stride ** 2)
    assert [layer.recompute for layer in model.blocks] == [size >= max(sizes) / 2 for size in sizes]
    model.set_recompute_edges(True, min_share=0.75)  # the second stage (16 channels at stride 2) is kept
    assert [layer.recompute for layer in model.blocks] == [size >= 0.75 * max(sizes) for size in sizes]
    assert any(layer.recompute for layer in model.blocks) and not all(layer.recompute for layer in model.blocks)
