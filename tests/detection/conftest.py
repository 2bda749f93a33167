"""Shared detection fixtures: the demo set at its smallest, and generated configs on it."""

from pathlib import Path

import pytest

from dmc.data.detection_demo import DemoSpec, write_detection_demo


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> Path:
    """8 train and 4 val images of 64x64 pixels, COCO format."""
    root = tmp_path_factory.mktemp("demo") / "digits-coco"
    write_detection_demo(root, DemoSpec(train_images=8, val_images=4, size=64))
    return root


@pytest.fixture
def detector_config(demo):
    """``detector_config(folder, epochs=1, data=demo)``: writes a tiny RetinaNet config (DARTS_V2 backbone at
    4 channels, 3 cells) into ``folder`` with work_dir ``folder/work``; returns its path."""
    from mmengine.config import Config

    from dmc.detection.config import DetectionConfig, write_retinanet_config

    def make(folder: Path, epochs: int = 1, data: Path = demo) -> Path:
        cfg = DetectionConfig(data_root=str(data), train_ann="annotations/instances_train.json",
                              val_ann="annotations/instances_val.json", train_img="train/", val_img="val/",
                              channels=4, layers=3, image_scale=(64, 64), epochs=epochs, milestones=(epochs,),
                              batch_size=4, warmup_iters=2, neck_channels=16, head_convs=1, num_workers=0,
                              work_dir=str(folder / "work"))
        path = write_retinanet_config("DARTS_V2", folder / "retinanet_dmc.py", cfg)
        config = Config.fromfile(str(path))
        config.model.test_cfg.score_thr = 0.0  # an untrained detector must still output boxes to score
        config.default_hooks.visualization = dict(type="DetVisualizationHook")
        config.dump(str(path))
        return path

    return make
