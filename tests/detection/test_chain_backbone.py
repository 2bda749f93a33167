"""Chain networks as RetinaNet backbones: C3-C5 as torchvision's MobileNetV2 defines them, pretrained weights from
network files, width instead of channels/layers, the FPN config from feature_info, and a short training run."""

import json
import re

import pytest
import torch
import torchvision
from mmengine.config import Config

from dmc.compiler import build_network, save_network
from dmc.detection.backbone import DmcBackbone
from dmc.detection.config import DetectionConfig, retinanet_config
from dmc.errors import InvalidInputError
from dmc.genotype import published_genotypes

PUBLISHED = published_genotypes()
CHAINS = sorted(name for name, g in PUBLISHED.items() if g.kind == "chain")


@pytest.mark.parametrize("name", CHAINS)
def test_chain_backbones_return_c3_to_c5(name):
    backbone = DmcBackbone(genotype=name, width=0.25).eval()
    with torch.no_grad():
        outs = backbone(torch.randn(1, 3, 64, 64))
    assert backbone.out_indices == (2, 3, 4) and backbone.strides == [8, 16, 32]
    assert [o.shape[1] for o in outs] == backbone.out_channels
    assert [64 // o.shape[-1] for o in outs] == [8, 16, 32]
    assert not any(name.startswith(("network.head_act.", "network.classifier.")) for name in backbone.state_dict())


@pytest.mark.parametrize("width", [0.5, 0.25])  # at 0.25 the first block keeps its width (8): a residual block
def test_a_mobilenet_v2_network_file_pretrains_the_backbone_and_gives_torchvisions_c3_to_c5(
        width, tmp_path, calibrate_bn, load_torchvision_weights):
    reference = calibrate_bn(torchvision.models.mobilenet_v2(width_mult=width), 96)
    network = load_torchvision_weights(build_network(PUBLISHED["mobilenet_v2"], width=width), reference)
    path = save_network(network, tmp_path / "mv2.pt")
    backbone = DmcBackbone(checkpoint=str(path)).eval()
    loaded, _, total = backbone.weights_note.split()[:3]
    assert loaded == total and "backbone tensors loaded from" in backbone.weights_note
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        outs = backbone(x)
        expected = [reference.features[:end](x) for end in (7, 14, 18)]  # after the last layer at stride 8, 16, 32
    assert backbone.out_channels == [int(c * width) for c in (32, 96, 320)]
    for out, ref in zip(outs, expected):
        assert out.shape == ref.shape and ref.std() > 0.1
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-4)


def test_chain_backbones_from_dicts_and_genotype_files(tmp_path):
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope("mmdet"):  # a Runner built by an earlier test leaves its own scope
        backbone = MODELS.build(dict(type="DmcBackbone", genotype=PUBLISHED["FairNAS_B"].to_dict(), width=0.25,
                                     out_indices=(3, 4)))
    assert backbone.strides == [16, 32]
    path = PUBLISHED["NoisyDARTS_A"].save(tmp_path / "noisy.json")
    backbone = DmcBackbone(genotype=str(path), width=0.5, frozen_stages=2, norm_eval=True).train()
    net = backbone.network
    frozen = [net.stem, net.stem1, *net.blocks[:net.feature_info[2]["block"] + 1]]
    assert not any(p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in net.blocks[-1].parameters())


def test_chain_backbones_refuse_cell_settings_and_other_widths(tmp_path):
    with pytest.raises(InvalidInputError, match=r"chain backbone: channels is not a setting of chain networks .*"
                                                r"sized by width"):
        DmcBackbone(genotype="FairNAS_A", channels=16, layers=8)
    with pytest.raises(InvalidInputError, match="width is not a setting of darts networks .* sized by channels and "
                                                "layers"):
        DmcBackbone(genotype="DARTS_V2", width=0.5)
    path = save_network(build_network(PUBLISHED["FairNAS_A"], width=0.25), tmp_path / "a.pt")
    with pytest.raises(InvalidInputError, match="width 0.25: its weights do not fit width 0.5"):
        DmcBackbone(checkpoint=str(path), width=0.5)
    with pytest.raises(InvalidInputError, match="does not match the one in"):
        DmcBackbone(genotype="FairNAS_B", checkpoint=str(path))
    assert DmcBackbone(checkpoint=str(path), width=0.25).out_channels == [16, 24, 80]


