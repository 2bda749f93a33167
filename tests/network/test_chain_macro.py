"""ChainMacro: torchvision's width rounding, the layer layout of the ProxylessNAS/FairNAS skeleton, round trips and
one-line errors naming the field."""

import copy

import pytest
from torchvision.models._utils import _make_divisible

from dmc.errors import InvalidInputError
from dmc.families.chain.macro import ChainMacro, LayerSlot, Stage, make_divisible
from dmc.space import load_space

# The ProxylessNAS/FairNAS skeleton (xiaomi-automl/FairNAS models/FairNAS_A.py): stem 32, separable block to 16,
# then (channels, layers, first stride) per stage.
PROXYLESS_STAGES = [(32, 2, 2), (40, 4, 2), (80, 4, 2), (96, 4, 1), (192, 4, 2), (320, 1, 1)]


@pytest.mark.parametrize("divisor", [8, 4, 16])
def test_make_divisible_matches_torchvision(divisor):
    values = [c * w for c in (3, 8, 16, 20, 24, 32, 40, 80, 96, 112, 160, 184, 192, 320, 352, 1280, 1984)
              for w in (0.1, 0.2, 0.25, 0.35, 0.5, 0.75, 0.9, 1.0, 1.3, 1.4, 2.0)]
    values += [x / 7 for x in range(1, 700)]
    for v in values:
        assert make_divisible(v, divisor) == _make_divisible(v, divisor), v


def expected_slots(widths_in, stages):
    slots, c_in = [], widths_in
    for s, (c, n, stride) in enumerate(stages):
        for i in range(n):
            slots.append(LayerSlot(len(slots), c_in, c, stride if i == 0 else 1, s))
            c_in = c
    return tuple(slots)


def test_layer_slots_of_the_proxyless_skeleton_at_full_width():
    macro = load_space("proxyless_s5").macro
    assert (macro.stem_width, macro.first_block_width, macro.head_width) == (32, 16, 1280)
    slots = macro.layer_slots()
    assert slots == expected_slots(16, PROXYLESS_STAGES)
    assert len(slots) == macro.num_layers == 19
    assert [s.index for s in slots if not s.keeps_shape] == [0, 2, 6, 10, 14, 18]


def test_layer_slots_at_width_025_round_as_torchvision_does():
    macro = load_space("proxyless_s5").macro.replace(width=0.25)
    assert (macro.stem_width, macro.first_block_width, macro.head_width) == (8, 8, 1280)  # the head never shrinks
    scaled = [(_make_divisible(c * 0.25, 8), n, s) for c, n, s in PROXYLESS_STAGES]
    assert [c for c, _, _ in scaled] == [8, 16, 24, 24, 48, 80]
    assert macro.layer_slots() == expected_slots(8, scaled)
    # 80 and 96 channels both round to 24: stage 3's first layer keeps the shape at this width
    assert macro.layer_slots()[10].keeps_shape
    assert load_space("proxyless_s5").macro.replace(width=1.5).head_width == _make_divisible(1280 * 1.5, 8)


def test_to_dict_from_dict_round_trip():
    for macro in (load_space("proxyless_s5").macro, load_space("fbnet_s5").macro.replace(width=0.5),
                  ChainMacro((Stage(8, 1, 2),), stem_channels=8, stem_stride=1, first_block=None, head_channels=None,
                             dropout=0.0, activation="swish", fixed_activation="relu")):
        data = macro.to_dict()
        again = ChainMacro.from_dict(copy.deepcopy(data))
        assert again == macro and again.to_dict() == data


def test_replace_changes_only_width_activation_and_dropout():
    macro = load_space("proxyless_s5").macro
    assert macro.replace(width=None) == macro
    assert macro.replace(activation="swish").activation == "swish"
    with pytest.raises(InvalidInputError, match="stem_channels is not a setting"):
        macro.replace(stem_channels=16)


GOOD = {"kind": "chain", "activation": "relu6", "stem": {"channels": 32, "stride": 2},
        "first_block": {"channels": 16}, "stages": [{"channels": 24, "layers": 2, "stride": 2}],
        "head": {"channels": 1280, "dropout": 0.2}, "width": 1.0}


def mutated(path, value):
    data = copy.deepcopy(GOOD)
    *parents, last = path
    target = data
    for key in parents:
        target = target[key]
    target[last] = value
    return data


@pytest.mark.parametrize("path,value,message", [
    (("stages", 0, "stride"), 3, "macro: stages[0].stride must be 1 or 2, got 3"),
    (("stages", 0, "stride"), 2.0, "macro: stages[0].stride must be 1 or 2, got 2.0"),
    (("stem", "stride"), True, "macro: stem.stride must be 1 or 2, got True"),
    (("stages", 0, "channels"), 0, "macro: stages[0].channels must be an integer in 1..1024, got 0"),
    (("stages", 0, "depth"), 1, "macro: stages[0].depth: unknown field"),
    (("colour",), "red", "macro: colour: unknown field"),
    (("width",), 0, "macro: width must be a number in (0.0, 8.0], got 0"),
    (("activation",), "gelu", "macro: activation 'gelu' is unknown"),
    (("fixed_activation",), "tanh", "macro: fixed_activation 'tanh' is unknown"),
    (("head", "dropout"), 1.0, "macro: head.dropout must be a number in [0.0, 1.0)"),
    (("stages",), [], "macro: a chain network needs at least one stage"),
    (("stem",), 32, "macro: stem: expected a mapping, got int"),
    (("kind",), "darts", "macro: kind: 'darts' is not a chain network"),
])
def test_bad_fields_give_one_line_naming_the_field(path, value, message):
    with pytest.raises(InvalidInputError) as info:
        ChainMacro.from_dict(mutated(path, value))
    assert info.value.message.startswith(message) and "\n" not in str(info.value)


def test_a_macro_that_is_not_a_mapping_is_named_once():
    with pytest.raises(InvalidInputError, match="^macro: expected a mapping, got list$"):
        ChainMacro.from_dict([1])
