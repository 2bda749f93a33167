"""The model registry: every published genotype and chain network by name with its build settings and data; user
models registered beside them; unknown names refused in one line with the closest names."""

import pytest

from dmc.compiler import BuildArgs, build_args_for
from dmc.data.normalization import CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD
from dmc.errors import InvalidInputError
from dmc.families.cell.genotype import Genotype
from dmc.genotype import published_genotypes
from dmc.models import (
    DataConfig,
    create_model,
    find_model,
    list_models,
    model_entry,
    register_model,
    unregister_model,
)

PUBLISHED = published_genotypes()
TINY_CELL = ("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1), ('max_pool_3x3', 0), ('sep_conv_3x3', 2), "
             "('skip_connect', 0), ('dil_conv_3x3', 3), ('avg_pool_3x3', 1), ('sep_conv_5x5', 4)], "
             "normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
             "('max_pool_3x3', 0), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
             "('avg_pool_3x3', 0)], reduce_concat=range(2, 6))")


def test_every_published_architecture_is_registered_as_searched():
    assert set(list_models()) == set(PUBLISHED) and len(list_models()) == 39
    for name, genotype in PUBLISHED.items():
        entry = model_entry(name)
        assert entry.genotype == genotype and entry.build_args is None
        assert entry.default_build_args == build_args_for(genotype)


def test_list_models_filters_with_shell_patterns_in_natural_order():
    assert list_models("FairNAS*") == ["FairNAS_A", "FairNAS_B", "FairNAS_C"]
    assert list_models("cifar10_s0_*") == [f"cifar10_s0_{i}" for i in range(5)]
    names = list_models()
    assert names == list_models("*") and names.index("cifar10_s4_2") < names.index("cifar100_s0_0")
    assert names[-6:] == ["DARTS_V2", "FairNAS_A", "FairNAS_B", "FairNAS_C", "mobilenet_v2", "NoisyDARTS_A"]
    assert list_models("ResNet*") == []


def test_the_data_of_each_style():
    assert model_entry("FairNAS_A").data == DataConfig("imagenet", (3, 224, 224), IMAGENET_MEAN, IMAGENET_STD, 1000)
    assert model_entry("DARTS_V2").data == DataConfig("cifar10", (3, 32, 32), CIFAR10_MEAN, CIFAR10_STD, 10)
    imagenet = DataConfig.for_build(build_args_for(PUBLISHED["DARTS_V2"], style="imagenet"))
    assert imagenet == DataConfig("imagenet", (3, 224, 224), IMAGENET_MEAN, IMAGENET_STD, 1000)


@pytest.fixture
def tiny():
    genotype = Genotype.from_darts_text(TINY_CELL)
    yield register_model("tiny_cifar", genotype, BuildArgs.defaults_for("cifar").replace(channels=8, layers=5,
                                                                                       num_classes=100))
    unregister_model("tiny_cifar")


def test_user_models_are_created_by_name_with_their_settings(tiny):
    assert "tiny_cifar" in list_models("tiny*") and find_model("tiny_cifar") is tiny
    assert tiny.data == DataConfig("cifar10", (3, 32, 32), CIFAR10_MEAN, CIFAR10_STD, 100)
    network = create_model("tiny_cifar")
    assert network.genotype == tiny.genotype and network.build_args == tiny.build_args
    assert create_model("tiny_cifar", layers=8, num_classes=10).build_args.describe() == \
        "cifar network: 8 channels, 8 cells, 10 classes"
    with pytest.raises(InvalidInputError, match="a model named 'tiny_cifar' is already registered"):
        register_model("tiny_cifar", tiny.genotype)


def test_a_registered_data_config_is_kept(tiny):
    data = DataConfig("cifar100", (3, 32, 32), (0.5,) * 3, (0.25,) * 3, 100)
    entry = register_model("tiny_cifar100", tiny.genotype, tiny.build_args, data)
    try:
        assert model_entry("tiny_cifar100").data is data and entry.default_build_args is tiny.build_args
    finally:
        unregister_model("tiny_cifar100")
    assert find_model("tiny_cifar100") is None


@pytest.mark.parametrize("call, message, hint", [
    (lambda: model_entry("FairNAS_D"), "FairNAS_D: no such registered model", "did you mean FairNAS_"),
    (lambda: create_model("darts_v2"), "darts_v2: no such registered model or genotype file",
     "did you mean DARTS_V2 or"),
    (lambda: create_model("resnet50"), "resnet50: no such registered model or genotype file",
     "registered: cifar10_s0_0, cifar10_s0_1,"),
    (lambda: unregister_model("nope"), "nope: no such registered model", "dmc.list_models()"),
    (lambda: register_model("", PUBLISHED["DARTS_V2"]), "a model name must be a non-empty string, got ''", None)])
def test_unknown_names_are_one_line(call, message, hint):
    with pytest.raises(InvalidInputError) as caught:
        call()
    assert caught.value.message == message
    assert hint is None or hint in caught.value.hint
