"""`dmc detect config` refuses counts, sizes and schedules that cannot train, outputs that are inputs, and settings
that would put code into the config it writes."""

import pytest

from dmc.compiler import build_network, save_network
from dmc.detection.coco import check_config_datasets
from dmc.detection.config import DetectionConfig, retinanet_config, write_retinanet_config
from dmc.detection.config_files import load_config
from dmc.errors import InvalidInputError
from dmc.genotype import published_genotypes


def _args(demo, out):
    return ["detect", "config", "DARTS_V2", "-o", str(out), "--data-root", str(demo),
            "--train-ann", "annotations/instances_train.json", "--val-ann", "annotations/instances_val.json",
            "--train-img", "train/", "--val-img", "val/", "--channels", "4", "--layers", "3"]


@pytest.mark.parametrize("option, value, problem", [
    ("--epochs", "0", "epochs 0 must be an integer >= 1"),
    ("--epochs", "-3", "epochs -3 must be an integer >= 1"),
    ("--batch-size", "0", "batch_size 0 must be an integer >= 1"),
    ("--neck-channels", "0", "neck_channels 0 must be an integer >= 1"),
    ("--channels", "0", "channels 0 must be an integer >= 1"),
    ("--warmup-iters", "-1", "warmup_iters -1 must be an integer >= 0"),
    ("--num-workers", "-2", "num_workers -2 must be an integer >= 0"),
    ("--image-scale", "0,64", "image_scale (0, 64) must be two integers >= 1"),
    ("--lr", "0", "lr 0.0 must be a number > 0"),
    ("--lr", "nan", "lr nan must be a number > 0"),
    ("--grad-clip", "-1", "grad_clip -1.0 must be a number > 0"),
    ("--milestones", "a,b", "--milestones 'a,b' is not a comma-separated list of epochs"),
    ("--milestones", "8,40", "milestones (8, 40) must be epochs from 1 to 12"),
    ("--milestones", "0", "milestones (0,) must be epochs from 1 to 12"),
])
def test_invalid_settings_are_one_line(cli, demo, tmp_path, option, value, problem):
    out = tmp_path / "cfg.py"
    args = _args(demo, out)
    if option == "--channels":
        args = args[:args.index("--channels")] + args[args.index("--channels") + 2:]
    result = cli(*args, option, value)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert problem in result.stderr
    assert not out.exists()


def test_python_callers_get_the_same_checks():
    with pytest.raises(InvalidInputError, match="epochs 0"):
        retinanet_config("DARTS_V2", DetectionConfig(epochs=0, milestones=()))


def test_an_output_that_is_an_input_is_refused(cli, demo, tmp_path):
    network = save_network(build_network(published_genotypes()["DARTS_V2"], channels=4, layers=3), tmp_path / "net.pt")
    before = network.read_bytes()
    args = _args(demo, network)
    args[2] = str(network)
    args = args[:args.index("--channels")]
    result = cli(*args)
    assert result.exit_code == 2 and "would overwrite an input" in result.stderr, result.output
    assert network.read_bytes() == before
    ann = demo / "annotations" / "instances_train.json"
    before = ann.read_bytes()
    result = cli(*_args(demo, ann))
    assert result.exit_code == 2 and "would overwrite an input" in result.stderr, result.output
    assert ann.read_bytes() == before


def _demo_config(demo, **settings) -> DetectionConfig:
    return DetectionConfig(data_root=str(demo), train_ann="annotations/instances_train.json",
                           val_ann="annotations/instances_val.json", train_img="train/", val_img="val/",
                           channels=4, layers=3, **settings)


def test_a_source_name_with_newlines_stays_text(demo, tmp_path, monkeypatch):
    """The source's name is written into the config, which `dmc detect train` runs: it must stay a comment."""
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "g\n__import__('pathlib').Path('pwned').touch()\n#.json"
    published_genotypes()["DARTS_V2"].save(source)
    out = write_retinanet_config(str(source), tmp_path / "cfg.py", _demo_config(demo))
    config = load_config(out)
    assert not (tmp_path / "pwned").exists()
    assert config.model.backbone.genotype == str(source)
    assert repr(str(source)) in out.read_text().splitlines()[0]


class _Sneaky(str):
    def __repr__(self):
        return "__import__('pathlib').Path('pwned').touch()"


@pytest.mark.parametrize("settings, problem", [
    ({"extra": {"x = 1\nimport os\ny": 1}}, "setting name 'x = 1\\nimport os\\ny' is not a Python identifier"),
    ({"extra": {"note": _Sneaky("hi")}}, "note: a _Sneaky is not plain data"),
    ({"classes": [_Sneaky("cat")]}, "a _Sneaky is not plain data"),
    ({"extra": {"note": {"a": float("nan")}}}, "note.a: nan is not a finite number"),
    ({"extra": {"custom": {"a' + str(__import__('os')) + '": 1}}}, "holds a quote, a backslash or a control"),
    ({"work_dir": "work/{{ fileDirname }}"}, "contains '{{', which mmengine would substitute"),
])
def test_settings_that_are_not_plain_data_are_refused(demo, tmp_path, monkeypatch, settings, problem):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInputError) as info:
        write_retinanet_config("DARTS_V2", tmp_path / "cfg.py", _demo_config(demo, **settings))
    assert problem in str(info.value)
    assert not (tmp_path / "cfg.py").exists() and not (tmp_path / "pwned").exists()


def test_config_finds_the_demo_sets_files_and_checks_its_paths(cli, demo, tmp_path):
    """`dmc detect config --data-root DEMO` with no other data option writes a config that `detect train` accepts;
    data that is not there is refused when the config is written, not when it is trained."""
    out = tmp_path / "cfg.py"
    result = cli("detect", "config", "DARTS_V2", "-o", str(out), "--data-root", str(demo), "--channels", "4",
                 "--layers", "3")
    assert result.exit_code == 0, result.output
    config = load_config(out)
    check_config_datasets(config, ("train_dataloader", "val_dataloader"))
    assert config.train_dataloader.dataset.ann_file == "annotations/instances_train.json"
    assert config.val_dataloader.dataset.data_prefix.img == "val/"
    for args, problem in [(["--data-root", str(tmp_path / "nowhere")], f"data root {tmp_path / 'nowhere'}: no such "
                                                                       "folder"),
                          (["--data-root", str(demo), "--val-ann", "annotations/val.json"],
                           f"{demo / 'annotations' / 'val.json'}: no such annotation file (val ann)"),
                          (["--data-root", str(demo), "--train-img", "images/"],
                           f"{demo / 'images'}: no such image folder (train img)")]:
        out.unlink(missing_ok=True)
        result = cli("detect", "config", "DARTS_V2", "-o", str(out), "--channels", "4", "--layers", "3", *args)
        assert result.exit_code == 2 and result.stderr.count("\n") == 1 and problem in result.stderr, result.output
        assert "dmc data detection-demo" in result.stderr and not out.exists()
        assert "(hint: point --data-root at" in result.stderr and "--val-img at its files)" in result.stderr
    with pytest.raises(InvalidInputError, match="no such folder") as info:
        write_retinanet_config("DARTS_V2", out, DetectionConfig(data_root=str(tmp_path / "nowhere")))
    assert info.value.hint.startswith("point data_root at a COCO-format dataset")
    assert info.value.hint.endswith("and train_ann, val_ann, train_img, val_img at its files")
