"""Training chain genotypes: built at the config's width with the skeleton's own head, exact resume, one-line
errors for cell-network settings."""

import pytest
import torch

from dmc.compiler import load_network
from dmc.data import load_dataset
from dmc.families.chain.genotype import ChainGenotype
from dmc.families.chain.macro import ChainMacro, Stage
from dmc.genotype import published_genotypes
from dmc.runfolder import read_history
from dmc.train import TrainConfig, train

TINY = ChainGenotype(("mbconv_k3_e3", "skip", "mbconv_k5_e6_se"),
                     ChainMacro((Stage(16, 2, 2), Stage(24, 1, 2)), stem_channels=8, first_block=8, head_channels=32,
                                activation="swish"))
SMALL = dict(batch_size=8, cutout=0, deterministic=True)


class _Killed(Exception):
    pass


def test_a_chain_genotype_trains_at_its_width_and_its_checkpoint_rebuilds_it(tmp_path, toy_data):
    result = train(TINY, TrainConfig.for_dataset(toy_data, epochs=2, width=0.5, **SMALL), tmp_path / "run")
    network = load_network(tmp_path / "run" / "best.pt").eval()
    assert network.genotype == TINY and network.build_args.style == "chain"
    assert network.build_args.macro.width == 0.5 and network.stem[0].out_channels == 8  # make_divisible(8 * 0.5)
    assert network.build_args.num_classes == 2 and result.parameters == network.num_parameters()
    test = load_dataset(toy_data).test
    x = torch.stack([test[i][0] for i in range(len(test))])
    y = torch.tensor([int(test[i][1]) for i in range(len(test))])
    with torch.no_grad():
        accuracy = (network(x).argmax(1) == y).float().mean().item()
    assert accuracy == pytest.approx(result.best_test_acc)


def test_an_interrupted_chain_training_resumes_to_the_uninterrupted_result(tmp_path, toy_data, monkeypatch):
    config = TrainConfig.for_dataset(toy_data, epochs=3, **SMALL)
    full = train(TINY, config, tmp_path / "full")

    def stop(kind, **info):
        if kind == "epoch_end" and info["record"]["epoch"] == 1:
            raise _Killed

    with pytest.raises(_Killed):
        train(TINY, config, tmp_path / "cut", on_event=stop)
    resumed = train(None, TrainConfig(), tmp_path / "cut", resume=True)
    assert read_history(tmp_path / "cut")[-1]["train_loss"] == read_history(tmp_path / "full")[-1]["train_loss"]
    assert resumed.test_acc == full.test_acc
    a, b = load_network(tmp_path / "full" / "last.pt"), load_network(tmp_path / "cut" / "last.pt")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name


@pytest.mark.parametrize("flag", [["--channels", "8"], ["--layers", "3"], ["--style", "cifar"], ["--auxiliary"]])
def test_cell_settings_on_a_chain_genotype_are_one_line_errors(cli, tmp_path, toy_data, flag):
    result = cli("train", "FairNAS_A", "--dataset", toy_data, "--out", str(tmp_path / "run"), *flag)
    assert result.exit_code != 0 and result.output.count("error:") == 1 and "chain" in result.output
    assert not (tmp_path / "run").exists()


def test_width_on_a_cell_genotype_is_a_one_line_error(cli, tmp_path, toy_data):
    result = cli("train", "DARTS_V2", "--dataset", toy_data, "--width", "0.5", "--out", str(tmp_path / "run"))
    assert result.exit_code != 0 and result.output.count("error:") == 1 and "--width" in result.output


def test_published_chain_networks_train_on_the_cli(cli, tmp_path, toy_data):
    result = cli("train", "mobilenet_v2", "--dataset", toy_data, "--width", "0.25", "--epochs", "1",
                 "--batch-size", "8", "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    network = load_network(tmp_path / "run" / "last.pt")
    assert network.genotype == published_genotypes()["mobilenet_v2"] and network.build_args.macro.width == 0.25
