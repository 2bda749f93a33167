"""Beta schedules against their formulas: dmc's convention, and the official DARTS- code's."""

import json
import math

import pytest

from dmc.errors import InvalidInputError
from dmc.search import BetaSchedule, read_history

E = 10


def test_linear_uses_the_reference_convention():
    s = BetaSchedule("linear", beta0=0.7)
    assert [s(e, E) for e in range(E)] == pytest.approx([0.7 * (E - e) / E for e in range(E)])


def test_cosine_and_slow_cosine():
    c, sc = BetaSchedule("cosine"), BetaSchedule("slow_cosine")
    for e in range(E):
        assert c(e, E) == pytest.approx((1 + math.cos(math.pi * e / E)) / 2)
        assert sc(e, E) == pytest.approx(math.cos(math.pi / 2 * e / E))


def test_step_and_constant():
    s = BetaSchedule("step", stop=7)
    assert [s(e, E) for e in range(E)] == [1.0] * 7 + [0.0] * 3
    assert {BetaSchedule("constant", beta0=0.5)(e, E) for e in range(E)} == {0.5}


def test_start_epoch_holds_beta0_then_decays_over_the_rest():
    # the paper's long runs: beta = 1 until the last 50 epochs, then linear decay
    s = BetaSchedule("linear", start=150)
    assert [s(e, 200) for e in (0, 149, 150)] == [1.0, 1.0, 1.0]
    assert s(175, 200) == pytest.approx(0.5) and s(199, 200) == pytest.approx(1 / 50)


def test_stop_epoch_ends_at_zero():
    s = BetaSchedule("cosine", start=2, stop=6)
    assert s(1, E) == 1.0 and s(4, E) == pytest.approx(0.5) and s(6, E) == 0.0 and s(9, E) == 0.0


def test_beta0_zero_is_plain_darts():
    assert {BetaSchedule("linear", beta0=0)(e, E) for e in range(E)} == {0.0}


@pytest.mark.parametrize("schedule,message", [
    (BetaSchedule("exp"), "unknown"), (BetaSchedule("step"), "pass beta_stop EPOCH"),
    (BetaSchedule(start=10), "do not fit"), (BetaSchedule(stop=11), "do not fit"), (BetaSchedule(beta0=-1), ">= 0"),
])
def test_invalid_schedules(schedule, message):
    with pytest.raises(InvalidInputError, match=message):
        schedule.validate(E)


def test_python_reads_the_fields_the_command_line_the_flags(cli, tmp_path):
    with pytest.raises(InvalidInputError) as info:
        BetaSchedule(max_epoch=20).validate(E)
    assert info.value.hint == "add beta_convention official, or drop beta_max_epoch"
    result = cli("search", "tiny", "--beta-max-epoch", "20", "--out", str(tmp_path / "x"))
    assert result.exit_code == 2
    assert "(hint: add --beta-convention official, or drop --beta-max-epoch)" in result.stderr
    result = cli("search", "tiny", "--beta-schedule", "step", "--out", str(tmp_path / "y"))
    assert result.exit_code == 2 and "(hint: pass --beta-stop EPOCH)" in result.stderr


class _OfficialDecayScheduler:
    """A transcription of the official DARTS- code's ``DecayScheduler`` (src/utils.py): stateful, stepped with
    the epoch index at the start of every epoch, its ``decay_rate`` scaling the auxiliary skip."""

    def __init__(self, base_lr, T_max, T_start, T_stop, decay_type):
        self.base_lr, self.T_max, self.T_start, self.T_stop = base_lr, T_max, T_start, T_stop
        self.decay_type = decay_type
        self.decay_rate = 1.0

    def step(self, epoch):
        if epoch < self.T_start:
            self.decay_rate = self.base_lr
        elif self.decay_type == "cosine":
            if epoch <= self.T_stop:
                self.decay_rate = self.base_lr * (1 + math.cos(math.pi * epoch / (self.T_max - self.T_start))) / 2.0
        elif self.decay_type == "slow_cosine":
            if epoch <= self.T_stop:
                self.decay_rate = self.base_lr * math.cos((math.pi / 2) * epoch / (self.T_max - self.T_start))
        elif self.decay_type == "linear":
            if epoch <= self.T_stop:
                self.decay_rate = self.base_lr * (self.T_max - epoch) / (self.T_max - self.T_start)
        else:
            self.decay_rate = self.base_lr


