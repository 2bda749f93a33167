"""`dmc detect export`: the whole trained RetinaNet as one ONNX model, proven equal to MMDetection's predict (issue 30).

One detector is trained (seeded, 20 epochs of 2 iterations on the demo set) and exported once through the CLI; the
tests read its model and report. The training is long enough that the scores of the detections kept differ by far more
than the two runtimes' rounding (an untrained RetinaNet scores every anchor about 0.0101, and which of such near-ties
NMS keeps is up to the last bit).
"""

from __future__ import annotations

import copy
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from typer.testing import CliRunner

from dmc.detection.config import DetectionConfig, write_retinanet_config
from dmc.detection.onnx_check import compare_image, onnx_detections
from dmc.detection.onnx_graph import DetectorGraph
from dmc.detection.onnx_inputs import feeds, load_detector, preprocessed_batches, preprocessed_samples
from dmc.detection.runner import build_runner, evaluate
from dmc.exporters.onnx import report_path

EPOCHS = 20
MAX_PER_IMG = 100


@pytest.fixture(scope="module")
def trained(tmp_path_factory, demo):
    """(config, checkpoint) of a tiny RetinaNet (DARTS_V2 at 4 channels, 3 cells) trained on the demo set."""
    folder = tmp_path_factory.mktemp("detector")
    cfg = DetectionConfig(data_root=str(demo), train_ann="annotations/instances_train.json",
                          val_ann="annotations/instances_val.json", train_img="train/", val_img="val/",
                          channels=4, layers=3, image_scale=(64, 64), epochs=EPOCHS, milestones=(EPOCHS,),
                          batch_size=4, warmup_iters=2, neck_channels=16, head_convs=1, num_workers=0,
                          work_dir=str(folder / "work"), extra={"randomness": {"seed": 0}})
    path = write_retinanet_config("DARTS_V2", folder / "retinanet_dmc.py", cfg)
    config = Config.fromfile(str(path))
    config.model.test_cfg.score_thr = 0.0  # every image has detections to compare
    config.train_cfg.val_interval = EPOCHS
    config.dump(str(path))
    build_runner(path).train()
    return path, folder / "work" / f"epoch_{EPOCHS}.pth"


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """The CLI's export of the trained detector: (result, model path, report)."""
    from dmc.cli.main import app

    config, checkpoint = trained
    out = tmp_path_factory.mktemp("export") / "det.onnx"
    result = CliRunner().invoke(app, ["detect", "export", str(config), str(checkpoint), "--onnx", str(out),
                                      "--repeats", "3"])
    assert result.exit_code == 0, result.output
    return result, out, json.loads(report_path(out).read_text())


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _detections(session, feed: dict):
    dets, labels = session.run(None, feed)
    return [onnx_detections(dets[k], labels[k]) for k in range(len(dets))]


def _predict(model, data: dict, x: torch.Tensor | None = None):
    """mmdet's detections in the input's pixels (``x`` instead of the sample's input: the same image sizes)."""
    x = data["inputs"] if x is None else x
    with torch.no_grad():
        pred = model.predict(x, copy.deepcopy(data["data_samples"]), rescale=False)[0].pred_instances
    return pred.bboxes.numpy(), pred.scores.numpy(), pred.labels.numpy()


def _same(expected, got) -> None:
    result = compare_image(expected, got)
    assert result["expected"] == result["got"] and result["unpaired"] == 0, result
    assert result["max_box_abs_diff"] <= 1e-3 and result["max_score_abs_diff"] <= 1e-4, result


