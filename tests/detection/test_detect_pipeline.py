"""The generated RetinaNet config on the demo set: builds, trains two iterations, evaluates, resumes; CLI."""

import json

import pytest
from mmengine.config import Config

from dmc.data.detection_demo import write_detection_demo
from dmc.detection.runner import build_runner, evaluate
from dmc.errors import InvalidInputError


def test_demo_set_is_coco_format(demo):
    train = json.loads((demo / "annotations" / "instances_train.json").read_text())
    assert len(train["images"]) == 8 and len(train["categories"]) == 10
    assert all((demo / "train" / image["file_name"]).is_file() for image in train["images"])
    for ann in train["annotations"]:
        x, y, w, h = ann["bbox"]
        assert 0 <= x and 0 <= y and x + w <= 64 and y + h <= 64 and 1 <= ann["category_id"] <= 10
    with pytest.raises(InvalidInputError, match="already holds a dataset"):
        write_detection_demo(demo)


def test_config_is_flat_and_derived_from_feature_info(detector_config, tmp_path):
    path = detector_config(tmp_path)
    text = path.read_text()
    assert "_base_ =" not in text and "_base_=" not in text
    config = Config.fromfile(str(path))
    assert config.model.backbone.type == "DmcBackbone"
    assert config.model.neck.in_channels == [16, 32, 64]  # DARTS_V2 at 4 channels: 4 * 4, 8 * 4, 16 * 4
    assert config.model.bbox_head.anchor_generator.strides == [8, 16, 32, 64, 128]
    assert config.model.bbox_head.num_classes == 10
    assert config.custom_imports.imports == ["dmc.detection.backbone"]
    assert config.optim_wrapper.clip_grad.max_norm == 35.0
    assert config.param_scheduler[1].milestones == [1]


def test_two_iterations_validation_and_resume(detector_config, tmp_path):
    path = detector_config(tmp_path, epochs=1)
    runner = build_runner(path)
    runner.train()
    assert runner.iter == 2
    checkpoint = tmp_path / "work" / "epoch_1.pth"
    assert checkpoint.is_file()
    metrics = evaluate(path, checkpoint)
    assert {"coco/bbox_mAP", "coco/bbox_mAP_50"} <= set(metrics)
    assert 0.0 <= metrics["coco/bbox_mAP_50"] <= 1.0
    config = Config.fromfile(str(path))
    config.train_cfg.max_epochs = 2
    resumed = build_runner(config, resume=True)
    resumed.train()
    assert resumed.epoch == 2 and resumed.iter == 4


def test_cli_config_train_and_errors(cli, demo, tmp_path):
    out = tmp_path / "cfg.py"
    result = cli("detect", "config", "DARTS_V2", "-o", str(out), "--data-root", str(demo),
                 "--train-ann", "annotations/instances_train.json", "--val-ann", "annotations/instances_val.json",
                 "--train-img", "train/", "--val-img", "val/", "--channels", "4", "--layers", "3",
                 "--image-scale", "64,64", "--epochs", "1", "--batch-size", "4", "--warmup-iters", "2",
                 "--neck-channels", "16", "--head-convs", "1", "--num-workers", "0", "--no-flip",
                 "--work-dir", str(tmp_path / "w"))
    assert result.exit_code == 0, result.output
    flips = [step for step in Config.fromfile(str(out)).train_dataloader.dataset.pipeline
             if step["type"] == "RandomFlip"]
    assert flips[0]["prob"] == 0.0
    trained = cli("detect", "train", str(out))
    assert trained.exit_code == 0, trained.output
    assert (tmp_path / "w" / "epoch_1.pth").is_file()
    assert f"done: last checkpoint {tmp_path / 'w' / 'epoch_1.pth'}; val bbox mAP" in trained.stdout
    missing = cli("detect", "train", str(tmp_path / "nope.py"))
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    bad = cli("detect", "test", str(out), str(tmp_path / "nope.pth"))
    assert bad.exit_code == 2 and "does not exist" in bad.stderr
    folder = cli("detect", "test", str(out), str(tmp_path / "w"))
    assert folder.exit_code == 2 and "w: is a folder, not a checkpoint (hint: pass one of its checkpoints, e.g. " \
        f"{tmp_path / 'w' / 'epoch_1.pth'})" in folder.stderr
