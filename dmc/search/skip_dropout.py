"""P-DARTS's schedule of the dropout rate on skip connections, stepped once per epoch of a stage."""

from __future__ import annotations

import math

DECAY = 0.2
"""P-DARTS's ``scale_factor``: once the architecture steps start, the rate shrinks by exp(-0.2) an epoch."""


def skip_dropout_rate(rate: float, epoch: int, epochs: int, arch_warmup: int) -> float:
    """The skip dropout at epoch index ``epoch`` of a search (or P-DARTS stage) of ``epochs`` epochs whose first
    ``arch_warmup`` epochs train only the weights, for the stage's rate ``rate``; P-DARTS's code
    (``train_search.py``):

    - during the warm-up (``epoch < arch_warmup``): ``rate * (epochs - epoch - 1) / epochs``, a linear decay over
      the stage's epochs;
    - from the first architecture step on: ``rate * exp(-0.2 * (epoch - arch_warmup))``, which starts again from
      ``rate``.
    """
    if epoch < arch_warmup:
        return rate * (epochs - epoch - 1) / epochs
    return rate * math.exp(-(epoch - arch_warmup) * DECAY)
