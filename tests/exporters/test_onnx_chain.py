"""ONNX export of chain networks with the parity proof: every published chain network, MobileNetV2 at full size
against torchvision's, stage outputs of a chain network file, and `dmc export`'s chain build options.

Calibrated BatchNorm statistics stand in for trained ones: with PyTorch's fresh ones (mean 0, variance 1) the
outputs of a deep chain shrink towards 0 and hardly depend on the input, and a 1e-4 tolerance would prove little.
"""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torchvision

from dmc.compiler import build_network, save_network
from dmc.exporters.onnx import TOLERANCE, export_onnx
from dmc.genotype import genotype_from_dict, published_genotypes

PUBLISHED = published_genotypes()
CHAINS = sorted(name for name, g in PUBLISHED.items() if g.kind == "chain")
SMALL = [name for name in CHAINS if name != "mobilenet_v2"]
"""Exported at width 0.5 and 64 px; mobilenet_v2 is exported at full size (against torchvision's)."""


def _onnxruntime(path, x: torch.Tensor) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x.numpy()})


def test_every_published_chain_network_is_exported_here():
    assert {"FairNAS_A", "FairNAS_B", "FairNAS_C", "NoisyDARTS_A", "mobilenet_v2"} <= set(CHAINS)
    assert set(SMALL) | {"mobilenet_v2"} == set(CHAINS)


@pytest.mark.parametrize("name", SMALL)
def test_every_published_chain_network_exports_with_parity(name, tmp_path, calibrate_bn):
    network = calibrate_bn(build_network(PUBLISHED[name], width=0.5, num_classes=10), 64)
    report = export_onnx(network, tmp_path / "m.onnx", input_size=64, dynamic_batch=False, runs=1)
    assert report["passed"] and report["parity"]["max_abs_error"] <= TOLERANCE == 1e-4
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = network(x).numpy()
    assert np.abs(expected).max() > 0.05  # outputs large enough for the tolerance to mean something
    np.testing.assert_allclose(_onnxruntime(tmp_path / "m.onnx", x)[0], expected, rtol=0, atol=1e-4)


def test_mobilenet_v2_at_full_size_computes_torchvisions_network(tmp_path, calibrate_bn, load_torchvision_weights):
    """dmc's mobilenet_v2 with torchvision's weights, exported at 224 px with a dynamic batch, gives torchvision's
    logits in onnxruntime: the export is checked against an independent implementation, not only against itself."""
    reference = calibrate_bn(torchvision.models.mobilenet_v2(), 224)
    network = load_torchvision_weights(build_network(PUBLISHED["mobilenet_v2"]), reference).eval()

    report = export_onnx(network, tmp_path / "mv2.onnx", runs=1)
    assert report["input"]["shape"] == ["batch", 3, 224, 224] and report["parity"]["batches"] == [2, 1, 7]
    assert report["passed"] and report["parity"]["max_abs_error"] <= 1e-4
    x = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = reference(x).numpy()
    assert expected.shape == (3, 1000) and np.abs(expected).max() > 0.05
    np.testing.assert_allclose(_onnxruntime(tmp_path / "mv2.onnx", x)[0], expected, rtol=0, atol=1e-4)


def test_cli_exports_the_stage_outputs_of_a_chain_network_file(cli, tmp_path, calibrate_bn):
    network = calibrate_bn(build_network(PUBLISHED["FairNAS_A"], width=0.25, num_classes=10), 64)
    path = save_network(network, tmp_path / "fairnas_a.pt")
    out = tmp_path / "features.onnx"
    result = cli("export", str(path), "--onnx", str(out), "--input-size", "64", "--features", "all",
                 "--static-batch", "--runs", "1")
    assert result.exit_code == 0, result.output
    assert "max abs error" in result.stdout and ": ok" in result.stdout
    strides = [info["reduction"] for info in network.feature_info]
    assert strides == [2, 4, 8, 16, 32]
    report = json.loads((tmp_path / "features.onnx.json").read_text())
    assert report["passed"] and report["outputs"] == [f"features_{i}_stride{s}" for i, s in enumerate(strides)]
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert genotype_from_dict(json.loads(meta["dmc.genotype"])) == PUBLISHED["FairNAS_A"]
    assert json.loads(meta["dmc.build_args"])["macro"]["width"] == 0.25

    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = network.forward_intermediates(x, intermediates_only=True)
    got = _onnxruntime(out, x)
    assert [g.shape for g in got] == [(2, info["num_chs"], 64 // info["reduction"], 64 // info["reduction"])
                                      for info in network.feature_info]
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e.numpy(), rtol=0, atol=1e-4)


def test_cli_builds_chain_genotypes_by_width_and_refuses_cell_options(cli, tmp_path, monkeypatch):
    from dmc.exporters import onnx as exporter

    exported = {}

    def record(network, path, **kwargs):  # the build is under test here, not the export
        exported.update(network=network, **kwargs)
        return {"opset": 18, "outputs": ["logits"], "parity": None}

    monkeypatch.setattr(exporter, "export_onnx", record)
    result = cli("export", "mobilenet_v2", "--width", "0.25", "--classes", "10", "--onnx", str(tmp_path / "m.onnx"),
                 "--no-check")
    assert result.exit_code == 0, result.output
    network = exported["network"]
    assert network.build_args.macro.width == 0.25 and network.build_args.num_classes == 10
    assert network.feature_info[-1]["num_chs"] == 80  # 320 * 0.25
    assert exported["input_size"] is None and network.build_args.input_size == 224

    result = cli("export", "FairNAS_A", "--channels", "8", "--onnx", str(tmp_path / "m.onnx"))
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "--width" in result.stderr
    path = save_network(build_network(PUBLISHED["FairNAS_A"], width=0.25), tmp_path / "net.pt")
    result = cli("export", str(path), "--width", "0.5", "--onnx", str(tmp_path / "m.onnx"))
    assert result.exit_code == 2 and "already fixes the network's build arguments" in result.stderr
