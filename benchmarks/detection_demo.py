"""RetinaNet with a DmcBackbone on the embedded detection demo set, on CPU, within a time budget.

    python benchmarks/detection_demo.py SOURCE [--epochs 12] [--work DIR] [--export]

SOURCE is a genotype or a `dmc train` checkpoint (its weights pretrain the backbone). Reports COCO bbox
mAP and mAP@0.5 on the demo's val split after training, the wall time, and, for contrast, the same
detector randomly initialised and untrained, measured in the same run. With --export, the trained detector is
then exported as `dmc detect export ... --int8` exports it (fp32 and int8, each checked on the val split), and
the export's report is written to benchmarks/results/detector_export-<cpu>.json.
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
    return write_retinanet_config(source, work.parent / f"retinanet_{work.name}.py", cfg)  # not in its work_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--export", action="store_true", help="export the trained detector (fp32 and int8)")
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
    if args.export:
        export(path, work, args.epochs)


def export(config: Path, work: Path, epochs: int) -> None:
    """`dmc detect export CONFIG CHECKPOINT --onnx det.onnx --int8`, its report kept in benchmarks/results."""
    import json
    import re

    from dmc.detection.onnx_export import export_detector
    from dmc.exporters.latency import cpu_model

    report = export_detector(config, work / "trained" / f"epoch_{epochs}.pth", work / "det.onnx", int8=True,
                             repeats=30)
    parity, maps, timing, int8 = report["parity"], report["map"], report["latency_ms_batch1"], report["int8"]
    print(f"exported: {parity['detections']} detections on {parity['images']} images paired, max box difference "
          f"{parity['max_box_abs_diff']:.1e} px, max score difference {parity['max_score_abs_diff']:.1e}; bbox mAP "
          f"mmdet {maps['mmdet']}, onnxruntime {maps['onnxruntime']}; batch 1, 1 thread: onnxruntime "
          f"{timing['onnxruntime_ms']:.2f} ms, PyTorch {timing['pytorch_ms']:.2f} ms")
    print(f"int8: mAP {int8['map']['int8']} (fp32 {int8['map']['fp32']}), {int8['latency_ms']['speedup']:.2f}x as fast")
    name = "detector_export-" + re.sub(r"[^a-z0-9]+", "-", cpu_model().lower()).strip("-")[:24] + ".json"
    out = Path(__file__).parent / "results" / name
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
