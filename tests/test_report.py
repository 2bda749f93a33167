"""dmc report: every stage's numbers and pictures, read from a demo folder; missing stages say so."""

import json

import pytest

from dmc.genotype import load_genotype
from dmc.report import skip_connections, write_report
from dmc.search import SearchConfig, search
from dmc.train import TrainConfig, train

TINY = dict(space="tiny", dataset="digits", epochs=1, batch_size=256, channels=4, layers=3)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A demo folder as scripts/demo.sh leaves it, with tiny settings and a stand-in detector log."""
    from dmc.exporters.onnx import export_onnx

    root = tmp_path_factory.mktemp("demo")
    minus = search(SearchConfig(**TINY), root / "search-darts-minus")
    search(SearchConfig(beta0=0.0, **TINY), root / "search-darts")
    train(minus.genotype, TrainConfig.for_dataset("digits", epochs=1, channels=4, layers=3, batch_size=256),
          root / "train")
    from dmc.compiler.source import network_from_source

    export_onnx(network_from_source(root / "train" / "best.pt").network, root / "darts-minus.onnx", input_size=32)
    log = root / "detect" / "20260101_000000" / "vis_data" / "scalars.json"
    log.parent.mkdir(parents=True)
    log.write_text("\n".join(json.dumps(r) for r in [
        {"loss": 1.2, "epoch": 1, "step": 30},
        {"coco/bbox_mAP": 0.101, "coco/bbox_mAP_50": 0.205, "step": 1},
        {"coco/bbox_mAP": 0.162, "coco/bbox_mAP_50": 0.227, "step": 2},
    ]) + "\n")
    return root


def test_report_has_every_stage(demo):
    text = write_report(demo).read_text()
    minus = load_genotype(demo / "search-darts-minus" / "genotype.json")
    darts = load_genotype(demo / "search-darts" / "genotype.json")
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in text.splitlines() if line.startswith("| DARTS")}
    assert rows["DARTS- (auxiliary skip, beta 1 -> 0)"][2:] == [str(skip_connections(minus))] * 2 + ["1.00"]
    assert rows["DARTS (beta0 = 0)"][2:] == [str(skip_connections(darts))] * 2 + ["0.00"]
    result = json.loads((demo / "train" / "result.json").read_text())
    assert f"| {result['test_acc']:.3f} |" in text and f"{result['parameters']:,}" in text
    assert "onnx.checker: passed (full check)" in text and ": passed" in text and "latency at batch 1" in text
    assert "bbox mAP@0.5 **0.227**, mAP 0.162" in text
    for name in ("darts-minus", "darts"):
        for picture in ("genotype_normal.png", "alphas_normal.png", "beta.png"):
            assert f"viz/{name}/{picture}" in text
            assert (demo / "viz" / name / picture).is_file()


def test_missing_stages_are_reported_not_invented(tmp_path, cli):
    text = write_report(tmp_path).read_text()
    assert "Training run missing." in text and "ONNX export missing." in text
    assert "Detector training or its evaluation missing." in text
    result = cli("report", str(tmp_path / "nope"))
    assert result.exit_code == 2 and "no such folder" in result.output
