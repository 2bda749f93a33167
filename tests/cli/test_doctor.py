"""`dmc doctor` on this machine's real stack, and its failure path."""

from dmc.doctor import Check


def test_doctor_is_green_on_the_project_environment(cli):
    result = cli("doctor")
    assert result.exit_code == 0, result.output
    for component in ("python", "torch", "torchvision", "onnx", "onnxruntime", "mmcv", "mmengine", "mmdet",
                      "c++ compiler", "nvcc", "cuda"):
        assert component in result.stdout
    assert "compiled ops load" in result.stdout
    assert "dmc is ready" in result.stdout


def test_doctor_fails_with_one_line_per_missing_piece(cli, monkeypatch):
    import dmc.detection.doctor as detection_doctor

    monkeypatch.setattr(detection_doctor, "checks", lambda: [
        Check("mmcv", False, "not installed", fix="build it"),
        Check("mmdet", False, "not installed", fix="install it"),
        Check("cuda", False, "no GPU", required=False),
    ])
    result = cli("doctor")
    assert result.exit_code == 1
    errors = result.stderr.strip().splitlines()
    assert errors == ["error: mmcv: not installed (fix: build it)", "error: mmdet: not installed (fix: install it)"]
