"""`dmc export --int8 --calibration DATA`: an int8 QDQ model beside the fp32 one, calibrated on the training images,
measured on the test images and timed against it, in the export's report; refused in one line where it cannot be."""

import json
import pickle

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from dmc.compiler import build_network, save_network
from dmc.data import load_dataset
from dmc.errors import DmcError, InvalidInputError
from dmc.exporters.classifier_int8 import default_int8_path, export_onnx_int8
from dmc.exporters.int8 import compare_latency_ms, quantize_int8
from dmc.genotype import published_genotypes

DARTS_V2 = published_genotypes()["DARTS_V2"]
CALIBRATION = 64


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A DARTS_V2 network at 4 channels and 3 cells trained for one epoch on digits (a few seconds)."""
    from dmc.train import TrainConfig, train

    root = tmp_path_factory.mktemp("int8")
    train(DARTS_V2, TrainConfig.for_dataset("digits", epochs=1, channels=4, layers=3, batch_size=128, cutout=0),
          root / "run")
    return root / "run" / "best.pt"


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """The trained network exported with --int8 through the CLI: (folder, CLI result)."""
    from typer.testing import CliRunner

    from dmc.cli.main import app

    folder = tmp_path_factory.mktemp("int8-export")
    result = CliRunner().invoke(app, ["export", str(trained), "--onnx", str(folder / "m.onnx"), "--int8",
                                      "--calibration", "digits", "--calibration-images", str(CALIBRATION)])
    assert result.exit_code == 0, result.output
    return folder, result


def _nodes(path, op_type):
    model = onnx.load(str(path))
    return model, [node for node in model.graph.node if node.op_type == op_type]


def test_the_int8_model_is_written_beside_and_its_weights_are_quantized_per_channel(exported):
    folder, result = exported
    assert default_int8_path(folder / "m.onnx") == folder / "m.int8.onnx"
    assert sorted(p.name for p in folder.iterdir()) == ["m.int8.onnx", "m.onnx", "m.onnx.json"]
    lines = [line for line in result.stdout.splitlines() if line.startswith("int8: ")]
    assert len(lines) == 1 and f"calibrated on {CALIBRATION} digits training images" in lines[0]
    assert "top-1 on 360 test images" in lines[0] and "latency at batch 1, 1 thread" in lines[0]
    model, dequantize = _nodes(folder / "m.int8.onnx", "DequantizeLinear")
    assert dequantize and _nodes(folder / "m.int8.onnx", "QuantizeLinear")[1]
    initializers = {i.name: i for i in model.graph.initializer}
    conv_weights = {node.input[1] for node in model.graph.node if node.op_type == "Conv"}
    per_channel = 0
    for node in dequantize:
        if node.output[0] not in conv_weights:
            continue
        weight, scale = (initializers.get(name) for name in node.input[:2])
        assert weight is not None and weight.data_type == onnx.TensorProto.INT8, node.output[0]
        scales = numpy_helper.to_array(scale)
        assert scales.shape == (weight.dims[0],), "one scale per output channel"
        several = len(set(scales.tolist())) > 1
        per_channel += several
        assert not several or {a.name: a.i for a in node.attribute}.get("axis", 1) == 0, "scales along filters"
    assert per_channel >= len(conv_weights) // 2
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["dmc.quantization"])["calibration_method"] == "MinMax"
    assert meta["dmc.normalization"] == {p.key: p.value for p in onnx.load(str(folder / "m.onnx")).metadata_props}[
        "dmc.normalization"]


def test_the_int8_model_runs_and_agrees_with_the_fp32_model(exported):
    folder, _ = exported
    test = load_dataset("digits").test  # normalised as the network was trained: what the models record
    images = np.stack([test[i][0].numpy() for i in range(len(test))])
    labels = np.array([int(test[i][1]) for i in range(len(test))])
    sessions = [ort.InferenceSession(str(folder / name), providers=["CPUExecutionProvider"])
                for name in ("m.onnx", "m.int8.onnx")]
    fp32, int8 = (session.run(None, {"input": images})[0] for session in sessions)
    assert int8.shape == fp32.shape == (len(labels), 10) and np.isfinite(int8).all()
    agreement = float(np.mean(fp32.argmax(1) == int8.argmax(1)))
    assert agreement >= 0.9
    report = json.loads((folder / "m.onnx.json").read_text())["int8"]
    assert report["accuracy"]["fp32_top1"] == pytest.approx(float(np.mean(fp32.argmax(1) == labels)))
    assert report["accuracy"]["int8_top1"] == pytest.approx(float(np.mean(int8.argmax(1) == labels)))
    assert report["accuracy"]["agreement"] == pytest.approx(agreement)


def test_the_report_has_the_int8_section(exported):
    folder, _ = exported
    report = json.loads((folder / "m.onnx.json").read_text())
    assert report["passed"] is True and report["model"] == str(folder / "m.onnx")
    section = report["int8"]
    assert section["model"] == str(folder / "m.int8.onnx")
    assert section["calibration"]["dataset"] == "digits" and section["calibration"]["images"] == CALIBRATION
    assert section["calibration"]["split"] == "train" and section["calibration"]["image_size"] == 32
    accuracy = section["accuracy"]
    assert accuracy["split"] == "test" and accuracy["images"] == 360  # digits' whole test split
    assert accuracy["drop"] == pytest.approx(accuracy["fp32_top1"] - accuracy["int8_top1"])
    latency = section["latency_ms"]
    assert latency["batch"] == 1 and latency["threads"] == 1 and latency["repeats"] == 20
    for model in ("fp32", "int8"):
        timing = latency[model]
        assert 0 < timing["min_ms"] <= timing["median_ms"] <= timing["max_ms"]
    assert latency["speedup"] == pytest.approx(latency["fp32"]["median_ms"] / latency["int8"]["median_ms"])
    quantization = section["quantization"]
    assert quantization["format"] == "QDQ" and quantization["pre_process"] == "quant_pre_process"
    assert "per output channel" in quantization["weights"] and quantization["activations"].startswith("uint8")
    assert section["quantized_ops"]["QuantizeLinear"] > 0


def test_quantize_and_compare_from_python(exported, tmp_path):
    folder, _ = exported
    rng = np.random.default_rng(0)
    feeds = [{"input": rng.standard_normal((4, 3, 32, 32)).astype(np.float32)} for _ in range(2)]
    out = quantize_int8(folder / "m.onnx", tmp_path / "q.onnx", iter(feeds))
    assert out == tmp_path / "q.onnx" and [p.name for p in tmp_path.iterdir()] == ["q.onnx"]
    timing = compare_latency_ms(folder / "m.onnx", out, feeds[0], threads=1, repeats=3)
    assert timing["batch"] == 4 and set(timing) >= {"fp32", "int8", "speedup", "threads", "repeats"}
    with pytest.raises(InvalidInputError, match="calibration feeds are empty"):
        quantize_int8(folder / "m.onnx", tmp_path / "empty.onnx", [])
    assert not (tmp_path / "empty.onnx").exists()


def _one_line(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "Traceback" not in result.output
    return result.stderr


def _cifar10(root):
    """A CIFAR-10 folder of 4 black 32x32 images per batch."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": np.zeros((4, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 3]}
        (folder / name).write_bytes(pickle.dumps(batch))
    return root


