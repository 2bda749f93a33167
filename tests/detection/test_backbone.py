"""DmcBackbone: outputs match feature_info for every published genotype; arguments are validated early."""

import pytest
import torch

from dmc.compiler import build_network, save_network
from dmc.detection.backbone import DmcBackbone
from dmc.errors import InvalidInputError
from dmc.genotype import published_genotypes

PUBLISHED = published_genotypes()
CELL = sorted(name for name, g in PUBLISHED.items() if g.kind != "chain")  # chain backbones: test_chain_backbone.py


@pytest.mark.parametrize("name", CELL)
def test_backbone_outputs_match_feature_info(name):
    backbone = DmcBackbone(genotype=name, channels=4, layers=3, out_indices=(1, 2, 3)).eval()
    with torch.no_grad():
        outs = backbone(torch.randn(1, 3, 64, 64))
    assert isinstance(outs, tuple) and len(outs) == 3
    assert [o.shape[1] for o in outs] == backbone.out_channels
    assert [64 // o.shape[-1] for o in outs] == backbone.strides == [8, 16, 32]


def test_registered_in_mmdet_and_built_from_a_dict():
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope("mmdet"):  # a Runner built by an earlier test leaves its own scope
        backbone = MODELS.build(dict(type="DmcBackbone", genotype=PUBLISHED["DARTS_V2"].to_dict(), channels=4,
                                     layers=3, out_indices=(2, 3)))
    assert backbone.strides == [16, 32]


def test_checkpoint_weights_are_loaded_as_pretraining(tmp_path):
    network = build_network(PUBLISHED["DARTS_V2"], channels=4, layers=3, num_classes=5)
    path = save_network(network, tmp_path / "net.pt")
    backbone = DmcBackbone(checkpoint=str(path))
    assert "tensors loaded from" in backbone.weights_note
    cell = backbone.network.blocks[2].edges[0]  # a cell op whose shape does not depend on the stem
    source = network.blocks[2].edges[0]
    for a, b in zip(cell.parameters(), source.parameters()):
        assert torch.equal(a, b)


def test_frozen_stages_and_norm_eval():
    backbone = DmcBackbone(genotype="DARTS_V2", channels=4, layers=3, frozen_stages=1, norm_eval=True)
    backbone.train()
    assert not any(p.requires_grad for p in backbone.network.stem.parameters())
    assert not any(p.requires_grad for p in backbone.network.blocks[0].parameters())
    assert all(p.requires_grad for p in backbone.network.blocks[2].parameters())
    assert all(not m.training for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_invalid_arguments_get_clear_errors(tmp_path):
    with pytest.raises(InvalidInputError, match=r"out_indices \(1, 7\) are invalid: the network has stages 0..3"):
        DmcBackbone(genotype="DARTS_V2", channels=4, layers=3, out_indices=(1, 7))
    with pytest.raises(InvalidInputError, match="frozen_stages 9"):
        DmcBackbone(genotype="DARTS_V2", channels=4, layers=3, frozen_stages=9)
    path = save_network(build_network(PUBLISHED["DARTS_V2"], channels=4, layers=3), tmp_path / "net.pt")
    with pytest.raises(InvalidInputError, match="does not match the one in"):
        DmcBackbone(genotype="cifar10_s0_0", checkpoint=str(path))
    with pytest.raises(InvalidInputError, match="needs a genotype or a checkpoint"):
        DmcBackbone()
    with pytest.raises(InvalidInputError, match="DARTS-family"):
        DmcBackbone(genotype=_nb201(tmp_path))


def _nb201(tmp_path):
    path = tmp_path / "nb.txt"
    path.write_text("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|none~2|")
    return str(path)
