"""A registered model: a genotype, its default build settings and the data it is made for (timm's
``pretrained_cfg``)."""

from __future__ import annotations

from dataclasses import dataclass

from dmc.compiler import BuildArgs, build_args_for
from dmc.data.normalization import CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD
from dmc.errors import InvalidInputError
from dmc.families import AnyGenotype

REFERENCE_DATA = {"cifar10": (CIFAR10_MEAN, CIFAR10_STD), "imagenet": (IMAGENET_MEAN, IMAGENET_STD)}
"""Dataset -> (mean, std) of the datasets the network styles are made for."""
STYLE_DATASETS = {"cifar": "cifar10", "nb201": "cifar10", "imagenet": "imagenet", "chain": "imagenet"}
"""Network style -> the dataset its reference settings are made for (DARTS's and NAS-Bench-201's CIFAR-10 networks,
DARTS's ImageNet network, the chain networks' ImageNet)."""


@dataclass(frozen=True)
class DataConfig:
    """The data a network is made for: its input size, normalisation and classes (timm's ``pretrained_cfg``)."""

    dataset: str
    input_size: tuple[int, int, int]
    """(channels, height, width)."""
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int

    @classmethod
    def for_build(cls, build_args: BuildArgs) -> DataConfig:
        """The reference data of a network built with ``build_args``: CIFAR-10 for ``cifar`` and ``nb201`` networks,
        ImageNet for ``imagenet`` and chain networks, at the style's input size."""
        dataset = STYLE_DATASETS.get(build_args.style)
        if dataset is None:
            raise InvalidInputError(f"networks of style {build_args.style!r} have no reference dataset",
                                    "register the model with its data=DataConfig(...)")
        mean, std = REFERENCE_DATA[dataset]
        size = build_args.input_size
        return cls(dataset, (build_args.in_channels, size, size), mean, std, build_args.num_classes)


@dataclass(frozen=True)
class ModelEntry:
    """A registered model (see :func:`dmc.models.register_model`)."""

    name: str
    genotype: AnyGenotype
    build_args: BuildArgs | None
    """Its build settings; None: the genotype's as searched (:func:`dmc.compiler.build_args_for`, what
    ``dmc compile NAME`` builds)."""
    data: DataConfig

    @property
    def default_build_args(self) -> BuildArgs:
        """The build arguments :func:`dmc.models.create_model` uses when given no settings."""
        return self.build_args or build_args_for(self.genotype)
