"""P-DARTS's skip-connection dropout schedule, against its original code, and in a search."""

import numpy as np
import pytest

from dmc.search import SearchConfig, search
from dmc.search.skip_dropout import skip_dropout_rate
from dmc.supernet import Supernet


def pdarts_drop_rate(drop_rate: float, epoch: int, epochs: int, eps_no_arch: int) -> float:
    """Transcribed from chenxin061/pdarts, train_search.py, main()'s epoch loop of a stage (scale_factor = 0.2):
    ``model.module.p`` before each epoch's training."""
    scale_factor = 0.2
    if epoch < eps_no_arch:
        return float(drop_rate) * (epochs - epoch - 1) / epochs
    return float(drop_rate) * np.exp(-(epoch - eps_no_arch) * scale_factor)


@pytest.mark.parametrize("rate", [0.1, 0.4, 0.7])  # P-DARTS's three stages on CIFAR-10
@pytest.mark.parametrize("epochs, warmup", [(25, 10), (5, 0), (3, 2), (1, 0)])
def test_the_schedule_is_p_darts(rate, epochs, warmup):
    for epoch in range(epochs):
        assert skip_dropout_rate(rate, epoch, epochs, warmup) == pytest.approx(
            pdarts_drop_rate(rate, epoch, epochs, warmup), rel=1e-12, abs=0), epoch


def test_a_search_sets_the_schedule_every_epoch(toy_data, tmp_path, monkeypatch):
    """The arch warm-up epochs are P-DARTS's epochs without architecture steps."""
    rates = []
    set_skip_dropout = Supernet.set_skip_dropout
    monkeypatch.setattr(Supernet, "set_skip_dropout", lambda model, rate: rates.append(rate) or
                        set_skip_dropout(model, rate))
    config = SearchConfig(space="tiny", dataset=toy_data, epochs=4, arch_warmup=2, skip_dropout=(0.3,), batch_size=8,
                          channels=4, layers=3, deterministic=True)
    search(config, tmp_path / "run")
    assert rates == pytest.approx([pdarts_drop_rate(0.3, epoch, 4, 2) for epoch in range(4)], rel=1e-12)
