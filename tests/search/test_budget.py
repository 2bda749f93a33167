"""The budgeted derivation: the most probable network whose cost lies in a range, against enumerating every one."""

import itertools
import math
import random

import pytest

from dmc.errors import SettingError
from dmc.search.budget import most_probable_within


def _brute_force(weights, costs, fixed, low, high):
    best, best_score = None, -math.inf
    for choice in itertools.product(*(range(len(row)) for row in weights)):
        cost = fixed + sum(costs[row][k] for row, k in enumerate(choice))
        score = sum(math.log(weights[row][k]) for row, k in enumerate(choice))
        if low <= cost <= high and score > best_score:
            best, best_score = list(choice), score
    return best, best_score


@pytest.mark.parametrize("seed", range(20))
def test_it_finds_the_most_probable_network_in_the_range(seed):
    rng = random.Random(seed)
    rows = [rng.randint(2, 4) for _ in range(5)]
    weights = []
    for n in rows:
        raw = [rng.random() + 0.01 for _ in range(n)]
        weights.append([w / sum(raw) for w in raw])
    costs = [[round(rng.uniform(0, 1), 3) if k else 0.0 for k in range(n)] for n in rows]  # candidate 0: a skip
    fixed = 0.3
    lowest, highest = fixed + sum(map(min, costs)), fixed + sum(map(max, costs))
    high = rng.uniform(lowest + 0.2 * (highest - lowest), highest)
    low = 0.9 * high
    expected, expected_score = _brute_force(weights, costs, fixed, low, high)
    if expected is None:
        with pytest.raises(SettingError):
            most_probable_within(weights, costs, fixed, low, high)
        return
    chosen = most_probable_within(weights, costs, fixed, low, high, bins=100_000)
    cost = fixed + sum(costs[row][k] for row, k in enumerate(chosen))
    score = sum(math.log(weights[row][k]) for row, k in enumerate(chosen))
    assert low - 1e-4 <= cost <= high + 1e-4
    assert score == pytest.approx(expected_score, abs=1e-9)  # ties may pick another network of the same score


def test_the_strongest_candidates_are_kept_when_they_fit():
    weights = [[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]]
    costs = [[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]]
    assert most_probable_within(weights, costs, 0.5, 0.0, 2.0) == [1, 0]
    assert most_probable_within(weights, costs, 0.5, 3.0, 3.5) == [1, 2]  # the cheapest way to reach 3.0


def test_a_range_no_network_reaches_is_refused_naming_the_span():
    with pytest.raises(SettingError, match=r"no network of the space costs from 9 to 10: they span 0.5 to 4.5"):
        most_probable_within([[0.5, 0.5], [0.5, 0.5]], [[0.0, 2.0], [0.0, 2.0]], 0.5, 9.0, 10.0)
