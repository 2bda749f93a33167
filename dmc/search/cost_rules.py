"""The rules that fold a network's expected cost into the architecture step's loss, and the checks of the cost
settings (:mod:`dmc.search.cost` computes the cost; this module imports nothing of the network, so the search
settings can check it).

- ``fbnet`` (FBNet): ``CE * a * log(E) ** b``, a = 0.2, b = 0.6; no target;
- ``proxyless-mul`` (ProxylessNAS ``mul#log``): ``a * CE * (log(E) / log(T)) ** b``, a = 0.2, b = 0.3;
- ``proxyless-add`` (ProxylessNAS ``add#linear``): ``CE + l * (E - T) / T``, l = 0.1;
- ``tfnas`` (TF-NAS): ``CE + l * |E / T - 1|``, l = 0.1.

``E`` is the expected cost, ``T`` the target; the logarithmic rules need costs above one unit (ms, millions of MACs
or of parameters).
"""

from __future__ import annotations

import math

import torch

from dmc.errors import SettingError

COST_KINDS = ("latency", "macs", "params")
COST_UNITS = {"latency": "ms", "macs": "MMACs", "params": "M parameters"}
COST_LOSSES: dict[str, tuple[float, float | None]] = {
    "fbnet": (0.2, 0.6), "proxyless-mul": (0.2, 0.3), "proxyless-add": (0.1, None), "tfnas": (0.1, None)}
"""Each rule's (weight, exponent) defaults: a and b of the multiplicative rules, l of the additive ones."""


def cost_loss(ce: torch.Tensor, expected: torch.Tensor, rule: str, target: float | None, weight: float | None = None,
              exponent: float | None = None) -> torch.Tensor:
    """The validation objective of rule ``rule`` (see the module docstring): ``ce`` and ``expected`` are device
    scalars; ``weight``/``exponent`` None take the rule's defaults."""
    default_weight, default_exponent = COST_LOSSES[rule]
    a = default_weight if weight is None else weight
    b = default_exponent if exponent is None else exponent
    if rule == "fbnet":
        assert b is not None
        return ce * a * torch.log(expected) ** b
    assert target is not None, "validate() requires a target for this rule"
    if rule == "proxyless-mul":
        assert b is not None
        return a * ce * (torch.log(expected) / math.log(target)) ** b
    if rule == "proxyless-add":
        return ce + a * (expected - target) / target
    return ce + a * (expected / target - 1).abs()  # tfnas


def parse_cost(text: str) -> tuple[str, str | None]:
    """``latency:PATH`` -> ("latency", PATH); ``macs`` / ``params`` -> (kind, None); else one line."""
    kind, _, path = text.partition(":")
    if kind not in COST_KINDS or (kind == "latency") != bool(path):
        raise SettingError(f"{{cost}} {text!r} is not a cost", "use latency:LUT.json (from `dmc latency table`), "
                                                                 "macs or params")
    return kind, path or None


def check_cost_settings(cost: str | None, target: float | None, rule: str, weight: float | None,
                        exponent: float | None) -> None:
    """Refuses cost settings that do not fit together, in one line naming them."""
    if cost is None:
        if target is not None or weight is not None or exponent is not None:
            raise SettingError("{cost_target}, {cost_weight} and {cost_exponent} need a cost to search for",
                               "add {cost} latency:LUT.json, macs or params")
        return
    parse_cost(cost)
    if rule not in COST_LOSSES:
        raise SettingError(f"{{cost_loss}} {rule!r} is not a cost rule", f"use one of {', '.join(COST_LOSSES)}")
    if rule == "fbnet" and target is not None:
        raise SettingError("FBNet's cost rule has no target", "drop {cost_target}, or pick another {cost_loss}")
    if rule != "fbnet" and (target is None or not target > (1 if rule == "proxyless-mul" else 0)):
        low = "above 1 (its logarithm divides)" if rule == "proxyless-mul" else "above 0"
        raise SettingError(f"{rule} needs a target cost {low}", "pass {cost_target} T, in the cost's unit")
    if COST_LOSSES[rule][1] is None and exponent is not None:
        raise SettingError(f"{rule} has no exponent", "drop {cost_exponent}")
    if weight is not None and not weight > 0:
        raise SettingError("{cost_weight} must be > 0")
