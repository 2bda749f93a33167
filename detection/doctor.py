"""`dmc doctor` checks for the MMDetection stack, including mmcv's compiled ops."""

from __future__ import annotations

from dmc.doctor import Check, package_check


def _mmcv_ops_probe() -> str:
    # mmdet imports mmcv.ops at import time; run NMS so a half-built extension cannot pass.
    import torch
    from mmcv.ops import nms

    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    _, keep = nms(boxes, scores, iou_threshold=0.5)
    if keep.tolist() != [0, 2]:
        raise RuntimeError(f"mmcv.ops.nms returned {keep.tolist()}, expected [0, 2]")
    return "compiled ops load (nms ok)"


def checks() -> list[Check]:
    """mmcv with its compiled ops, mmengine and mmdet (with its models)."""
    return [
        package_check("mmcv", "mmcv.ops", probe=_mmcv_ops_probe),
        package_check("mmengine"),
        package_check("mmdet", "mmdet.models"),
    ]
