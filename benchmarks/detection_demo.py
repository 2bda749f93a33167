"""RetinaNet with a DmcBackbone on the embedded detection demo set, on CPU, within a time budget.

    python benchmarks/detection_demo.py SOURCE [--epochs 12] [--work DIR]

SOURCE is a genotype or a `dmc train` checkpoint (its weights pretrain the backbone). Reports COCO bbox
mAP and mAP@0.5 on the demo's val split after training, the wall time, and, for contrast, the same
detector randomly initialised and untrained, measured in the same run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mmengine.config import Config

from dmc.data.detection_demo import write_detection_demo
from dmc.detection.config import DetectionConfig, write_retinanet_config
from dmc.detection.runner import build_runner


def demo_config(source: str, data: Path, work: Path, epochs: int, lr: float = 0.01, **overrides) -> Path:
    cfg = DetectionConfig(data_root=str(data), train_ann="annotations/instances_train.json",
                          val_ann="annotations/instances_val.json", train_img="train/", val_img="val/",
                          image_scale=(128, 128), epochs=epochs, milestones=(epochs * 3 // 4,), batch_size=8,
                          lr=lr, warmup_iters=30, flip=False, neck_channels=64, head_convs=2, num_workers=0,
                          work_dir=str(work), **overrides)
    return write_retinanet_config(source, work / "retinanet_dmc.py", cfg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="dmc-detect-"))
    data = work / "data"
    write_detection_demo(data)
    path = demo_config(args.source, data, work / "trained", args.epochs, args.lr)

    untrained = Config.fromfile(str(path))
    untrained.work_dir = str(work / "untrained")
    runner = build_runner(untrained)
    runner.model.init_weights()  # RetinaNet's head prior, as training would start
    baseline = runner.val()

    started = time.perf_counter()
    trained = build_runner(path)
    trained.train()
    seconds = time.perf_counter() - started
    final = trained.val()
    print(f"source: {args.source}; {args.epochs} epochs on 240 images (128x128), CPU")
    print(f"trained:    bbox mAP {final['coco/bbox_mAP']:.3f}, mAP@0.5 {final['coco/bbox_mAP_50']:.3f}, "
          f"{seconds / 60:.1f} min")
    print(f"untrained:  bbox mAP {baseline.get('coco/bbox_mAP', 0.0):.3f}, "
          f"mAP@0.5 {baseline.get('coco/bbox_mAP_50', 0.0):.3f}")
    print(f"work dir: {work}")


if __name__ == "__main__":
    main()
