"""A derived cell runs on its own, drop-path included, exactly as its compiled network runs it."""

import pytest
import torch

from dmc.compiler import build_network
from dmc.compiler.cell import DerivedCell
from dmc.families.cell.genotype import Genotype
from dmc.genotype import published_genotypes


def cell_runs(network, x):
    """Every cell's inputs, output and the random generator's state as the cell started, in one forward."""
    seen = {}

    def before(cell, inputs):
        seen[cell] = [inputs, torch.get_rng_state()]

    def after(cell, inputs, output):
        seen[cell].append(output)

    hooks = [hook for cell in network.blocks if isinstance(cell, DerivedCell)
             for hook in (cell.register_forward_pre_hook(before), cell.register_forward_hook(after))]
    network(x)
    for hook in hooks:
        hook.remove()
    return seen


@pytest.mark.parametrize("name, settings", [("DARTS_V2", {"channels": 8, "layers": 5}),
                                            ("nb201_best", {"channels": 4, "layers": 1})])
@pytest.mark.parametrize("training", [False, True])
def test_a_derived_cell_called_alone_gives_the_network_run_of_it(name, settings, training):
    """Drop-path is the cell's own setting (the network's ``drop_path_prob``, on every cell); in training it draws
    the same masks alone as in the network."""
    genotypes = {**published_genotypes(), "nb201_best": Genotype.from_nb201_string(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|")}
    network = build_network(genotypes[name], **settings).train(training)
    network.drop_path_prob = 0.3
    assert all(cell.drop_prob == 0.3 for cell in network.blocks if isinstance(cell, DerivedCell))
    torch.manual_seed(0)
    runs = cell_runs(network, torch.randn(3, 3, 32, 32))
    assert runs
    for cell, (inputs, rng, output) in runs.items():
        torch.set_rng_state(rng)
        assert torch.equal(cell(*inputs), output)


def test_a_cell_drops_paths_by_its_own_setting_in_training_only():
    torch.manual_seed(0)
    cell = build_network(published_genotypes()["DARTS_V2"], channels=8, layers=5).blocks[0]
    cell.drop_prob = 0.5
    inputs = [torch.randn(8, 24, 8, 8) for _ in range(2)]
    with torch.no_grad():
        cell.eval()
        assert torch.equal(cell(*inputs), cell(*inputs))
        cell.train()
        assert not torch.equal(cell(*inputs), cell(*inputs))
