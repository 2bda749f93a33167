"""Derivation in chain spaces: every layer keeps its strongest candidate ('skip' included), ties go to the lower
index, padding is ignored, and the genotype carries the space's name, hash and searched skeleton."""

import pytest
import torch

from dmc.derive import derive
from dmc.errors import InvalidInputError
from dmc.families.chain.genotype import ChainGenotype
from dmc.space import load_space


def test_argmax_per_layer_with_skip_and_padding():
    space = load_space("proxyless_s5").with_macro(width=0.25)
    alpha = torch.zeros(19, 7)
    expected = []
    for row, ops in enumerate(space.layer_candidates):
        k = (row * 3) % len(ops)  # every candidate, 'skip' (index 6) on some shape-keeping layers
        alpha[row, k] = 1.0
        expected.append(ops[k])
    alpha[0, 6] = 100.0  # padding of a first-of-stage row (6 candidates): never chosen
    genotype = derive({"layers": alpha}, space)
    assert isinstance(genotype, ChainGenotype) and genotype.layers == tuple(expected)
    assert "skip" in genotype.layers and genotype.layers[0] == "mbconv_k3_e3"
    assert genotype.space == "proxyless_s5" and genotype.space_hash == space.content_hash
    assert genotype.macro == space.macro and genotype.macro.width == 0.25  # the searched skeleton
    assert genotype.depth() == 19 - sum(op == "skip" for op in expected)


def test_ties_go_to_the_lower_index():
    space = load_space("fbnet_s5")
    alpha = torch.zeros(22, 9)
    alpha[5, [2, 7]] = 0.5  # a tie between mbconv_k3_e3 and mbconv_k5_e6
    alpha[6, [8, 3]] = 0.5  # skip ties with mbconv_k3_e6: the op listed first wins
    genotype = derive({"layers": alpha}, space)
    assert genotype.layers[5] == "mbconv_k3_e3" and genotype.layers[6] == "mbconv_k3_e6"
    assert all(op == "mbconv_k3_e1" for i, op in enumerate(genotype.layers) if i not in (5, 6))


def test_skip_wins_where_it_is_strongest():
    space = load_space("fbnet_s5")
    alpha = torch.zeros(22, 9)
    alpha[:, 8] = 1.0
    genotype = derive({"layers": alpha}, space)
    assert genotype.layers == ("skip",) * 22 and genotype.depth() == 6


def test_wrong_alphas_are_refused():
    space = load_space("proxyless_s5")
    with pytest.raises(InvalidInputError, match="no architecture weights for the layers"):
        derive({"normal": torch.zeros(14, 8)}, space)
    with pytest.raises(InvalidInputError, match=r"shape \(18, 7\), but space 'proxyless_s5' has 19 layers"):
        derive({"layers": torch.zeros(18, 7)}, space)
    with pytest.raises(InvalidInputError, match="up to 7 candidates"):
        derive({"layers": torch.zeros(19, 6)}, space)
