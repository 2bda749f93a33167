"""ONNX export with its parity proof: published genotypes, NB201, feature maps, dynamic batch, refusals."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from dmc.compiler import build_network, save_network
from dmc.compiler.source import network_from_source
from dmc.errors import InvalidInputError
from dmc.exporters.onnx import export_onnx
from dmc.families.cell.genotype import Genotype
from dmc.genotype import genotype_from_dict, published_genotypes

PUBLISHED = published_genotypes()
DETERMINISTIC = sorted(name for name, g in PUBLISHED.items() if g.deterministic and g.kind != "chain")
"""Cell genotypes; chain networks are exported in test_onnx_chain.py."""
NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_every_published_genotype_exports_with_parity(name, tmp_path):
    network = build_network(PUBLISHED[name], channels=4, layers=3)
    report = export_onnx(network, tmp_path / "m.onnx", runs=1)
    assert report["passed"] and report["parity"]["max_abs_error"] <= 1e-4
    assert report["parity"]["batches"] == [2, 1, 7]
    assert json.loads((tmp_path / "m.onnx.json").read_text())["passed"] is True


def test_nb201_network_exports_with_parity(tmp_path):
    network = build_network(Genotype.from_nb201_string(NB201), channels=8, layers=1)
    assert export_onnx(network, tmp_path / "nb.onnx")["passed"]


def test_feature_outputs_and_metadata(tmp_path):
    network = build_network(PUBLISHED["DARTS_V2"], channels=4, layers=5, num_classes=7)
    report = export_onnx(network, tmp_path / "f.onnx", features=[1, 2, 3], mean=(0.5,) * 3, std=(0.25,) * 3)
    assert report["passed"] and report["outputs"] == ["features_1_stride1", "features_2_stride2", "features_3_stride4"]
    model = onnx.load(str(tmp_path / "f.onnx"))
    meta = {p.key: p.value for p in model.metadata_props}
    assert genotype_from_dict(json.loads(meta["dmc.genotype"])) == PUBLISHED["DARTS_V2"]
    assert meta["dmc.input_size"] == "32" and json.loads(meta["dmc.normalization"])["std"] == [0.25] * 3
    session = ort.InferenceSession(str(tmp_path / "f.onnx"), providers=["CPUExecutionProvider"])
    outs = session.run(None, {"input": np.random.randn(3, 3, 32, 32).astype(np.float32)})
    assert [o.shape for o in outs] == [(3, info["num_chs"], 32 // info["reduction"], 32 // info["reduction"])
                                       for info in network.feature_info[1:]]
    with pytest.raises(InvalidInputError, match="out of range"):
        export_onnx(network, tmp_path / "g.onnx", features=[9])


def test_static_batch_fixes_the_batch(tmp_path):
    network = build_network(PUBLISHED["DARTS_V2"], channels=4, layers=3)
    report = export_onnx(network, tmp_path / "s.onnx", dynamic_batch=False)
    assert report["parity"]["batches"] == [2] and report["input"]["shape"][0] == 2
    session = ort.InferenceSession(str(tmp_path / "s.onnx"), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception, match=r"(?s)Got invalid dimensions for input: input .* index: 0 Got: 5 Expected: 2"):
        session.run(None, {"input": np.zeros((5, 3, 32, 32), np.float32)})


def test_noise_genotypes_are_refused_unless_allowed(tmp_path):
    network = build_network(PUBLISHED["cifar10_s4_0"], channels=4, layers=3)
    with pytest.raises(InvalidInputError, match="'noise' ops") as info:
        export_onnx(network, tmp_path / "n.onnx")
    assert not (tmp_path / "n.onnx").exists()
    assert info.value.hint.startswith("pass allow_random to export it anyway")
    assert "(hint: pass --allow-random to export it anyway" in info.value.cli_text()
    report = export_onnx(network, tmp_path / "n.onnx", allow_random=True)
    assert report["parity"] is None and report["onnx_checker"].startswith("passed")


def test_cli_export_of_a_trained_checkpoint_uses_its_data_settings(cli, tmp_path):
    from dmc.train import TrainConfig, train

    train(PUBLISHED["DARTS_V2"], TrainConfig.for_dataset("digits", epochs=1, channels=4, layers=3,
                                                          batch_size=256), tmp_path / "run")
    result = cli("export", str(tmp_path / "run" / "best.pt"), "--onnx", str(tmp_path / "m.onnx"))
    assert result.exit_code == 0, result.output
    assert "max abs error" in result.stdout and ": ok" in result.stdout
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    mean = json.loads(meta["dmc.normalization"])["mean"]
    assert mean[0] == pytest.approx(0.3054, abs=1e-3)  # digits' training mean, not a default


def test_cli_export_errors(cli, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    result = cli("export", str(bad), "--onnx", str(tmp_path / "x.onnx"))
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    network = build_network(PUBLISHED["DARTS_V2"], channels=4, layers=3)
    path = save_network(network, tmp_path / "net.pt")
    result = cli("export", str(path), "--onnx", str(tmp_path / "x.onnx"), "--channels", "8")
    assert result.exit_code == 2 and "already fixes the network's build arguments" in result.stderr
    result = cli("export", str(path), "--onnx", str(tmp_path / "x.onnx"), "--classes", "5", "--layers", "4")
    assert "(hint: drop --layers, --num-classes)" in result.stderr
    with pytest.raises(InvalidInputError, match=r"\(hint: drop num_classes, layers\)"):
        network_from_source(path, num_classes=5, layers=4)
    state = torch.load(path, weights_only=True)
    state["genotype"] = PUBLISHED["cifar10_s0_0"].to_dict()  # weights of another architecture
    torch.save(state, tmp_path / "mismatch.pt")
    result = cli("export", str(tmp_path / "mismatch.pt"), "--onnx", str(tmp_path / "x.onnx"))
    assert result.exit_code == 2 and "do not fit the network" in result.stderr
    result = cli("export", "cifar10_s4_0", "--channels", "4", "--layers", "3", "--onnx", str(tmp_path / "x.onnx"))
    assert result.exit_code == 2 and "--allow-random" in result.stderr
    assert not (tmp_path / "x.onnx").exists()


def test_a_parity_failure_exits_non_zero_and_keeps_the_report(tmp_path):
    from dmc.exporters.onnx import ParityError

    network = build_network(PUBLISHED["DARTS_V2"], channels=4, layers=3)
    with pytest.raises(ParityError, match="onnxruntime differs from PyTorch") as info:
        export_onnx(network, tmp_path / "p.onnx", runs=1, tolerance=-1.0)  # nothing can pass
    assert info.value.exit_code == 1
    report = json.loads((tmp_path / "p.onnx.json").read_text())
    assert report["passed"] is False and report["parity"]["max_abs_error"] >= 0
