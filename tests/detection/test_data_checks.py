"""COCO annotation files are checked before training: one line naming the file and the problem."""

import copy
import json

import pytest

from dmc.detection.coco import check_coco, read_coco
from dmc.detection.runner import build_runner
from dmc.errors import InvalidInputError


def _coco(demo) -> dict:
    return json.loads((demo / "annotations" / "instances_train.json").read_text())


def _broken(data: dict, how: str) -> dict | str:
    data = copy.deepcopy(data)
    if how == "negative width":
        data["annotations"][1]["bbox"][2] = -4
    elif how == "unknown category":
        data["annotations"][0]["category_id"] = 99
    elif how == "unknown image":
        data["annotations"][0]["image_id"] = 1000
    elif how == "bbox of text":
        data["annotations"][0]["bbox"] = "1 2 3 4"
    elif how == "bbox of three":
        data["annotations"][0]["bbox"] = [1, 2, 3]
    elif how == "nan bbox":
        data["annotations"][0]["bbox"][0] = float("nan")
    elif how == "no images":
        del data["images"]
    elif how == "categories not a list":
        data["categories"] = {"1": "zero"}
    elif how == "image without file":
        del data["images"][0]["file_name"]
    elif how == "string id":
        data["images"][0]["id"] = "1"
    elif how == "duplicate id":
        data["images"][1]["id"] = data["images"][0]["id"]
    elif how == "list image_id":
        data["annotations"][0]["image_id"] = [1]
    elif how == "not an object":
        return "[1, 2, 3]"
    elif how == "not json":
        return '{"images": [}'
    return data


CASES = {
    "negative width": r"annotations\[1\]: bbox .* has a negative width or height",
    "unknown category": r"annotations\[0\]: category_id 99 is not one of the file's categories",
    "unknown image": r"annotations\[0\]: image_id 1000 is not the id of an image",
    "bbox of text": r"annotations\[0\]: bbox '1 2 3 4' is not four finite numbers",
    "bbox of three": r"annotations\[0\]: bbox \[1, 2, 3\] is not four",
    "nan bbox": r"annotations\[0\]: bbox \[nan, .* is not four finite numbers",
    "no images": r"images: missing or not a list",
    "categories not a list": r"categories: missing or not a list",
    "image without file": r"images\[0\]: file_name is missing",
    "string id": r"images\[0\]: missing an integer id",
    "duplicate id": r"images\[1\]: id 1 is used twice",
    "list image_id": r"annotations\[0\]: image_id \[1\] is not the id",
    "not an object": r"expected a JSON object",
    "not json": r"invalid JSON at line 1, column 13",
}


@pytest.mark.parametrize("how", sorted(CASES))
def test_malformed_annotation_files_name_file_and_problem(demo, tmp_path, how):
    broken = _broken(_coco(demo), how)
    path = tmp_path / "instances.json"
    path.write_text(broken if isinstance(broken, str) else json.dumps(broken))
    with pytest.raises(InvalidInputError, match=f"instances.json: .*{CASES[how]}"):
        read_coco(path)


def test_images_missing_on_disk_are_named(demo, tmp_path):
    assert len(check_coco(demo / "annotations" / "instances_train.json", demo / "train")["images"]) == 8
    with pytest.raises(InvalidInputError, match=r"instances_train.json: image '00000.png' \(id 1\) is not in"):
        check_coco(demo / "annotations" / "instances_train.json", tmp_path)


def _copy_of_demo(demo, tmp_path):
    data = tmp_path / "data"
    for split in ("train", "val", "annotations"):
        (data / split).mkdir(parents=True)
        for f in (demo / split).iterdir():
            (data / split / f.name).write_bytes(f.read_bytes())
    return data


@pytest.mark.parametrize("damage", ["negative width", "missing image", "not json"])
def test_training_refuses_bad_data_before_it_starts(cli, demo, detector_config, tmp_path, damage):
    data = _copy_of_demo(demo, tmp_path)
    path = detector_config(tmp_path, data=data)
    ann = data / "annotations" / ("instances_val.json" if damage == "missing image" else "instances_train.json")
    if damage == "missing image":
        (data / "val" / "00003.png").unlink()
    else:
        broken = _broken(json.loads(ann.read_text()), damage)
        ann.write_text(broken if isinstance(broken, str) else json.dumps(broken))
    with pytest.raises(InvalidInputError, match=ann.name):
        build_runner(path)
    result = cli("detect", "train", str(path))
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert str(ann) in result.stderr
    assert not (tmp_path / "work").exists()  # the run never started
