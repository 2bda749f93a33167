"""Cost-aware search (issue 32, item 2): the expected cost and its gradient against a hand computation, the
published rules against their formulas, counted costs against the compiler's networks (MACs by torch's FLOP
counter, parameters), a tiny search whose expected cost falls with a tighter target, and the settings' refusals."""

from __future__ import annotations

import math

import pytest
import torch

from dmc.compiler import BuildArgs, CompiledNetwork
from dmc.errors import SettingError
from dmc.families import family_of
from dmc.profile import count_macs
from dmc.search import SearchConfig, read_history, search
from dmc.search.cost import CostTable, counted_cost_table, latency_cost_table
from dmc.search.cost_rules import COST_LOSSES, cost_loss
from dmc.space import load_space
from dmc.supernet import build_supernet
from dmc.viz import visualize


def test_the_expected_cost_and_its_gradient_equal_a_hand_computation():
    costs = ((1.0, 4.0, 0.0), (2.0, 3.0, 5.0))
    table = CostTable("latency", {"layers": costs}, fixed=7.0)
    alpha = torch.tensor([[0.1, -0.3, 0.5], [1.0, 0.0, -1.0]], dtype=torch.float64, requires_grad=True)
    expected = table.expected({"layers": alpha.softmax(-1)})
    p = alpha.detach().softmax(-1)
    c = torch.tensor(costs, dtype=torch.float64)
    row_costs = (p * c).sum(-1)
    assert expected.item() == pytest.approx(7.0 + row_costs.sum().item(), rel=1e-12)
    expected.backward()
    # d/d alpha_k of sum_j p_j c_j = p_k (c_k - sum_j p_j c_j)
    torch.testing.assert_close(alpha.grad, p * (c - row_costs[:, None]), rtol=1e-12, atol=1e-12)
    assert table.of_choice({"layers": [(0, 1), (1, 2)]}) == 7.0 + 4.0 + 5.0


@pytest.mark.parametrize("rule", list(COST_LOSSES))
def test_each_rule_equals_its_formula(rule):
    ce, expected, target = torch.tensor(1.7), torch.tensor(12.0), 9.0
    a, b = COST_LOSSES[rule]
    got = cost_loss(ce, expected, rule, None if rule == "fbnet" else target).item()
    want = {"fbnet": 1.7 * a * math.log(12.0) ** (b or 0),
            "proxyless-mul": a * 1.7 * (math.log(12.0) / math.log(9.0)) ** (b or 0),
            "proxyless-add": 1.7 + a * (12.0 - 9.0) / 9.0,
            "tfnas": 1.7 + a * abs(12.0 / 9.0 - 1)}[rule]
    assert got == pytest.approx(want, rel=1e-6)
    assert cost_loss(ce, expected, rule, None if rule == "fbnet" else target, weight=0.5).item() != pytest.approx(got)


CASES = [("tiny", dict(channels=4, layers=3), 16), ("darts_s0", dict(channels=4, layers=5), 32),
         ("nb201", dict(channels=4, layers=1), 16), ("proxyless_s5", dict(width=0.25), 32),
         ("fbnet_s5", dict(width=0.25), 32)]


@pytest.mark.parametrize("name,macro,size", CASES, ids=[c[0] for c in CASES])
def test_counted_costs_equal_the_compiled_networks_of_other_genotypes(name, macro, size):
    """The table is fitted on the genotype derived at construction; genotypes of random alphas must cost exactly
    what the compiler's networks count (MACs by torch's FLOP counter, parameters)."""
    torch.manual_seed(0)
    space = load_space(name).with_macro(**macro)
    supernet = build_supernet(space, 10, 3)
    tables = {kind: counted_cost_table(supernet, kind, size, 3, 10) for kind in ("macs", "params")}
    family = family_of(space)
    for _ in range(3):
        with torch.no_grad():
            for alpha in supernet.arch_parameters():
                alpha.normal_(0, 1)
        genotype = supernet.genotype()
        network = CompiledNetwork(genotype, BuildArgs(space.macro, 10, 3)).eval()
        chosen = family.chosen_candidates(genotype, space)
        assert tables["macs"].of_choice(chosen) == pytest.approx(count_macs(network, size) / 1e6, rel=1e-9)
        assert tables["params"].of_choice(chosen) == pytest.approx(network.num_parameters() / 1e6, rel=1e-9)


def test_counting_changes_nothing_of_the_supernet():
    space = load_space("tiny").with_macro(channels=4, layers=3)
    supernet = build_supernet(space, 10, 3).train()
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    counted_cost_table(supernet, "macs", 16, 3, 10)
    assert supernet.training
    for key, value in supernet.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.fixture(scope="module")
def tiny(toy_data):
    return dict(space="tiny", batch_size=8, channels=4, layers=3, deterministic=True, dataset=toy_data,
                epochs=4, seed=1, arch_lr=0.05)


def test_a_tighter_target_gives_a_cheaper_network(tmp_path, tiny):
    runs = {}
    for name, target in (("loose", 10.0), ("tight", 0.01)):
        search(SearchConfig(**tiny, cost="macs", cost_target=target, cost_loss="tfnas", cost_weight=5.0),
               tmp_path / name)
        runs[name] = read_history(tmp_path / name)
    for history in runs.values():
        assert all({"expected_cost", "derived_cost"} <= record.keys() for record in history)
        assert history[0]["cost_unit"] == "MMACs"
    assert runs["tight"][-1]["expected_cost"] < runs["loose"][-1]["expected_cost"]
    assert runs["tight"][-1]["expected_cost"] < runs["tight"][0]["expected_cost"]
    drawn = visualize(tmp_path / "tight", tmp_path / "viz")
    assert tmp_path / "viz" / "cost.png" in drawn and (tmp_path / "viz" / "cost.png").stat().st_size > 0


@pytest.mark.parametrize("settings,problem", [
    (dict(cost="flops"), "is not a cost"),
    (dict(cost="latency"), "is not a cost"),
    (dict(cost="macs", cost_loss="proxyless-mul"), "needs a target cost above 1"),
    (dict(cost="macs", cost_loss="fbnet", cost_target=3.0), "FBNet's cost rule has no target"),
    (dict(cost="macs", cost_loss="tfnas", cost_target=3.0, cost_exponent=0.5), "tfnas has no exponent"),
    (dict(cost="macs", cost_loss="mine", cost_target=3.0), "is not a cost rule"),
    (dict(cost_target=3.0), "need a cost to search for"),
])
def test_cost_settings_are_refused_in_one_line(settings, problem):
    with pytest.raises(SettingError, match=problem):
        SearchConfig(**settings).validate()


def test_a_latency_table_is_refused_for_a_cell_space(tmp_path):
    with pytest.raises(SettingError, match="cell space"):
        latency_cost_table(str(tmp_path / "lut.json"), load_space("tiny"))
