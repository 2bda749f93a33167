"""FeatureInfo: timm's accessors over the stage outputs of real networks, and the one stage-index check."""

import pytest

from dmc.compiler import build_network
from dmc.errors import InvalidInputError
from dmc.genotype import published_genotypes
from dmc.network.feature_info import FeatureInfo

PUBLISHED = published_genotypes()


@pytest.fixture(scope="module")
def info() -> FeatureInfo:
    return build_network(PUBLISHED["DARTS_V2"], channels=4, layers=5, style="imagenet").feature_info


def test_accessors_read_the_stage_outputs(info):
    assert isinstance(info, FeatureInfo) and len(info) == 4
    assert info.channels() == [info[i]["num_chs"] for i in range(4)] == [4, 16, 32, 64]
    assert info.reduction() == [8, 8, 16, 32]
    assert info.module_name() == ["stem1", "blocks.0", "blocks.2", "blocks.4"]
    assert info.channels(2) == 32 and info.reduction([1, 3]) == [8, 32] and info.module_name(-1) == "blocks.4"


def test_chain_network_stages():
    info = build_network(PUBLISHED["mobilenet_v2"], width=0.25).feature_info
    assert info.reduction() == [2, 4, 8, 16, 32] and info.channels(-1) == 80


@pytest.mark.parametrize("indices, taken", [
    (None, [0, 1, 2, 3]), (2, [2, 3]), (4, [0, 1, 2, 3]), ([1, -1], [1, 3]), ((3, 1, 3), [1, 3]), ([-4], [0])])
def test_take_indices_selects_stages_in_forward_order(info, indices, taken):
    assert info.take_indices(indices) == taken


@pytest.mark.parametrize("indices, message", [
    ([4], r"indices \[4\] are invalid: the network has stages 0..3 \(strides \[8, 8, 16, 32\]\); 4 is out of range"),
    ((1, -5), r"indices \(1, -5\) are invalid: .*; -5 is out of range"),
    ([], r"indices \[\] are invalid: .*; none is given"),
    ([1.0], r"; 1.0 is not a stage index"),
    ([True], r"; True is not a stage index"),
    (0, r"indices=0: the network has 4 stages"),
    (5, r"indices=5: the network has 4 stages"),
    (True, r"indices=True: expected a number of stages or a list of stage indices"),
    ("1,2", r"indices='1,2': expected a number of stages"),
    (1.5, r"indices=1.5: expected a number of stages")])
def test_take_indices_refuses_in_one_line(info, indices, message):
    with pytest.raises(InvalidInputError, match=message) as caught:
        info.take_indices(indices)
    assert "\n" not in caught.value.message


def test_take_indices_names_the_argument(info):
    with pytest.raises(InvalidInputError, match=r"^out_indices \(1, 7\) are invalid") as caught:
        info.take_indices((1, 7), "out_indices")
    assert "negative ones count from the end" in caught.value.hint
