"""`dmc detect test` and `--resume-from` accept only checkpoints of the config's detector: a dmc training or
search checkpoint, a foreign or corrupt file is one error line, never a randomly initialised detector."""

import pytest
import torch

from dmc.compiler import build_network, save_network
from dmc.detection.runner import build_runner, evaluate
from dmc.errors import InvalidInputError
from dmc.genotype import published_genotypes


def _bad_checkpoints(tmp_path):
    network = build_network(published_genotypes()["DARTS_V2"], channels=4, layers=3)
    save_network(network, tmp_path / "network.pt")
    torch.save({"format": "dmc.search-checkpoint", "version": 1, "epoch": 1}, tmp_path / "last.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "random.pt")
    torch.save({"meta": {"epoch": 1, "iter": 2}, "state_dict": {"linear.weight": torch.zeros(1, 2)}},
               tmp_path / "other_model.pth")
    (tmp_path / "corrupt.pth").write_bytes(b"PK\x03\x04 truncated")
    return {
        "network.pt": "a dmc.network file, not a detector checkpoint",
        "last.pt": "a dmc.search-checkpoint file, not a detector checkpoint",
        "random.pt": "not an mmengine checkpoint",
        "other_model.pth": "not a checkpoint of this config's model",
        "corrupt.pth": "corrupt or unreadable checkpoint",
    }


def test_wrong_kinds_of_checkpoint_are_refused_by_detect_test(cli, detector_config, tmp_path):
    path = detector_config(tmp_path)
    for name, problem in _bad_checkpoints(tmp_path).items():
        with pytest.raises(InvalidInputError, match=problem):
            evaluate(path, tmp_path / name)
        result = cli("detect", "test", str(path), str(tmp_path / name))
        assert result.exit_code == 2 and result.stderr.count("\n") == 1, (name, result.output)
        assert problem in result.stderr and "mAP" not in result.stdout


def test_a_checkpoint_array_that_would_crash_numpy_is_one_error_line(dmc_process, detector_config, tmp_path,
                                                                      hostile_array):
    path = detector_config(tmp_path)
    checkpoint = tmp_path / "epoch_1.pth"
    torch.save({"meta": {"epoch": 1, "iter": 2, "history": hostile_array}, "state_dict": {}}, checkpoint)
    for args in (["detect", "test", str(path), str(checkpoint)],
                 ["detect", "train", str(path), "--resume-from", str(checkpoint)]):
        result = dmc_process(*args)
        assert result.returncode == 2, (args, result.returncode, result.stderr[-2000:])
        assert result.stderr.count("\n") == 1 and "epoch_1.pth: corrupt or unreadable checkpoint" in result.stderr
    # the latest checkpoint of a work_dir, found by mmengine when resuming, is read the same way
    (tmp_path / "work").mkdir()
    torch.save({"meta": {"epoch": 1, "iter": 2, "history": hostile_array}, "state_dict": {}},
               tmp_path / "work" / "epoch_1.pth")
    (tmp_path / "work" / "last_checkpoint").write_text(str(tmp_path / "work" / "epoch_1.pth"))
    result = dmc_process("detect", "train", str(path), "--resume")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, (result.returncode, result.stderr[-2000:])
    assert "epoch_1.pth: corrupt or unreadable checkpoint" in result.stderr


def test_wrong_kinds_of_checkpoint_are_refused_for_resuming(cli, detector_config, tmp_path):
    path = detector_config(tmp_path)
    for name, problem in _bad_checkpoints(tmp_path).items():
        with pytest.raises(InvalidInputError, match=problem):
            build_runner(path, resume=tmp_path / name)
    result = cli("detect", "train", str(path), "--resume-from", str(tmp_path / "last.pt"))
    assert result.exit_code == 2 and "not a detector checkpoint" in result.stderr, result.output
    assert not (tmp_path / "work" / "epoch_1.pth").exists()
