"""A search cell runs on its own, with the weights it is handed, exactly as the supernet runs it."""

import pytest
import torch

from dmc.families.cell.derive import node_edge_weights
from dmc.space import load_space
from dmc.supernet import build_supernet
from dmc.supernet.search_cell import SearchCell


def cell_runs(model, x):
    """Every search cell's inputs and output in one forward of ``model``."""
    seen = {}

    def record(cell, inputs, output):
        seen[cell] = inputs, output

    hooks = [cell.register_forward_hook(record) for cell in model.blocks if isinstance(cell, SearchCell)]
    model(x)
    for hook in hooks:
        hook.remove()
    return seen


@pytest.mark.parametrize("space, settings", [
    ("darts_s0", {}),
    ("darts_s0", {"partial_channels": 2, "channel_shuffle": True, "edge_normalization": True}),
    ("nb201", {}),
])
@pytest.mark.parametrize("beta", [0.5, 0.0])
def test_a_search_cell_called_alone_gives_the_supernet_run_of_it(space, settings, beta):
    """Two-input DARTS cells (normal and reduction), PC-DARTS's partial edges with their node-normalised edge
    weights, one-input NAS-Bench-201 cells; beta = 0 leaves the auxiliary skips out."""
    torch.manual_seed(0)
    model = build_supernet(load_space(space).with_macro(channels=4, layers=3 if space != "nb201" else 1), 10,
                           **settings).double()
    model.set_beta(beta)
    with torch.no_grad():  # away from uniform weights
        for alpha in model.arch_parameters():
            alpha.normal_()
    runs = cell_runs(model, torch.randn(2, 3, 16, 16, dtype=torch.float64))
    assert len(runs) == len(model.blocks) - (2 if space == "nb201" else 0)
    for cell, (inputs, output) in runs.items():
        group = "reduce" if cell.reduction else "normal"
        scales = None
        if settings:
            scales = node_edge_weights(getattr(model, f"edge_norm_{group}"), model.space)
        alone = cell(*inputs, weights=model.mixing_weights(group), beta=model.beta if beta else None,
                     edge_scales=scales)
        assert torch.equal(alone, output)