@pytest.fixture
def network_file(tmp_path):
    return save_network(build_network(DARTS_V2, channels=4, layers=3), tmp_path / "net.pt")


def test_refusals_are_one_line_and_write_nothing(cli, network_file, tmp_path, toy_data):
    out = tmp_path / "out" / "m.onnx"
    run = ["export", str(network_file), "--onnx", str(out)]
    assert "--int8 needs calibration data (hint: pass --calibration DATA" in _one_line(cli(*run, "--int8"))
    assert "has 2 classes, but the network classifies 10" in _one_line(
        cli(*run, "--int8", "--calibration", toy_data))
    assert "32x32 images, but the exported model takes 40x40" in _one_line(
        cli(*run, "--int8", "--calibration", f"cifar10:{_cifar10(tmp_path / 'cifar')}", "--input-size", "40"))
    assert "--calibration applies to int8 export (hint: add --int8" in _one_line(
        cli(*run, "--calibration", "digits"))
    assert "--int8 quantizes classifiers" in _one_line(
        cli(*run, "--int8", "--calibration", "digits", "--features", "1,2"))
    assert "(hint: pass --calibration cifar10:PATH)" in _one_line(cli(*run, "--int8", "--calibration", "cifar10"))
    assert "unknown calibration data 'mnist'" in _one_line(cli(*run, "--int8", "--calibration", "mnist"))
    assert "would overwrite" in _one_line(cli(*run, "--int8", "--calibration", "digits", "--int8-out", str(out)))
    assert not out.parent.exists()


def test_a_failed_quantization_leaves_the_fp32_export_whole_and_no_int8_model(monkeypatch, tmp_path):
    import onnxruntime.quantization as quantization

    def broken(*args, **kwargs):
        raise RuntimeError("no kernel for this\nsecond line")

    monkeypatch.setattr(quantization, "quantize_static", broken)
    stale = tmp_path / "m.int8.onnx"
    stale.write_bytes(b"an int8 model of an earlier export")
    network = build_network(DARTS_V2, channels=4, layers=3)
    with pytest.raises(DmcError, match=r"could not quantize .*RuntimeError: no kernel for this \(hint") as info:
        export_onnx_int8(network, tmp_path / "m.onnx", "digits", calibration_images=8, test_images=8, runs=1)
    assert info.value.exit_code == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.json"]
    report = json.loads((tmp_path / "m.onnx.json").read_text())
    assert report["passed"] is True and "int8" not in report
