"""Deriving within a cost budget: the most probable chain network whose cost lies in a range (issue 32).

Taking each layer's strongest candidate (:meth:`dmc.families.Family.derive`) ignores the cost the search was steering:
a short cost-aware search leaves flat distributions, the zero-cost skip a little ahead in every layer, and the
strongest candidates then make a network far cheaper than the supernet's expected cost (measured: 1.8 ms derived
where the expected cost had reached its 3.2 ms target). :func:`most_probable_within` instead takes, among the
networks whose cost lies in ``[low, high]``, the one of the largest probability under the architecture weights,
``prod over layers softmax(alpha_layer)[choice]``, by dynamic programming over the cost, in steps of ``high / bins``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from dmc.errors import SettingError

BINS = 20_000
"""Cost steps up to ``high``: each layer's cost is rounded to ``high / BINS``, so a 19-layer network's total is off
by at most 19 half-steps (0.05% of ``high``) in the search; the totals near the range's edges are decided by the
exact cost of their best network."""


def most_probable_within(weights: Sequence[Sequence[float]], costs: Sequence[Sequence[float]], fixed: float,
                         low: float, high: float, bins: int = BINS) -> list[int]:
    """The candidate index of every row (layer) maximising ``sum log weights[row][k]`` subject to
    ``low <= fixed + sum costs[row][k] <= high``; refused in one line when no network costs that (naming the range
    the networks span)."""
    if not 0 <= low <= high or high <= 0:
        raise SettingError(f"the cost range [{low:g}, {high:g}] is empty", "give a positive target")
    step = high / bins
    logs = [np.log(np.clip(np.asarray(row, dtype=np.float64), 1e-300, None)) for row in weights]
    steps = [np.rint(np.asarray(row, dtype=np.float64) / step).astype(np.int64) for row in costs]
    size = int(sum(int(s.max()) for s in steps)) + 1
    best = np.full(size, -np.inf)
    best[0] = 0.0
    choices = []
    for log, row_steps in zip(logs, steps):
        after = np.full(size, -np.inf)
        choice = np.zeros(size, dtype=np.int16)
        for k, (value, shift) in enumerate(zip(log, row_steps)):
            candidate = np.full(size, -np.inf)
            candidate[shift:] = best[:size - shift] + value
            better = candidate > after
            after[better], choice[better] = candidate[better], k
        best = after
        choices.append(choice)
    slack = len(steps)  # each row's rounding moves a total by at most half a step
    first = max(0, math.ceil((low - fixed) / step) - slack)
    last = min(size - 1, math.floor((high - fixed) / step) + slack)
    window = np.arange(first, last + 1) if first <= last else np.arange(0)
    for total in window[np.argsort(-best[window], kind="stable")]:  # best first; exact costs decide the edges
        if not np.isfinite(best[total]):
            break
        chosen = _back_track(int(total), steps, choices)
        cost = fixed + sum(row[k] for row, k in zip(costs, chosen))
        if low <= cost <= high:
            return chosen
    cheapest, dearest = fixed + sum(min(row) for row in costs), fixed + sum(max(row) for row in costs)
    raise SettingError(f"no network of the space costs from {low:.4g} to {high:.4g}: they span {cheapest:.4g} "
                       f"to {dearest:.4g}", "choose a target in that span")


def _back_track(total: int, steps: list[np.ndarray], choices: list[np.ndarray]) -> list[int]:
    """The choice of every row that reached ``total`` steps with the best score."""
    chosen = []
    for row_steps, choice in zip(reversed(steps), reversed(choices)):
        k = int(choice[total])
        chosen.append(k)
        total -= int(row_steps[k])
    return chosen[::-1]
