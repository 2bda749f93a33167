"""Running out of memory (simulated: no test allocates that much): one line naming what did not fit and the settings
that shrink it, after a start-up line that says the recipe, image size, network size and batch."""

import re

import pytest
import torch

from dmc.api import TrainConfig, build_network, load_space, published_genotypes
from dmc.out_of_memory import OutOfMemory, out_of_memory_as
from dmc.search import SearchConfig
from dmc.search import run as search_run
from dmc.train import loop as train_loop

DARTS_V2 = published_genotypes()["DARTS_V2"]


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.19 GiB"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: you tried to "
                 "allocate 60129542144 bytes."),
    MemoryError(),
])
def test_allocation_failures_become_one_line_and_other_errors_pass(error):
    with pytest.raises(OutOfMemory) as info, out_of_memory_as("out of memory doing x", "do less"):
        raise error
    assert str(info.value) == "out of memory doing x (hint: do less)"
    with pytest.raises(RuntimeError, match="shape mismatch"), out_of_memory_as("x", "y"):
        raise RuntimeError("shape mismatch")


def test_a_search_at_the_spaces_own_s5_setting_says_it_and_runs_out_of_memory_in_one_line(cli, tmp_path, toy_data,
                                                                                         monkeypatch):
    """A new user's `dmc search proxyless_s5` without --width or --image-size searches at the paper's S5 setting (224
    px, batch 768): the start-up line says so before the first step, and the step that runs out of memory (here:
    simulated) ends the run with one line naming the fix, not "unexpected RuntimeError ... report it"."""
    def out_of_memory(self, batch):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.19 GiB")

    monkeypatch.setattr(search_run._SearchTask, "step", out_of_memory)
    monkeypatch.delenv("DMC_DEBUG", raising=False)
    result = cli("search", "proxyless_s5", "--dataset", toy_data, "--kernels", "reference", "--device", "cpu",
                 "--out", str(tmp_path / "run"))
    assert result.exit_code == 1
    assert re.search(rf"searching proxyless_s5 \(19 layers, width 1, [\d,]+ weights\) on {re.escape(toy_data)}: "
                     r"224x224 images, batch 768, 30 epochs; proxyless_s5's own search settings; on cpu", result.stdout)
    assert result.stderr == ("error: out of memory searching proxyless_s5 (19 layers, width 1) at batch 768 of "
                             "224x224 images on cpu (hint: start a new search with a smaller --batch-size, "
                             "--image-size or --width, or --recompute-edges)\n")


def test_a_training_run_names_its_recipe_at_start_and_runs_out_of_memory_in_one_line(cli, tmp_path, toy_data,
                                                                                    monkeypatch):
    """Folder images of 64 px or more switch the imagenet recipe on by default: the start-up line says so."""
    def out_of_memory(out, y, config):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: you "
                           "tried to allocate 60129542144 bytes.")

    monkeypatch.setattr(train_loop, "training_loss", out_of_memory)
    monkeypatch.delenv("DMC_DEBUG", raising=False)
    result = cli("train", "DARTS_V2", "--dataset", toy_data, "--image-size", "64", "--no-auxiliary", "--device", "cpu",
                 "--out", str(tmp_path / "run"))
    assert result.exit_code == 1
    assert re.search(rf"training the imagenet network: 48 channels, 14 cells, 2 classes \([\d,]+ parameters\) on "
                     rf"{re.escape(toy_data)}: 64x64 images, batch 256, 350 epochs; imagenet recipe \(the default "
                     r"for folder images of at least 64 px; --recipe darts for DARTS's\); on cpu", result.stdout)
    assert result.stderr == ("error: out of memory training at batch 256 of 64x64 images on cpu (hint: start a new "
                             "run with a smaller --batch-size, --image-size, --channels or --layers)\n")


def test_python_callers_read_the_settings_to_lower_as_fields_the_command_line_as_flags():
    """The advice the two tests above print names the flags on the command line; a Python caller of
    :func:`dmc.api.search` or :func:`dmc.api.train` reads the fields it sets."""
    cpu = torch.device("cpu")
    searching = OutOfMemory(*search_run._memory_advice(SearchConfig(), load_space("proxyless_s5"), cpu))
    assert searching.hint == "start a new search with a smaller batch_size, image_size or width, or recompute_edges"
    assert searching.cli_text().endswith("(hint: start a new search with a smaller --batch-size, --image-size or "
                                         "--width, or --recompute-edges)")
    training = OutOfMemory(*train_loop._memory_advice(DARTS_V2, TrainConfig(), None, cpu))
    assert training.hint == "start a new run with a smaller batch_size, image_size, channels or layers"
    network = build_network(DARTS_V2, channels=4, layers=3)
    given = OutOfMemory(*train_loop._memory_advice(DARTS_V2, TrainConfig(), network, cpu))
    assert given.hint == "start a new run with a smaller batch_size or image_size"  # a network file fixes its size
    assert given.cli_text().endswith("(hint: start a new run with a smaller --batch-size or --image-size)")
