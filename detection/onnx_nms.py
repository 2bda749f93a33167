"""``dmc_det::nms``: class-aware non-maximum suppression as one PyTorch op that exports to ONNX ``NonMaxSuppression``.

    selected = torch.ops.dmc_det.nms(boxes, scores, max_per_class, iou_threshold, score_threshold)

``boxes`` is ``[B, N, 4]`` (x1, y1, x2, y2), ``scores`` ``[B, C, N]``; the result is ``[M, 3]`` int64 rows
``(batch, class, box)``, for each batch and class the boxes with a score strictly above ``score_threshold``, kept
greedily in descending score order where their IoU with every box kept before is at most ``iou_threshold``, at most
``max_per_class`` of them, in that order. That is the ONNX operator's definition (onnxruntime keeps scores strictly
above the threshold and suppresses IoU strictly above it, as mmcv's ``nms`` and mmdet's ``scores > score_thr`` do);
PyTorch runs it with torchvision's ``nms`` per batch and class. The number of rows depends on the data: the fake
implementation gives torch.export a dynamic size, and :data:`ONNX_TRANSLATIONS` tells ``torch.onnx.export`` to
write the op as one ``NonMaxSuppression`` node.
"""

from __future__ import annotations

import torch
import torchvision
from onnxscript import opset18 as op
from torch import Tensor

__all__ = ["ONNX_TRANSLATIONS", "nms"]


@torch.library.custom_op("dmc_det::nms", mutates_args=())
def nms(boxes: Tensor, scores: Tensor, max_per_class: int, iou_threshold: float, score_threshold: float) -> Tensor:
    """The eager implementation (see the module's docstring)."""
    rows = [boxes.new_zeros((0, 3), dtype=torch.int64)]
    for b in range(boxes.shape[0]):
        for c in range(scores.shape[1]):
            candidates = torch.nonzero(scores[b, c] > score_threshold).flatten()
            kept = candidates[torchvision.ops.nms(boxes[b, candidates], scores[b, c, candidates], iou_threshold)]
            kept = kept[:max_per_class]
            rows.append(torch.stack([torch.full_like(kept, b), torch.full_like(kept, c), kept], dim=1))
    return torch.cat(rows)


@nms.register_fake
def _nms_fake(boxes: Tensor, scores: Tensor, max_per_class: int, iou_threshold: float,
              score_threshold: float) -> Tensor:
    selected = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((selected, 3), dtype=torch.int64)


def _nms_onnx(boxes, scores, max_per_class: int, iou_threshold: float, score_threshold: float):
    """``dmc_det::nms`` as the ONNX standard op (corner boxes: ``center_point_box=0``)."""
    return op.NonMaxSuppression(boxes, scores, op.Constant(value_ints=[max_per_class]),
                                op.Constant(value_floats=[iou_threshold]),
                                op.Constant(value_floats=[score_threshold]), center_point_box=0)


ONNX_TRANSLATIONS = {torch.ops.dmc_det.nms.default: _nms_onnx}
"""The ``custom_translation_table`` of ``torch.onnx.export`` for graphs that call ``dmc_det::nms``."""
