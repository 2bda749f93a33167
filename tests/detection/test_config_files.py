"""Detector config files: YAML and JSON configs are data and can run no code; Python configs are code, and
every broken file is one error line naming the file (and the line)."""

import json

import pytest
import torch
import yaml
from mmengine.config import Config

from dmc.detection.config_files import load_config
from dmc.detection.runner import build_runner
from dmc.errors import InvalidInputError


def _one_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    return result.stderr


def test_yaml_tags_never_run(cli, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f"model: !!python/object/apply:os.system ['touch {marker}']\nwork_dir: {tmp_path}/w\n")
    with pytest.raises(InvalidInputError, match="evil.yaml: line 1, column 8: a Python tag in a YAML config"):
        load_config(path)
    assert "evil.yaml" in _one_line(cli("detect", "train", str(path)))
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
@pytest.mark.parametrize("key, value, problem", [
    ("custom_hooks", [{"type": "os.system", "command": "touch {marker}"}], "'os.system' is not a registered type"),
    ("custom_hooks", [{"type": "subprocess", "args": "x"}], "'subprocess' is not a registered type"),
    ("optim_wrapper", {"type": "OptimWrapper", "constructor": "builtins.exec"}, "is not a registered type"),
    ("model", {"type": "mmdet.RetinaNet", "_scope_": "os"}, "unknown scope 'os'"),
    ("model", {"type": "RetinaNet", "motion": {"type": "CameraMotionCompensation",
                                               "warp_mode": "__import__('os').system('touch {marker}')"}},
     "is not a warp_mode"),
    ("custom_imports", {"imports": ["os"]}, "may import only dmc.detection modules"),
    ("_base_", "other.py", "cannot inherit"),
])
def test_data_configs_cannot_reach_code(cli, tmp_path, suffix, key, value, problem):
    marker = tmp_path / "pwned"
    data = {"work_dir": str(tmp_path / "w"), key: json.loads(json.dumps(value).replace("{marker}", str(marker)))}
    path = tmp_path / f"cfg{suffix}"
    path.write_text(json.dumps(data) if suffix == ".json" else yaml.safe_dump(data))
    with pytest.raises(InvalidInputError, match=problem):
        load_config(path)
    assert problem in _one_line(cli("detect", "train", str(path)))
    assert not marker.exists()


def test_a_data_config_of_registered_types_trains(cli, detector_config, tmp_path):
    python_config = Config.fromfile(str(detector_config(tmp_path)))
    python_config.work_dir = str(tmp_path / "yaml-work")
    path = tmp_path / "retinanet_dmc.yaml"
    python_config.dump(str(path))  # mmengine's YAML: tuples as !!python/tuple, data all the same
    assert "!!python/tuple" in path.read_text()
    config = load_config(path)
    assert config.model.bbox_head.anchor_generator.strides == [8, 16, 32, 64, 128]
    assert config.train_dataloader.dataset.pipeline[2].scale == (64, 64)
    result = cli("detect", "train", str(path))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "yaml-work" / "epoch_1.pth").is_file()


@pytest.mark.parametrize("name, text, problem", [
    ("broken.py", "model = dict(type='RetinaNet')\n\nx = = 1\n", "broken.py: line 3: Python syntax error"),
    ("raises.py", "a = 1\nb = undefined_name\n", "raises.py: line 2: the config raised NameError"),
    ("broken.yaml", "model:\n  type: RetinaNet\n   bad: [1\n", "broken.yaml: line 3, column 7: YAML syntax error"),
    ("broken.json", '{"model": {"type": "RetinaNet",}}', "broken.json: invalid JSON at line 1, column 32"),
    ("list.yaml", "- 1\n- 2\n", "list.yaml: expected a mapping"),
    ("latin1.py", "# caf\xe9\nmodel = 1\n", "latin1.py: not a text file"),
    ("config.txt", "model = 1\n", "a config is a .py, .yaml, .yml or .json file"),
])
def test_broken_configs_are_one_line_naming_file_and_line(cli, tmp_path, name, text, problem):
    path = tmp_path / name
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(InvalidInputError) as info:
        load_config(path)
    assert problem in str(info.value)
    assert problem in _one_line(cli("detect", "train", str(path)))


def test_a_config_inside_its_own_work_dir_is_not_overwritten(cli, detector_config, tmp_path):
    path = detector_config(tmp_path)
    inside = tmp_path / "work" / path.name
    inside.parent.mkdir()
    inside.write_text(path.read_text() + "# the user's notes\n")
    with pytest.raises(InvalidInputError, match="lies in its own work_dir") as info:
        build_runner(inside, work_dir=tmp_path / "work")
    assert info.value.hint == "move the config out of the work_dir, or pass work_dir"
    message = _one_line(cli("detect", "train", str(inside), "--work-dir", str(tmp_path / "work")))
    assert "lies in its own work_dir" in message and "(hint: move the config out of the work_dir, or pass --work-dir)" \
        in message
    assert inside.read_text().endswith("# the user's notes\n")


def test_a_launcher_without_its_processes_names_the_setting(cli, detector_config, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # on GPUs mmengine's launcher takes over
    path = detector_config(tmp_path)
    with pytest.raises(InvalidInputError, match="^launcher pytorch: this process was not started by") as info:
        build_runner(path, launcher="pytorch")
    assert info.value.hint == "run it under torchrun (or srun), or use launcher none"
    message = _one_line(cli("detect", "train", str(path), "--launcher", "pytorch"))
    assert message.startswith("error: --launcher pytorch: this process") and "or use --launcher none)" in message


def test_help_says_python_configs_are_code(cli):
    for args in (["detect", "--help"], ["detect", "train", "--help"]):
        result = cli(*args)
        text = " ".join(result.output.replace("│", " ").split())
        assert result.exit_code == 0 and "code" in text and "configs you trust" in text


def test_yaml_configs_refuse_duplicate_keys_like_every_dmc_yaml_file(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("work_dir: a\nmodel: {type: RetinaNet}\nwork_dir: b\n")
    with pytest.raises(InvalidInputError, match="twice.yaml: line 3, column 1: duplicate key 'work_dir'"):
        load_config(path)
    tuples = tmp_path / "tuples.yaml"
    tuples.write_text("scale: !!python/tuple [128, 96]\n")
    assert load_config(tuples).scale == (128, 96)  # mmengine's !!python/tuple stays data


def test_a_yaml_alias_bomb_is_refused_before_the_config_is_walked(cli, tmp_path):
    """Each level lists the one before twice: 2**60 type-less dicts, which the check for `type` names walked."""
    levels = ["l0: &l0 [{a: 1}, {a: 1}]"] + [f"l{i}: &l{i} [*l{i - 1}, *l{i - 1}]" for i in range(1, 60)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join([f"work_dir: {tmp_path}/w", *levels]) + "\n")
    with pytest.raises(InvalidInputError,
                       match="bomb.yaml: line .*: more than 100000 values once its aliases are expanded"):
        load_config(path)
    assert "an alias bomb" in _one_line(cli("detect", "train", str(path)))
