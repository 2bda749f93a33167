"""The architectures bundled with dmc as registered models: DARTS_V2 and the DARTS- cells, FairNAS-A/B/C,
NoisyDARTS-A and MobileNetV2, each built as searched."""

from __future__ import annotations

from dmc.genotype import published_genotypes
from dmc.models.registry import register_model


def register_published_models() -> None:
    """Registers every published genotype and chain network (:func:`dmc.genotype.published_genotypes`) under its
    name."""
    for name, genotype in published_genotypes().items():
        register_model(name, genotype)
