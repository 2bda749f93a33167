"""scripts/demo.sh with a stand-in `dmc`: a failing stage fails the demo with its error, even the filtered one."""

import os
import subprocess
from pathlib import Path

import pytest

DEMO = Path(__file__).parents[2] / "scripts" / "demo.sh"

FAKE_DMC = """#!/usr/bin/env bash
echo "$*" >> "$DMC_CALLS"
if [ "$1 $2" = "detect train" ]; then
    echo "mmengine noise"
    [ -n "$DETECT_MAP" ] && echo "Epoch(val) [1][8/8]    coco/bbox_mAP: $DETECT_MAP  coco/bbox_mAP_50: 0.2"
    echo "more noise"
    if [ "$DETECT_STATUS" != 0 ]; then echo "error: CUDA out of memory, say"
    elif [ -n "$DETECT_MAP" ]; then echo "done: checkpoints and logs in x"; fi
    exit "$DETECT_STATUS"
fi
"""


def _demo(tmp_path, status, mAP="0.1000"):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dmc").write_text(FAKE_DMC)
    (bin_dir / "dmc").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "DMC_CALLS": str(tmp_path / "calls"),
           "DMC_DEMO_DIR": str(tmp_path / "demo"), "DETECT_STATUS": str(status), "DETECT_MAP": mAP}
    result = subprocess.run(["bash", str(DEMO)], env=env, capture_output=True, text=True, timeout=60)
    calls = (tmp_path / "calls").read_text().splitlines()
    return result, calls


def test_the_detector_stage_shows_only_its_map_lines(tmp_path):
    result, calls = _demo(tmp_path, 0)
    assert result.returncode == 0, result.stderr
    assert "coco/bbox_mAP: 0.1000" in result.stdout and "done: checkpoints" in result.stdout
    assert "noise" not in result.stdout + result.stderr
    assert calls[-1].startswith("report ")
    assert "mmengine noise" in (tmp_path / "demo" / "detect-train.log").read_text()


@pytest.mark.parametrize("status", [1, 3])
def test_a_failed_detector_run_fails_the_demo_with_its_error(tmp_path, status):
    result, calls = _demo(tmp_path, status)
    assert result.returncode == status
    assert "error: CUDA out of memory, say" in result.stderr
    assert "dmc detect train" in result.stderr and "detect-train.log" in result.stderr
    assert not any(call.startswith("report ") for call in calls)


def test_a_detector_log_without_map_fails_the_demo(tmp_path):
    result, calls = _demo(tmp_path, 0, mAP="")
    assert result.returncode == 1
    assert "printed no line matching" in result.stderr
    assert not any(call.startswith("report ") for call in calls)


def test_the_manifest_names_where_the_stages_write(tmp_path):
    """The manifest the script writes parses, and names the folders and files its stages write."""
    from dmc.demo_manifest import read_manifest

    result, calls = _demo(tmp_path, 0)
    assert result.returncode == 0, result.stderr
    demo = tmp_path / "demo"
    logs = []
    for work_dir in (demo / "detect", demo / "chain" / "detect"):
        logs.append(work_dir / "20260101_000000" / "vis_data" / "scalars.json")  # where mmengine logs
        logs[-1].parent.mkdir(parents=True)
        logs[-1].write_text("{}\n")
    manifest = read_manifest(demo)
    options = {}  # option -> the values the stages gave it
    for words in map(str.split, calls):
        for option, value in zip(words, words[1:]):
            options.setdefault(option, set()).add(value)
    chain = manifest.chain
    assert [e.name for e in manifest.searches] == ["darts-minus", "darts"] and [e.name for e in chain.searches] == [
        "chain"]
    stages = (manifest, chain)
    assert {str(e.run) for m in stages for e in m.searches} | {str(m.train_run) for m in stages} == options["--out"]
    assert options["--onnx"] == {str(path).removesuffix(".json") for m in stages
                                 for path in (m.onnx_report, m.detector_export)}
    for m, work_dir in zip(stages, (demo / "detect", demo / "chain" / "detect")):  # the one trained is exported
        assert any(call.startswith("detect export ") and f"{work_dir}/epoch_" in call
                   and f"--onnx {m.detector_export}".removesuffix(".json") in call for call in calls)
    assert options["--work-dir"] == {str(demo / "detect"), str(demo / "chain" / "detect")}
    assert (manifest.detector_scalars, chain.detector_scalars) == ((logs[0],), (logs[1],))
