"""create_model / build_network by name, genotype file or genotype: the same networks and build settings as the
compiler and the CLI give."""

import pytest
import torch

import dmc.api
from dmc import compiler
from dmc.compiler import build_args_for, save_network
from dmc.errors import InvalidInputError
from dmc.genotype import published_genotypes
from dmc.models import build_network, create_model, resolve_model
from dmc.space import load_space

PUBLISHED = published_genotypes()


@pytest.mark.parametrize("name, settings", [
    ("DARTS_V2", {}),
    ("DARTS_V2", dict(channels=8, layers=5, num_classes=100, auxiliary=True)),
    ("DARTS_V2", dict(style="imagenet", channels=8, layers=5)),  # the imagenet reference, as dmc compile --style
    ("cifar100_s1_0", dict(channels=4, layers=8)),
    ("FairNAS_C", dict(width=0.5, num_classes=10, in_channels=1)),
    ("NoisyDARTS_A", {})])
def test_create_model_builds_what_the_compiler_builds(name, settings):
    network = create_model(name, **settings)
    assert network.genotype == PUBLISHED[name]
    assert network.build_args == build_args_for(PUBLISHED[name], **settings)
    assert network.num_parameters() == compiler.build_network(PUBLISHED[name], **settings).num_parameters()


def test_genotype_objects_and_files_are_models_too(tmp_path):
    genotype = PUBLISHED["cifar10_s2_0"]
    path = genotype.save(tmp_path / "cell.json")
    (tmp_path / "cell.txt").write_text(genotype.to_darts_text())
    for source in (genotype, path, str(path), tmp_path / "cell.txt"):
        network = create_model(source, channels=4, layers=5)
        assert network.genotype == genotype and network.build_args.describe() == \
            "cifar network: 4 channels, 5 cells, 10 classes"
    assert resolve_model(PUBLISHED["FairNAS_A"]) == (PUBLISHED["FairNAS_A"], None)


def test_the_public_api_builds_published_names():
    network = dmc.api.build_network("DARTS_V2", channels=4, layers=5)
    assert dmc.api.build_network is build_network and network.genotype == PUBLISHED["DARTS_V2"]
    args = build_args_for(PUBLISHED["FairNAS_A"], width=0.25)
    assert dmc.api.build_network(PUBLISHED["FairNAS_A"], args).build_args == args  # genotypes as before
    space = load_space("rdarts_s2")
    with pytest.raises(InvalidInputError, match="is not a candidate of space 'rdarts_s2'"):
        build_network("DARTS_V2", space=space)


def test_network_files_and_other_sources_are_refused_in_one_line(tmp_path):
    path = save_network(create_model("FairNAS_A", width=0.25), tmp_path / "net.pt")
    for source, message in [(path, "a network file, not a genotype"),
                            (tmp_path, "is a folder, not a genotype file"),
                            (3, "expected a model name, a genotype file or a genotype, got int")]:
        with pytest.raises(InvalidInputError, match=message) as caught:
            create_model(source)
        assert "\n" not in caught.value.message


def test_created_models_run():
    network = create_model("mobilenet_v2", width=0.25, num_classes=3).eval()
    with torch.no_grad():
        assert network(torch.randn(1, 3, 64, 64)).shape == (1, 3)
