"""Beta schedules against their formulas."""

import math

import pytest

from dmc.errors import InvalidInputError
from dmc.search import BetaSchedule

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
    (BetaSchedule("exp"), "unknown"), (BetaSchedule("step"), "--beta-stop"),
    (BetaSchedule(start=10), "do not fit"), (BetaSchedule(stop=11), "do not fit"), (BetaSchedule(beta0=-1), ">= 0"),
])
def test_invalid_schedules(schedule, message):
    with pytest.raises(InvalidInputError, match=message):
        schedule.validate(E)
