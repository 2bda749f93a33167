"""Schedules of DARTS-'s auxiliary-skip coefficient beta, stepped once per epoch."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dmc.errors import InvalidInputError

SCHEDULES = ("linear", "cosine", "slow_cosine", "step", "constant")


@dataclass(frozen=True)
class BetaSchedule:
    """beta at epoch index e = 0..epochs-1.

    beta stays at ``beta0`` until ``start``, then decays over [start, stop) (``stop`` defaults to
    ``epochs``) with progress p = (e - start) / (stop - start):

    - ``linear``: beta0 * (1 - p)  (with start 0: beta0 * (E - e) / E, the reference code's convention)
    - ``cosine``: beta0 * (1 + cos(pi p)) / 2
    - ``slow_cosine``: beta0 * cos(pi/2 p)
    - ``step``: beta0 until ``stop``, then 0 (``stop`` is required)
    - ``constant``: beta0 throughout

    From ``stop`` on, every decaying schedule gives 0. beta0 = 0 is plain DARTS.
    """

    kind: str = "linear"
    beta0: float = 1.0
    start: int = 0
    stop: int | None = None

    def validate(self, epochs: int) -> None:
        if self.kind not in SCHEDULES:
            raise InvalidInputError(f"beta schedule {self.kind!r} is unknown (allowed: {', '.join(SCHEDULES)})")
        if self.beta0 < 0:
            raise InvalidInputError(f"beta0 must be >= 0, got {self.beta0}")
        if self.kind == "step" and self.stop is None:
            raise InvalidInputError("the step schedule needs the epoch where beta drops to 0",
                                    "pass --beta-stop EPOCH")
        stop = epochs if self.stop is None else self.stop
        if not 0 <= self.start < stop or (self.stop is not None and self.stop > epochs):
            raise InvalidInputError(f"beta start/stop epochs {self.start}/{self.stop} do not fit {epochs} epochs",
                                    f"need 0 <= start < stop <= {epochs}")

    def __call__(self, epoch: int, epochs: int) -> float:
        stop = epochs if self.stop is None else self.stop
        if self.kind == "constant" or epoch < self.start:
            return self.beta0
        if epoch >= stop:
            return 0.0
        if self.kind == "step":
            return self.beta0
        p = (epoch - self.start) / (stop - self.start)
        if self.kind == "linear":
            return self.beta0 * (1 - p)
        if self.kind == "cosine":
            return self.beta0 * (1 + math.cos(math.pi * p)) / 2
        return self.beta0 * math.cos(math.pi / 2 * p)  # slow_cosine
