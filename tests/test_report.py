"""dmc report: every stage's numbers and pictures, read from a demo folder; missing stages say so."""

import json

import pytest

from dmc.errors import InvalidInputError
from dmc.genotype import load_genotype
from dmc.report import skip_connections, write_report
from dmc.search import SearchConfig, search
from dmc.train import TrainConfig, train

TINY = dict(space="tiny", dataset="digits", epochs=1, batch_size=256, channels=4, layers=3)
MANIFEST = {
    "version": 1,
    "searches": [{"name": "darts-minus", "title": "DARTS- (auxiliary skip, beta 1 -> 0)", "run": "search-darts-minus"},
                 {"name": "darts", "title": "DARTS (beta0 = 0)", "run": "search-darts"}],
    "train_run": "train",
    "onnx_report": "darts-minus.onnx.json",
    "detector_scalars": "detect/*/vis_data/scalars.json",
    "detector_export": "detect.onnx.json",
}
DETECTOR_EXPORT = {  # the keys `dmc detect export` writes that the report reads (tests/detection test the export)
    "model": "detect.onnx", "passed": True,
    "parity": {"images": 60, "detections": 3540, "max_box_abs_diff": 1.5e-05, "max_score_abs_diff": 5.1e-07},
    "map": {"mmdet": 0.226, "onnxruntime": 0.226},
    "latency_ms_batch1": {"onnxruntime_ms": 4.0, "pytorch_ms": 13.0},
    "int8": {"model": "detect.int8.onnx", "map": {"fp32": 0.226, "int8": 0.219}, "latency_ms": {"speedup": 1.31}},
}


def _manifest(folder, manifest=MANIFEST):
    """Writes ``folder/manifest.json`` (``manifest`` as JSON, or as is when it is text); returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    return folder


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A demo folder as scripts/demo.sh leaves it (manifest first), with tiny settings and a stand-in detector log."""
    from dmc.exporters.onnx import export_onnx

    root = _manifest(tmp_path_factory.mktemp("demo"))
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
    (root / "detect.onnx.json").write_text(json.dumps(DETECTOR_EXPORT))
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
    assert "on 60 validation images: 3540 detections paired, max box difference 1.5e-05 px" in text
    assert "COCO bbox mAP: mmdet **0.226**, onnxruntime **0.226**" in text
    assert "onnxruntime 4.00 ms, PyTorch (mmdet `predict`) 13.00 ms" in text
    assert "mAP 0.219 against fp32 0.226, 1.31x as fast" in text
    for name in ("darts-minus", "darts"):
        for picture in ("genotype_normal.png", "alphas_normal.png", "beta.png"):
            assert f"viz/{name}/{picture}" in text
            assert (demo / "viz" / name / picture).is_file()


def test_missing_stages_are_reported_not_invented(tmp_path, cli):
    text = write_report(_manifest(tmp_path)).read_text()
    assert "| DARTS- (auxiliary skip, beta 1 -> 0) | missing |" in text and "| DARTS (beta0 = 0) | missing |" in text
    assert "Training run missing." in text and "ONNX export missing." in text
    assert "Detector training or its evaluation missing." in text and "Detector export missing." in text
    result = cli("report", str(tmp_path / "nope"))
    assert result.exit_code == 2 and "no such folder" in result.output


def test_a_stage_the_manifest_leaves_out_is_missing(demo, tmp_path):
    """A manifest naming only the training run: the other stages are missing, though their files lie there."""
    text = write_report(_manifest(tmp_path / "partial", {"version": 1, "train_run": str(demo / "train")})).read_text()
    assert "Search runs missing." in text and "ONNX export missing." in text
    assert "Detector training or its evaluation missing." in text and "Training run missing." not in text


@pytest.mark.parametrize("manifest, fragment", [
    (None, "manifest.json: no demo manifest"),
    ("{oops", "manifest.json: invalid JSON at line 1"),
    ("[]", "manifest.json: is a list, not a JSON object"),
    ({"searches": []}, "no 'version' (this dmc reads manifest version 1)"),
    ({"version": 2}, "'version' is 2"),
    ({"version": 1, "train_run": 3}, "'train_run' is a number, not a non-empty string"),
    ({"version": 1, "searches": {"darts": "search-darts"}}, "'searches' is an object, not a list"),
    ({"version": 1, "training": "train"}, "unknown key 'training'"),
    ({"version": 1, "searches": [{"name": "d", "run": "s"}]}, "searches[0]: no 'title'"),
    ({"version": 1, "searches": [{"name": "../d", "title": "D", "run": "s"}]}, "is not a plain folder name"),
    ({"version": 1, "searches": [{"name": "d", "title": "D", "run": "s", "beta0": 0}]}, "unknown key 'beta0'"),
])
def test_a_bad_manifest_is_one_error_naming_it(tmp_path, cli, manifest, fragment):
    folder = _manifest(tmp_path, manifest) if manifest is not None else tmp_path
    with pytest.raises(InvalidInputError) as error:
        write_report(folder)
    assert str(tmp_path / "manifest.json") in str(error.value) and fragment in str(error.value)
    assert "hint:" in str(error.value)
    result = cli("report", str(folder))
    assert result.exit_code == 2 and result.stderr.splitlines() == [f"error: {error.value}"]
    assert not (tmp_path / "report.md").exists()


def test_stage_files_without_the_reported_numbers_are_one_error(tmp_path):
    """Valid JSON that lacks a number the report shows names the file and the key (no KeyError)."""
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "result.json").write_text('{"test_acc": 0.9}')
    _manifest(tmp_path, {"version": 1, "train_run": "train"})
    with pytest.raises(InvalidInputError, match=r"train/result.json: no 'best_test_acc'"):
        write_report(tmp_path)
    (tmp_path / "m.onnx.json").write_text('{"model": "m.onnx", "opset": "17", "tolerance": 1e-4}')
    _manifest(tmp_path, {"version": 1, "onnx_report": "m.onnx.json"})
    with pytest.raises(InvalidInputError, match=r"m.onnx.json: a str for 'opset'"):
        write_report(tmp_path)
    (tmp_path / "scalars.json").write_text('{"loss": 1}\n[1, 2]\n{"coco/bbox_mAP_50": 0.2}\n')
    _manifest(tmp_path, {"version": 1, "detector_scalars": "scalars.json"})
    with pytest.raises(InvalidInputError, match=r"scalars.json: line 3: no 'coco/bbox_mAP'"):
        write_report(tmp_path)
    (tmp_path / "d.onnx.json").write_text(json.dumps({**DETECTOR_EXPORT, "map": {"mmdet": "high"}}))
    _manifest(tmp_path, {"version": 1, "detector_export": "d.onnx.json"})
    with pytest.raises(InvalidInputError, match=r"d.onnx.json: map: a str for 'mmdet'"):
        write_report(tmp_path)
