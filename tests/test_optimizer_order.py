"""Networks register their modules in forward order; optimizer states saved by older dmc versions (blocks first)
still land on the right parameters."""

import torch

from dmc.compiler import build_network
from dmc.genotype import published_genotypes
from dmc.optimizer_order import PARAMETER_ORDER, legacy_order, load_optimizer_state, optimizer_state
from dmc.space import load_space
from dmc.supernet import build_supernet
from dmc.train.optim import parameter_groups


def test_modules_are_registered_in_forward_order():
    network = build_network(published_genotypes()["FairNAS_A"], width=0.25)
    assert [name for name, _ in network.named_children()][:4] == ["stem", "stem1", "blocks", "head_act"]
    darts = build_network(published_genotypes()["DARTS_V2"], channels=8, layers=5, auxiliary=True)
    assert [name for name, _ in darts.named_children()] == ["stem", "blocks", "head_act", "global_pool", "classifier",
                                                            "auxiliary_head"]
    supernet = build_supernet(load_space("tiny"), 10)
    assert [name for name, _ in supernet.named_children()][:2] == ["stem", "blocks"]


def _stepped(model, params, steps=3):
    """An SGD-with-momentum optimizer over ``params`` (in that order), after a few steps on random data."""
    torch.manual_seed(0)
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    for _ in range(steps):
        optimizer.zero_grad()
        model(torch.randn(4, 3, 32, 32)).square().mean().backward()
        optimizer.step()
    return optimizer


def test_a_legacy_optimizer_state_is_renumbered_by_name():
    """A state saved in the legacy order (what dmc wrote before: blocks first) loads onto the parameters it was
    saved for, group by group; loaded as it is, the momentum buffers would land on the wrong parameters."""
    model = build_network(published_genotypes()["DARTS_V2"], channels=4, layers=3, num_classes=5)
    named = dict(model.named_parameters())
    groups = parameter_groups(model, 3e-4, norm_weight_decay=False)  # two groups, as the training recipes do
    name_of = {id(p): n for n, p in named.items()}
    legacy_groups = [{**g, "params": [named[n] for n in legacy_order([name_of[id(p)] for p in g["params"]])]}
                     for g in groups]
    legacy = _stepped(model, legacy_groups)
    saved = legacy.state_dict()
    expected = {name_of[id(p)]: legacy.state[p]["momentum_buffer"] for g in legacy.param_groups for p in g["params"]}

    fresh = torch.optim.SGD(parameter_groups(model, 3e-4, norm_weight_decay=False), lr=0.1, momentum=0.9)
    load_optimizer_state(fresh, model, saved)
    loaded = {name_of[id(p)]: fresh.state[p]["momentum_buffer"] for g in fresh.param_groups for p in g["params"]}
    assert loaded.keys() == expected.keys() and all(torch.equal(loaded[n], expected[n]) for n in expected)

    blind = torch.optim.SGD(parameter_groups(model, 3e-4, norm_weight_decay=False), lr=0.1, momentum=0.9)
    try:  # the position-matched load the renumbering replaces: shapes clash or buffers are swapped
        blind.load_state_dict(saved)
        swapped = any(not torch.equal(blind.state[named[n]]["momentum_buffer"], expected[n]) for n in expected)
    except (ValueError, RuntimeError):
        swapped = True
    assert swapped


def test_a_state_in_forward_order_loads_as_it_is():
    model = build_network(published_genotypes()["FairNAS_A"], width=0.25, num_classes=5)
    optimizer = _stepped(model, list(model.parameters()), steps=2)
    saved = optimizer_state(optimizer)
    assert saved["parameter_order"] == PARAMETER_ORDER
    fresh = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    load_optimizer_state(fresh, model, saved)
    assert all(torch.equal(fresh.state[p]["momentum_buffer"], optimizer.state[p]["momentum_buffer"])
               for p in model.parameters())
