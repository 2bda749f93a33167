"""Derivation on hand-made architecture weights."""

import math

import pytest
import torch

from dmc.derive import derive
from dmc.errors import InvalidInputError
from dmc.space import load_space

S0_OPS = ["none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
          "dil_conv_5x5"]


def _logits(rows):
    """rows: per edge, {op index: logit}; other entries 0."""
    width = max(max(r, default=0) for r in rows) + 1
    alpha = torch.zeros(len(rows), max(width, 8))
    for e, row in enumerate(rows):
        for k, v in row.items():
            alpha[e, k] = v
    return alpha


def test_darts_rule_keeps_top2_edges_and_ignores_none():
    space = load_space("darts_s0")
    rows = [{} for _ in range(14)]
    rows[0] = {0: 9.0, 4: 1.0}      # node 2 <- 0: 'none' dominates, but sep_conv_3x3 is its best real op
    rows[1] = {5: 3.0}              # node 2 <- 1: sep_conv_5x5, strongest
    rows[2] = {3: 2.0}              # node 3 <- 0
    rows[3] = {6: 2.5}              # node 3 <- 1
    rows[4] = {7: 0.5}              # node 3 <- 2 (weaker)
    for e in range(5, 14):
        rows[e] = {1: 0.1 * e}      # later nodes: max_pool, growing with the edge index
    g = derive({"normal": _logits(rows), "reduce": _logits(rows)}, space)
    assert g.normal.nodes[0] == (("sep_conv_5x5", 1), ("sep_conv_3x3", 0))
    assert g.normal.nodes[1] == (("dil_conv_3x3", 1), ("skip_connect", 0))
    assert g.normal.nodes[2] == (("max_pool_3x3", 3), ("max_pool_3x3", 2))
    assert g.normal.nodes[3] == (("max_pool_3x3", 4), ("max_pool_3x3", 3))
    assert g.space == "darts_s0" and g.space_hash == space.content_hash and g.normal.concat == (2, 3, 4, 5)


def test_none_never_wins_even_when_it_dominates_every_edge():
    space = load_space("rdarts_s3")  # none, skip_connect, sep_conv_3x3
    alpha = torch.tensor([[5.0, 0.0, 0.1]] * 14)
    g = derive({"normal": alpha, "reduce": alpha}, space)
    assert all(op == "sep_conv_3x3" for op, _ in g.normal.edges)
    assert [j for _, j in g.normal.edges] == [0, 1, 0, 1, 0, 1, 0, 1]  # ties keep the lower inputs


def test_per_edge_candidate_lists_of_s1():
    space = load_space("rdarts_s1")
    alpha = torch.zeros(14, 2)
    alpha[:, 1] = 1.0  # every edge prefers its second candidate
    alpha[13] = torch.tensor([3.0, 0.0])
    g = derive({"normal": alpha, "reduce": alpha}, space)
    normal = space.normal.edges
    edge_of = {(n, j): e for e, (n, j) in enumerate(space.edges)}
    for n, node in enumerate(g.normal.nodes):
        for op, j in node:
            e = edge_of[(n, j)]
            assert op == normal[e][0 if e == 13 else 1]
    assert ("dil_conv_3x3", 4) in g.normal.nodes[3]


def test_nb201_keeps_every_edge_and_none_can_win():
    space = load_space("nb201")
    alpha = torch.zeros(6, 5)
    alpha[0, 3] = 1.0   # nor_conv_3x3
    alpha[1, 0] = 1.0   # none
    alpha[2, 2] = 1.0
    alpha[3:, 1] = 1.0
    g = derive({"normal": alpha}, space)
    assert g.kind == "nb201" and g.reduce is None
    assert g.to_nb201_string() == ("|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|"
                                   "+|skip_connect~0|skip_connect~1|skip_connect~2|")


def test_padding_beyond_an_edges_candidates_is_ignored():
    space = load_space("rdarts_s2")
    alpha = torch.zeros(14, 5)
    alpha[:, 2:] = math.inf  # padding: never read
    alpha[:, 1] = 1.0
    g = derive({"normal": alpha, "reduce": alpha}, space)
    assert {op for op, _ in g.normal.edges} == {"sep_conv_3x3"}


def test_wrong_shapes_are_refused():
    with pytest.raises(InvalidInputError, match="has 14 edges"):
        derive({"normal": torch.zeros(6, 8), "reduce": torch.zeros(14, 8)}, load_space("darts_s0"))