def test_config_of_a_chain_network_file_feeds_c3_to_c5_to_retinanets_fpn(tmp_path):
    network = build_network(PUBLISHED["FairNAS_C"], width=0.5)
    path = save_network(network, tmp_path / "c.pt")
    config = retinanet_config(path, DetectionConfig())
    backbone, neck = config["model"]["backbone"], config["model"]["neck"]
    assert backbone == {"type": "DmcBackbone", "checkpoint": str(path.resolve()), "width": 0.5,
                        "out_indices": (2, 3, 4), "frozen_stages": -1, "norm_eval": False}
    assert neck["in_channels"] == [network.feature_info[i]["num_chs"] for i in (2, 3, 4)] == [24, 48, 160]
    assert (neck["start_level"], neck["add_extra_convs"], neck["num_outs"]) == (0, "on_input", 5)
    assert config["model"]["bbox_head"]["anchor_generator"]["strides"] == [8, 16, 32, 64, 128]
    cell = retinanet_config("DARTS_V2", DetectionConfig(channels=4, layers=3))["model"]
    assert cell["backbone"]["out_indices"] == (1, 2, 3) and cell["neck"]["in_channels"] == [16, 32, 64]
    with pytest.raises(InvalidInputError, match="width 0 must be a number > 0"):
        retinanet_config("FairNAS_A", DetectionConfig(width=0))


def test_cli_config_refuses_cell_options_for_chain_backbones(cli, tmp_path):
    result = cli("detect", "config", "FairNAS_A", "--channels", "4", "-o", str(tmp_path / "c.py"))
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "--width" in result.stderr
    assert not (tmp_path / "c.py").exists()


def test_a_chain_backbone_trains_on_the_detection_demo(cli, tmp_path):
    data, work, out = tmp_path / "digits-coco", tmp_path / "work", tmp_path / "retinanet_chain.py"
    made = cli("data", "detection-demo", str(data), "--train-images", "4", "--val-images", "2", "--size", "64")
    assert made.exit_code == 0, made.output
    result = cli("detect", "config", "mobilenet_v2", "--width", "0.25", "-o", str(out), "--data-root", str(data),
                 "--train-ann", "annotations/instances_train.json", "--val-ann", "annotations/instances_val.json",
                 "--train-img", "train/", "--val-img", "val/", "--image-scale", "64,64", "--epochs", "6",
                 "--milestones", "6", "--batch-size", "4", "--warmup-iters", "1", "--neck-channels", "16",
                 "--head-convs", "1", "--num-workers", "0", "--no-flip", "--work-dir", str(work))
    assert result.exit_code == 0, result.output
    config = Config.fromfile(str(out))
    assert config.model.backbone.width == 0.25 and config.model.neck.in_channels == [8, 24, 80]
    # the test's own settings: a loss every iteration, a fixed seed, boxes from a barely trained detector, one
    # evaluation and one checkpoint at the end
    config.default_hooks.logger.interval = 1
    config.randomness = dict(seed=0)
    config.model.test_cfg.score_thr = 0.0
    config.train_cfg.val_interval = config.default_hooks.checkpoint.interval = 6
    config.dump(str(out))

    trained = cli("detect", "train", str(out))
    assert trained.exit_code == 0, trained.output
    assert re.search(rf"done: last checkpoint {re.escape(str(work / 'epoch_6.pth'))}; val bbox mAP \d\.\d{{4}} \(the "
                     r"last validation\)", trained.stdout), trained.stdout
    records = [json.loads(line) for line in next(work.glob("*/vis_data/scalars.json")).read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 6  # 4 images in one batch, 6 epochs
    assert losses[-1] < losses[1] - 0.02, losses  # from the first step at the full lr on
    metrics = [r for r in records if "coco/bbox_mAP" in r]
    assert len(metrics) == 1 and 0.0 <= metrics[0]["coco/bbox_mAP_50"] <= 1.0
    assert (work / "epoch_6.pth").is_file()
