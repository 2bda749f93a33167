"""Schedules of DARTS-'s auxiliary-skip coefficient beta, stepped once per epoch."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dmc.errors import InvalidInputError, SettingError

SCHEDULES = ("linear", "cosine", "slow_cosine", "step", "constant")
CONVENTIONS = ("dmc", "official")
OFFICIAL_MAX_EPOCH = 50
"""The official code's ``--decay_max_epoch`` default (also its ``--decay_stop_epoch`` default)."""


@dataclass(frozen=True)
class BetaSchedule:
    """beta at epoch index e = 0..epochs-1.

    ``convention="dmc"`` (the default): beta stays at ``beta0`` until ``start``, then decays over
    [start, stop) (``stop`` defaults to ``epochs``) with progress p = (e - start) / (stop - start):

    - ``linear``: beta0 * (1 - p)  (with start 0: beta0 * (E - e) / E, the reference code's convention)
    - ``cosine``: beta0 * (1 + cos(pi p)) / 2
    - ``slow_cosine``: beta0 * cos(pi/2 p)
    - ``step``: beta0 until ``stop``, then 0 (``stop`` is required)
    - ``constant``: beta0 throughout

    From ``stop`` on, every decaying schedule gives 0. beta0 = 0 is plain DARTS.

    ``convention="official"``: the formulas of the official DARTS- code (``DecayScheduler``), which
    normalise by ``max_epoch`` T (its ``--decay_max_epoch``, default 50) instead of the run's epochs, with
    S = ``start`` and stop epoch P (``stop``, default T): beta0 before S; for S <= e <= P

    - ``linear``: beta0 * (T - e) / (T - S)
    - ``cosine``: beta0 * (1 + cos(pi e / (T - S))) / 2
    - ``slow_cosine``: beta0 * cos(pi/2 e / (T - S))
    - ``constant``: beta0

    and after P beta stays frozen at its value at epoch P (the official code keeps its last value).
    """

    kind: str = "linear"
    beta0: float = 1.0
    start: int = 0
    stop: int | None = None
    convention: str = "dmc"
    max_epoch: int | None = None
    """The official convention's T; None: 50, as the official code."""

    def validate(self, epochs: int) -> None:
        if self.convention not in CONVENTIONS:
            raise InvalidInputError(f"beta convention {self.convention!r} is unknown "
                                    f"(allowed: {', '.join(CONVENTIONS)})")
        if self.kind not in SCHEDULES:
            raise InvalidInputError(f"beta schedule {self.kind!r} is unknown (allowed: {', '.join(SCHEDULES)})")
        if not math.isfinite(self.beta0) or self.beta0 < 0:
            raise InvalidInputError(f"beta0 must be a finite number >= 0, got {self.beta0}")
        if self.convention == "official":
            self._validate_official()
            return
        if self.max_epoch is not None:
            raise SettingError("the beta max epoch belongs to the official convention",
                               "add {beta_convention} official, or drop {beta_max_epoch}")
        if self.kind == "step" and self.stop is None:
            raise SettingError("the step schedule needs the epoch where beta drops to 0", "pass {beta_stop} EPOCH")
        stop = epochs if self.stop is None else self.stop
        if not 0 <= self.start < stop or (self.stop is not None and self.stop > epochs):
            raise InvalidInputError(f"beta start/stop epochs {self.start}/{self.stop} do not fit {epochs} epochs",
                                    f"need 0 <= start < stop <= {epochs}")

    def _validate_official(self) -> None:
        if self.kind == "step":
            raise SettingError("the official DARTS- code has no step schedule",
                               "use linear, cosine, slow_cosine or constant, or {beta_convention} dmc")
        top, stop = self._official_bounds()
        if not 0 <= self.start < top or not self.start <= stop <= top:
            # beyond T, linear turns negative and cosine rises again: refused rather than reproduced
            raise InvalidInputError(f"beta start/stop/max epochs {self.start}/{stop}/{top} do not fit the official "
                                    "convention", "need 0 <= start < max epoch and start <= stop <= max epoch")

    def _official_bounds(self) -> tuple[int, int]:
        top = OFFICIAL_MAX_EPOCH if self.max_epoch is None else self.max_epoch
        return top, top if self.stop is None else self.stop

    def __call__(self, epoch: int, epochs: int) -> float:
        if self.convention == "official":
            return self._official(epoch)
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

    def _official(self, epoch: int) -> float:
        top, stop = self._official_bounds()
        e = min(epoch, stop)  # frozen after the stop epoch
        if e < self.start or self.kind == "constant":
            return self.beta0
        span = top - self.start
        if self.kind == "linear":
            return self.beta0 * (top - e) / span
        if self.kind == "cosine":
            return self.beta0 * (1 + math.cos(math.pi * e / span)) / 2
        return self.beta0 * math.cos(math.pi / 2 * e / span)  # slow_cosine
