"""A trained MMDetection RetinaNet as one traceable module: preprocessed batch in, fixed-size detections out.

    graph = DetectorGraph(model, model.test_cfg)
    dets, labels = graph(batch, image_size)   # [B, K, 5] (x1, y1, x2, y2, score), [B, K] int64; K = max_per_img

``batch`` is what mmdet's data preprocessor hands the model (normalised, padded, NCHW float32), ``image_size`` [B, 2]
int64 the height and width of each image in it before padding (mmdet's ``img_shape``). The module runs what
``model.predict(..., rescale=False)`` runs, in tensors of static rank so that the dynamo exporter can write it: the
backbone and FPN (``extract_feat``), RetinaHead, the anchors of every level for the feature-map sizes of this input
(so the input's height and width can vary), then per level, as mmdet's ``filter_scores_and_topk``: sigmoid scores,
those at or below ``score_thr`` dropped, the ``nms_pre`` best (anchor, class) pairs kept and their boxes decoded
(``DeltaXYWHBBoxCoder``'s arithmetic, clipped to the image's size); boxes of a side not above ``min_bbox_size``
dropped; class-aware NMS over all levels (:mod:`dmc.detection.onnx_nms`, ONNX ``NonMaxSuppression``) and the
``max_per_img`` best detections across classes, padded to K rows with score 0, label -1 and a zero box (every real
detection scores above ``score_thr`` >= 0).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

import dmc.detection.onnx_nms  # noqa: F401  (registers torch.ops.dmc_det.nms)


class DetectorGraph(nn.Module):
    """``model`` (an mmdet RetinaNet in eval mode) from its preprocessed input and image sizes to padded
    detections."""

    def __init__(self, model: nn.Module, test_cfg):
        super().__init__()
        self.model = model
        head = model.bbox_head
        coder = head.bbox_coder
        self.num_classes = int(head.cls_out_channels)
        self.score_thr = float(test_cfg.get("score_thr", 0.0))
        self.nms_pre = int(test_cfg.get("nms_pre", -1))
        self.iou_threshold = float(test_cfg["nms"]["iou_threshold"])
        self.max_per_img = int(test_cfg["max_per_img"])
        min_size = test_cfg.get("min_bbox_size", -1)
        self.min_bbox_size = None if min_size is None or min_size < 0 else float(min_size)
        self.means, self.stds = [float(m) for m in coder.means], [float(s) for s in coder.stds]
        self.clip_border, self.add_ctr_clamp = bool(coder.clip_border), bool(coder.add_ctr_clamp)
        self.ctr_clamp = float(coder.ctr_clamp)
        self.max_ratio = abs(math.log(16 / 1000))  # DeltaXYWHBBoxCoder.decode's default wh_ratio_clip
        # scores that can never pass the threshold: dropped (anchor, class) pairs get it
        self.dropped = min(self.score_thr, 0.0) - 1.0

    def forward(self, x: Tensor, image_size: Tensor) -> tuple[Tensor, Tensor]:
        batch = x.shape[0]
        height, width = image_size[:, 0:1].unsqueeze(-1).to(x.dtype), image_size[:, 1:2].unsqueeze(-1).to(x.dtype)
        head = self.model.bbox_head
        cls_scores, bbox_preds = head(self.model.extract_feat(x))
        priors = head.prior_generator.grid_priors([c.shape[-2:] for c in cls_scores], dtype=x.dtype, device=x.device)
        boxes, scores, labels = [], [], []
        for cls_score, bbox_pred, anchors in zip(cls_scores, bbox_preds, priors):
            level_boxes, level_scores, level_labels = self._level(cls_score, bbox_pred, anchors, height, width)
            boxes.append(level_boxes)
            scores.append(level_scores)
            labels.append(level_labels)
        return self._nms(torch.cat(boxes, 1), torch.cat(scores, 1), torch.cat(labels, 1), batch)

    def _level(self, cls_score: Tensor, bbox_pred: Tensor, anchors: Tensor, height: Tensor, width: Tensor):
        """One level's ``nms_pre`` best (anchor, class) pairs: decoded boxes [B, k, 4], scores [B, k] (those at or
        below ``score_thr`` set to :attr:`dropped`), labels [B, k]."""
        batch = cls_score.shape[0]
        scores = cls_score.permute(0, 2, 3, 1).reshape(batch, -1).sigmoid()  # index: anchor * classes + class
        scores = torch.where(scores > self.score_thr, scores, torch.full_like(scores, self.dropped))
        pairs = scores.shape[1]
        k = pairs if self.nms_pre <= 0 else torch.sym_min(self.nms_pre, pairs)
        scores, index = scores.topk(k, dim=1)
        anchor, label = index // self.num_classes, index % self.num_classes
        deltas = bbox_pred.permute(0, 2, 3, 1).reshape(batch, -1, 4)
        deltas = torch.gather(deltas, 1, anchor.unsqueeze(-1).expand(-1, -1, 4))
        return self._decode(anchors[anchor], deltas, height, width), scores, label

    def _decode(self, rois: Tensor, deltas: Tensor, height: Tensor, width: Tensor) -> Tensor:
        """``delta2bbox`` of mmdet's DeltaXYWHBBoxCoder, operation for operation, clipped to each image's size."""
        means, stds = deltas.new_tensor(self.means), deltas.new_tensor(self.stds)
        denorm = deltas * stds + means
        dxy, dwh = denorm[..., :2], denorm[..., 2:]
        pxy = (rois[..., :2] + rois[..., 2:]) * 0.5
        pwh = rois[..., 2:] - rois[..., :2]
        dxy_wh = pwh * dxy
        if self.add_ctr_clamp:
            dxy_wh = torch.clamp(dxy_wh, max=self.ctr_clamp, min=-self.ctr_clamp)
            dwh = torch.clamp(dwh, max=self.max_ratio)
        else:
            dwh = dwh.clamp(min=-self.max_ratio, max=self.max_ratio)
        gxy = pxy + dxy_wh
        gwh = pwh * dwh.exp()
        boxes = torch.cat([gxy - gwh * 0.5, gxy + gwh * 0.5], dim=-1)
        if self.clip_border:  # as mmdet's clamp(min=0, max=size), with one size per image ([B, 1, 1] each)
            xs = torch.minimum(boxes[..., 0::2].clamp(min=0), width)
            ys = torch.minimum(boxes[..., 1::2].clamp(min=0), height)
            boxes = torch.stack([xs, ys], dim=-1).flatten(-2)
        return boxes

    def _nms(self, boxes: Tensor, scores: Tensor, labels: Tensor, batch) -> tuple[Tensor, Tensor]:
        """Class-aware NMS over the candidates of all levels, then the ``max_per_img`` best across classes, padded."""
        if self.min_bbox_size is not None:
            wh = boxes[..., 2:] - boxes[..., :2]
            big = (wh[..., 0] > self.min_bbox_size) & (wh[..., 1] > self.min_bbox_size)
            scores = torch.where(big, scores, torch.full_like(scores, self.dropped))
        candidates = boxes.shape[1]
        # the same count as a tensor: the exporter writes `%` and `//` by a symbolic size only between tensors
        count = torch.ones_like(labels[0]).sum()
        classes = torch.arange(self.num_classes, device=boxes.device).view(1, -1, 1)
        per_class = torch.where(labels.unsqueeze(1) == classes, scores.unsqueeze(1),
                                torch.full_like(scores.unsqueeze(1), self.dropped))  # [B, C, N]
        # at most max_per_img of a class can be among the max_per_img best overall: NMS keeps in score order
        selected = torch.ops.dmc_det.nms(boxes, per_class, self.max_per_img, self.iou_threshold, self.score_thr)
        b, c, n = selected[:, 0], selected[:, 1], selected[:, 2]
        # the kept scores in a zero [B, C * N + K] matrix (the K zeros at the end pad a short output), then the K best
        row = self.num_classes * candidates + self.max_per_img
        kept = torch.zeros(batch * row, dtype=scores.dtype, device=scores.device)
        kept = kept.scatter(0, b * row + c * candidates + n, per_class[b, c, n]).view(batch, row)
        top, index = kept.topk(self.max_per_img, dim=1)
        found = top > 0
        box = torch.gather(boxes, 1, (index % count).unsqueeze(-1).expand(-1, -1, 4))
        dets = torch.cat([box, top.unsqueeze(-1)], dim=-1) * found.unsqueeze(-1).to(top.dtype)
        labels = torch.where(found, index // count, torch.full_like(index, -1))
        return dets, labels
