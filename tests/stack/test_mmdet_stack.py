"""The MMDetection stack works on this torch: a tiny RetinaNet trains a step and predicts with mmcv's NMS."""

import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

TINY_RETINANET = dict(
    type="RetinaNet",
    data_preprocessor=dict(type="DetDataPreprocessor", mean=[0, 0, 0], std=[1, 1, 1], bgr_to_rgb=False),
    backbone=dict(type="ResNet", depth=18, num_stages=4, out_indices=(1, 2, 3), norm_eval=False, init_cfg=None),
    neck=dict(type="FPN", in_channels=[128, 256, 512], out_channels=32, start_level=0,
              add_extra_convs="on_input", num_outs=5),
    bbox_head=dict(
        type="RetinaHead", num_classes=3, in_channels=32, stacked_convs=1, feat_channels=32,
        anchor_generator=dict(type="AnchorGenerator", octave_base_scale=4, scales_per_octave=3,
                              ratios=[0.5, 1.0, 2.0], strides=[8, 16, 32, 64, 128]),
        bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[1.0] * 4),
        loss_cls=dict(type="FocalLoss", use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type="L1Loss", loss_weight=1.0)),
    train_cfg=dict(assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0,
                                 ignore_iof_thr=-1),
                   sampler=dict(type="PseudoSampler"), allowed_border=-1, pos_weight=-1, debug=False),
    test_cfg=dict(nms_pre=100, min_bbox_size=0, score_thr=0.0, nms=dict(type="nms", iou_threshold=0.5),
                  max_per_img=20),
)


def _sample(size: int) -> DetDataSample:
    sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size), scale_factor=(1.0, 1.0),
                                         pad_shape=(size, size), batch_input_shape=(size, size)))
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[8.0, 8.0, 60.0, 60.0], [70.0, 64.0, 120.0, 110.0]]),
                                       labels=torch.tensor([0, 2]))
    return sample


def test_tiny_retinanet_trains_and_predicts_with_nms_on_cpu():
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(TINY_RETINANET))
    model.init_weights()  # RetinaNet's head init (focal-loss prior), no pretrained download
    images = torch.rand(2, 3, 128, 128)
    samples = [_sample(128), _sample(128)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    losses = model.loss(images, samples)
    total = sum(sum(v) if isinstance(v, list) else v for v in losses.values())
    assert torch.isfinite(total) and total > 0
    before = model.bbox_head.retina_cls.weight.detach().clone()
    total.backward()
    optimizer.step()
    assert not torch.equal(before, model.bbox_head.retina_cls.weight)

    model.eval()
    with torch.no_grad():
        predictions = model.predict(images, samples)
    for prediction in predictions:
        boxes = prediction.pred_instances.bboxes
        assert boxes.shape[1] == 4 and 0 < len(boxes) <= 20
        assert prediction.pred_instances.labels.max() < 3
