"""`dmc data detection-demo`: counts and sizes are bounded, and a folder is written whole or not at all."""

import json

import pytest

from dmc.data import detection_demo
from dmc.data.detection_demo import DemoSpec, write_detection_demo
from dmc.errors import InvalidInputError


@pytest.mark.parametrize("option, value", [("--train-images", "-5"), ("--train-images", "0"),
                                           ("--val-images", "0"), ("--train-images", "1000000000"),
                                           ("--size", "8"), ("--size", "1000000")])
def test_counts_and_sizes_out_of_bounds_are_refused(cli, tmp_path, option, value):
    result = cli("data", "detection-demo", str(tmp_path / "d"), option, value)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert f"{option[2:].replace('-', '_')} {value}" in result.stderr
    assert not (tmp_path / "d").exists() and list(tmp_path.iterdir()) == []


def test_the_set_is_written_whole_into_a_new_or_empty_folder(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli("data", "detection-demo", str(tmp_path / "empty"), "--train-images", "2", "--val-images", "1",
                 "--size", "64")
    assert result.exit_code == 0, result.output
    assert "wrote 2 train and 1 val images" in result.stdout
    train = json.loads((tmp_path / "empty" / "annotations" / "instances_train.json").read_text())
    assert [i["file_name"] for i in train["images"]] == ["00000.png", "00001.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # no partial folder left beside it


def test_a_folder_with_files_is_never_written_into(tmp_path):
    (tmp_path / "d" / "train").mkdir(parents=True)
    (tmp_path / "d" / "train" / "00000.png").write_bytes(b"the user's own image")
    with pytest.raises(InvalidInputError, match="exists and is not an empty folder"):
        write_detection_demo(tmp_path / "d", DemoSpec(train_images=1, val_images=1, size=64))
    assert (tmp_path / "d" / "train" / "00000.png").read_bytes() == b"the user's own image"


def test_a_failure_midway_leaves_nothing_behind(tmp_path, monkeypatch):
    calls = []

    def failing_render(*args):
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        calls.append(1)
        return original(*args)

    original = detection_demo._render
    monkeypatch.setattr(detection_demo, "_render", failing_render)
    with pytest.raises(Exception, match="No space left on device"):
        write_detection_demo(tmp_path / "d", DemoSpec(train_images=3, val_images=1, size=64))
    assert list(tmp_path.iterdir()) == []