def test_onnxruntime_gives_mmdets_detections_and_map(exported, trained):
    result, out, report = exported
    parity, maps = report["parity"], report["map"]
    assert report["passed"] is True and report["onnx_checker"] == "passed (full check)"
    assert parity["passed"] and parity["images"] == 4 and parity["detections"] == 4 * MAX_PER_IMG
    assert parity["count_mismatches"] == 0 and parity["unpaired"] == 0
    assert parity["max_box_abs_diff"] <= 1e-3 and parity["max_score_abs_diff"] <= 1e-4 and parity["min_iou"] >= 0.999
    # mmdet's own evaluation of the checkpoint (the Runner's test loop) is the report's, and onnxruntime's equals it
    metrics = evaluate(*trained)
    assert maps["mmdet"] == pytest.approx(metrics["coco/bbox_mAP"])
    assert round(maps["onnxruntime"], 3) == round(metrics["coco/bbox_mAP"], 3) and maps["passed"]
    assert maps["onnxruntime_metrics"] == maps["mmdet_metrics"] and metrics["coco/bbox_mAP_50"] > 0  # not vacuous
    assert report["dynamic_batch"]["passed"]
    timing = report["latency_ms_batch1"]
    assert timing["onnxruntime_ms"] > 0 and timing["pytorch_ms"] > 0 and timing["input_shape"] == [1, 3, 64, 64]
    assert f"wrote {out} (opset {report['opset']})" in result.stdout
    assert f"{parity['detections']} detections paired" in result.stdout and "bbox mAP: mmdet" in result.stdout


def test_model_interface_and_metadata(exported):
    _, out, report = exported
    model = onnx.load(str(out))
    inputs, outputs = model.graph.input, model.graph.output
    assert [i.name for i in inputs] == ["input", "image_size"]
    assert [d.dim_param or d.dim_value for d in inputs[0].type.tensor_type.shape.dim] == ["batch", 3, "height", "width"]
    assert [d.dim_param or d.dim_value for d in inputs[1].type.tensor_type.shape.dim] == ["batch", 2]
    assert [o.name for o in outputs] == ["dets", "labels"]
    assert [d.dim_param or d.dim_value for d in outputs[0].type.tensor_type.shape.dim] == ["batch", MAX_PER_IMG, 5]
    assert any(node.op_type == "NonMaxSuppression" for node in model.graph.node)
    meta = {p.key: p.value for p in model.metadata_props}
    pre = json.loads(meta["dmc.preprocessing"])
    assert pre["mean"] == [123.675, 116.28, 103.53] and pre["std"] == [58.395, 57.12, 57.375]
    assert pre["bgr_to_rgb"] is True and pre["pad_size_divisor"] == 32 and pre["pad_value"] == 0.0
    assert pre["resize"]["scale"] == [64, 64] and pre["resize"]["keep_ratio"] is True
    assert json.loads(meta["dmc.classes"]) == [str(d) for d in range(10)]
    post = json.loads(meta["dmc.postprocessing"])
    assert post["max_per_img"] == MAX_PER_IMG and post["score_thr"] == 0.0 and post["iou_threshold"] == 0.5
    assert "score 0" in json.loads(meta["dmc.outputs"])["dets"] and meta["dmc.version"] == report["dmc_version"]
    assert "before padding" in json.loads(meta["dmc.inputs"])["image_size"]


def test_any_batch_and_input_size(exported, trained):
    """Two images as one batch give each image's detections; a larger padded canvas gives mmdet's on it."""
    _, out, _ = exported
    session = _session(out)
    cfg, model = load_detector(*trained)
    samples = list(preprocessed_samples(cfg, "val", limit=2))
    alone = [_detections(session, feeds(s))[0] for s in samples]
    together = _detections(session, {name: np.concatenate([feeds(s)[name] for s in samples])
                                     for name in ("input", "image_size")})
    for a, b in zip(alone, together):
        _same(a, b)
    canvas = F.pad(samples[0]["inputs"], (0, 64, 0, 32))  # 96 x 128, padded as the preprocessor pads
    sizes = {"input": canvas.numpy(), "image_size": np.array([[64, 64]])}  # boxes clipped to the image, as mmdet's
    _same(_predict(model, samples[0], canvas), _detections(session, sizes)[0])
    whole = {"input": canvas.numpy(), "image_size": np.array([[96, 128]])}  # clipped to the input
    assert np.all(_detections(session, whole)[0][0] <= [128, 96, 128, 96])


def test_the_graph_in_pytorch_is_mmdets_predict(trained):
    """The exported module run eagerly (NMS by torchvision) against mmdet's predict."""
    cfg, model = load_detector(*trained)
    graph = DetectorGraph(model, model.test_cfg).eval()
    for data in preprocessed_samples(cfg, "val"):
        with torch.no_grad():
            dets, labels = graph(data["inputs"], torch.from_numpy(feeds(data)["image_size"]))
        _same(_predict(model, data), onnx_detections(dets[0].numpy(), labels[0].numpy()))


