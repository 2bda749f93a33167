"""`dmc detect config` refuses counts, sizes and schedules that cannot train, and outputs that are inputs."""

import pytest
from dmc.detection.config import DetectionConfig, retinanet_config

from dmc.compiler import build_network, save_network
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