@pytest.mark.parametrize("kind,beta0,start,stop,top,epochs", [
    ("linear", 1.0, 0, None, None, 50), ("linear", 1.0, 0, None, None, 3), ("linear", 0.7, 0, None, None, 70),
    ("cosine", 1.0, 0, None, None, 50), ("cosine", 1.0, 10, 40, None, 50), ("slow_cosine", 2.0, 5, 30, 60, 45),
    ("linear", 1.0, 20, 35, 40, 50), ("constant", 0.5, 0, None, None, 10),
])
def test_the_official_convention_matches_the_official_formulas(kind, beta0, start, stop, top, epochs):
    schedule = BetaSchedule(kind, beta0, start, stop, convention="official", max_epoch=top)
    schedule.validate(epochs)
    top = 50 if top is None else top
    official = _OfficialDecayScheduler(beta0, top, start, top if stop is None else stop,
                                       None if kind == "constant" else kind)
    for e in range(epochs):
        official.step(e)
        assert schedule(e, epochs) == pytest.approx(official.decay_rate, abs=1e-12), e


def test_the_conventions_differ_where_the_readme_says():
    dmc, official = BetaSchedule("linear"), BetaSchedule("linear", convention="official")
    assert [dmc(e, 3) for e in range(3)] == pytest.approx([1, 2 / 3, 1 / 3])  # spans the run's 3 epochs
    assert [official(e, 3) for e in range(3)] == pytest.approx([1, 0.98, 0.96])  # normalised by 50
    assert [dmc(e, 50) for e in range(50)] == pytest.approx([official(e, 50) for e in range(50)])  # the paper's run
    frozen = BetaSchedule("linear", stop=20, convention="official")  # frozen at epoch 20's value, not 0
    assert frozen(25, 50) == frozen(20, 50) == pytest.approx(0.6) and BetaSchedule("linear", stop=20)(25, 50) == 0
    late = BetaSchedule("cosine", start=10, convention="official")  # cos(pi e / (T - S)), not (e - S)
    assert late(10, 50) == pytest.approx((1 + math.cos(math.pi * 10 / 40)) / 2) and late(9, 50) == 1.0


@pytest.mark.parametrize("schedule,message", [
    (BetaSchedule("step", stop=5, convention="official"), "no step schedule"),
    (BetaSchedule(stop=60, convention="official"), "do not fit the official"),
    (BetaSchedule(start=50, convention="official"), "do not fit the official"),
    (BetaSchedule(start=10, stop=5, convention="official"), "do not fit the official"),
    (BetaSchedule(max_epoch=20), "beta_convention official"),
    (BetaSchedule(convention="paper"), "convention 'paper' is unknown"),
])
def test_invalid_official_schedules(schedule, message):
    with pytest.raises(InvalidInputError, match=message):
        schedule.validate(E)


def test_cli_official_convention(cli, tmp_path, toy_data):
    run = tmp_path / "run"
    result = cli("search", "tiny", "--dataset", toy_data, "--epochs", "2", "--batch-size", "8", "--channels", "4",
                 "--layers", "3", "--beta-convention", "official", "--beta-max-epoch", "4", "--kernels", "reference",
                 "--out", str(run))
    assert result.exit_code == 0, result.output
    assert [r["beta"] for r in read_history(run)] == [1.0, 0.75]  # (T - e) / T with T = 4
    assert json.loads((run / "config.json").read_text())["config"]["beta_convention"] == "official"
    bad = cli("search", "tiny", "--beta-convention", "official", "--beta-stop", "60", "--out", str(tmp_path / "x"))
    assert bad.exit_code == 2 and "do not fit the official convention" in bad.stderr