def test_preprocessed_batches_feed_the_model(trained):
    config, _ = trained
    batches = list(preprocessed_batches(config, "train", limit=3))
    assert len(batches) == 3 and all(set(b) == {"input", "image_size"} for b in batches)
    assert all(b["input"].dtype == np.float32 and b["input"].shape == (1, 3, 64, 64) for b in batches)
    assert all(b["image_size"].dtype == np.int64 and b["image_size"].tolist() == [[64, 64]] for b in batches)
    assert len(list(preprocessed_batches(config, "val"))) == 4


def test_nothing_is_written_when_the_export_fails(trained, tmp_path, monkeypatch):
    import dmc.detection.onnx_export as onnx_export

    def broken(graph, cfg, tmp, opset):
        tmp.write_bytes(b"half a model")
        raise RuntimeError("the exporter failed")

    monkeypatch.setattr(onnx_export, "_export", broken)
    with pytest.raises(RuntimeError, match="the exporter failed"):
        onnx_export.export_detector(*trained, tmp_path / "det.onnx")
    assert list(tmp_path.iterdir()) == []


def _config_with(trained, tmp_path, edit) -> str:
    config = Config.fromfile(str(trained[0]))
    edit(config)
    path = tmp_path / "edited.py"
    config.dump(str(path))
    return str(path)


def _backbone(config):
    config.model.backbone = dict(type="ResNet", depth=18)


def _fcos(config):
    config.model.type = "FCOS"


def _soft_nms(config):
    config.model.test_cfg.nms.type = "soft_nms"


REFUSALS = {
    "missing config": (lambda t, p: [str(p / "nope.py"), str(t[1])], "config file"),
    "not a detector config": (lambda t, p: [_text(p, "x = 1\n"), str(t[1])], "not a detector config"),
    "not a RetinaNet": (lambda t, p: [_config_with(t, p, _fcos), str(t[1])], "the detector is FCOS"),
    "not a dmc backbone": (lambda t, p: [_config_with(t, p, _backbone), str(t[1])], "the backbone is ResNet"),
    "soft NMS": (lambda t, p: [_config_with(t, p, _soft_nms), str(t[1])], "test_cfg.nms is soft_nms"),
    "missing checkpoint": (lambda t, p: [str(t[0]), str(p / "nope.pth")], "does not exist"),
    "corrupt checkpoint": (lambda t, p: [str(t[0]), _text(p, t[1].read_bytes()[:2000], "c.pth")],
                           "c.pth: corrupt or unreadable checkpoint"),
    "a checkpoint of another model": (lambda t, p: [_config_with(t, p, _wider_neck), str(t[1])],
                                      "not a checkpoint of this config's model"),
    "a checkpoint of a larger model": (lambda t, p: [_config_with(t, p, _no_head_convs), str(t[1])],
                                       "tensors the model lacks (e.g. bbox_head.cls_convs.0"),
}


def _wider_neck(config):
    config.model.neck.out_channels = 8


def _no_head_convs(config):
    config.model.bbox_head.stacked_convs = 0


def _text(folder, content, name="c.py") -> str:
    path = folder / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return str(path)


@pytest.mark.parametrize("name", list(REFUSALS))
def test_bad_input_is_one_line(cli, trained, tmp_path, monkeypatch, name):
    monkeypatch.delenv("DMC_DEBUG", raising=False)
    build, fragment = REFUSALS[name]
    out = tmp_path / "out" / "det.onnx"
    result = cli("detect", "export", *build(trained, tmp_path), "--onnx", str(out))
    lines = result.stderr.splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert fragment in lines[0] and "(hint: " in lines[0]
    assert not out.exists() and not report_path(out).exists()


def test_writing_over_the_checkpoint_is_refused(cli, trained):
    config, checkpoint = trained
    result = cli("detect", "export", str(config), str(checkpoint), "--onnx", str(checkpoint))
    assert result.exit_code == 2 and "would overwrite an input" in result.stderr
