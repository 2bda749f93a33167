"""One builder for search and deploy: a spec's own wiring (reduction positions, node inputs, stem
multiplier) searches, derives and compiles to a network whose cells sit where the supernet's did."""

import pytest
import torch
import yaml

from dmc.compiler import build_network
from dmc.errors import InvalidInputError
from dmc.families.cell.macro import Macro
from dmc.genotype import genotype_from_dict, load_genotype
from dmc.network.cell import Cell
from dmc.search import SearchConfig, search
from dmc.space import load_space, space_from_dict
from dmc.supernet import build_supernet


def custom_space():
    data = load_space("tiny").to_dict()
    data["name"] = "custom_wiring"
    data["cell"]["node_inputs"] = [[0, 1], [0, 2]]  # node 1 skips the second cell input
    data["macro"].update(layers=5, reductions=[0, 3], stem_multiplier=2)
    return space_from_dict(data)


def layout(network):
    cells = [b for b in network.blocks if isinstance(b, Cell)]
    return ([c.reduction for c in cells], [c.out_channels for c in cells], network.stem[0].out_channels,
            [(f["num_chs"], f["reduction"], f["module"]) for f in network.feature_info])


def test_custom_wiring_searches_derives_and_compiles_as_searched(tmp_path):
    space = custom_space()
    spec = tmp_path / "custom.yaml"
    spec.write_text(yaml.safe_dump(space.to_dict()))
    result = search(SearchConfig(space=str(spec), dataset="digits", epochs=1, batch_size=128, kernels="reference"),
                    tmp_path / "run")
    genotype = load_genotype(tmp_path / "run" / "genotype.json")
    assert genotype == result.genotype and genotype.macro == Macro("darts", 4, 5, "cifar", 2, (0, 3))
    for cell in genotype.cells.values():
        assert sorted(j for _, j in cell.nodes[1]) == [0, 2]  # derived from the custom wiring

    supernet = build_supernet(space, 10)
    network = build_network(genotype, channels=4, layers=5)
    assert layout(network) == layout(supernet)
    assert layout(network)[0] == [True, False, False, True, False]
    assert network(torch.randn(2, 3, 32, 32)).shape == (2, 10)

    # default width and depth are the family's evaluation setting; custom positions fit only their depth
    with pytest.raises(InvalidInputError, match=r"reduction cells at \[0, 3\] of 5 cells"):
        build_network(genotype)
    wide = build_network(genotype, layers=8, reductions=(2, 6))
    assert [b.reduction for b in wide.blocks] == [i in (2, 6) for i in range(8)]
    assert wide.build_args.macro.channels == 36 and wide.stem[0].out_channels == 72


def test_thirds_follow_the_depth_and_the_stem_is_the_searched_one():
    space = load_space("tiny").with_macro(layers=5)
    genotype = build_supernet(space, 10).genotype()
    assert genotype.macro.reductions is None
    network = build_network(genotype)
    assert (network.build_args.macro.channels, network.build_args.macro.layers) == (36, 20)
    assert [i for i, b in enumerate(network.blocks) if b.reduction] == [6, 13]
    imagenet = build_network(genotype, style="imagenet", layers=6)
    assert imagenet.stem1 is not None and imagenet.feature_info[0]["reduction"] == 8


def test_genotype_macro_round_trips_and_is_checked():
    genotype = build_supernet(custom_space(), 10).genotype()
    assert genotype_from_dict(genotype.to_dict()) == genotype
    data = genotype.to_dict()
    data["macro"]["reductions"] = [7]
    with pytest.raises(InvalidInputError, match="macro: reduction positions"):
        genotype_from_dict(data, "g.json")
    data["macro"] = {**genotype.macro.to_dict(), "kind": "nb201", "reductions": None}
    with pytest.raises(InvalidInputError, match="nb201 macro"):
        genotype_from_dict(data, "g.json")
