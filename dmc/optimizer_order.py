"""Optimizer states in checkpoints, matched to parameters by name across a change of module order.

A network registers its modules in forward order (stem, blocks, head, classifier), as timm and torchvision do;
checkpoints of dmc versions before that held their optimizer states in the order the network registered its
parameters then: the blocks first. PyTorch matches an optimizer state to parameters by position, so those states
are renumbered when they are loaded (momentum buffers would otherwise land on the wrong parameters).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

PARAMETER_ORDER = "forward"
"""Written next to an optimizer state: the order of its parameters. Checkpoints without it have the legacy order."""


def legacy_order(names: list[str]) -> list[str]:
    """``names`` (a network's parameters, in forward order) in the order dmc registered them before: the blocks
    first, the rest as they are."""
    return sorted(names, key=lambda name: not name.startswith("blocks."))


def optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The state to save: the optimizer's, with its parameter order."""
    return {**optimizer.state_dict(), "parameter_order": PARAMETER_ORDER}


def load_optimizer_state(optimizer: torch.optim.Optimizer, model: nn.Module, state: dict[str, Any]) -> None:
    """Loads ``state`` (saved by :func:`optimizer_state`, or by an older dmc in the legacy order) into
    ``optimizer``, whose parameters are ``model``'s."""
    state = dict(state)
    if state.pop("parameter_order", None) != PARAMETER_ORDER:
        names = {id(p): name for name, p in model.named_parameters()}
        groups = []
        for saved, group in zip(state["param_groups"], optimizer.param_groups):
            current = [names[id(p)] for p in group["params"]]
            then = {name: i for i, name in enumerate(legacy_order(current))}
            saved_params = saved["params"]
            if len(saved_params) != len(current):  # the optimizer refuses it, naming the mismatch
                groups.append(saved)
                continue
            groups.append({**saved, "params": [saved_params[then[name]] for name in current]})
        state["param_groups"] = groups + state["param_groups"][len(groups):]
    optimizer.load_state_dict(state)
