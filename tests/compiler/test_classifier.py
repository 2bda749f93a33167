"""Compiled networks carry timm's num_classes, num_features and reset_classifier."""

import pytest
import torch

from dmc.compiler import build_network, load_network, save_network
from dmc.errors import InvalidInputError
from dmc.genotype import published_genotypes

PUBLISHED = published_genotypes()


@pytest.mark.parametrize("name, settings, features", [
    ("DARTS_V2", dict(channels=4, layers=5), 64),  # the last cell: 4 nodes of 16 channels
    ("mobilenet_v2", dict(width=0.25), 1280),  # the head conv's width
    ("FairNAS_A", dict(width=0.25, num_classes=7), 1280)])
def test_num_features_is_what_the_classifier_reads(name, settings, features):
    network = build_network(PUBLISHED[name], **settings).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert network.forward_features(x).shape[1] == network.num_features == features
        assert network(x).shape == (2, network.num_classes)
    assert network.num_classes == settings.get("num_classes", network.build_args.num_classes)


def test_reset_classifier_gives_a_fresh_head_and_is_saved(tmp_path):
    network = build_network(PUBLISHED["DARTS_V2"], channels=4, layers=5, auxiliary=True)
    stem = network.stem[0].weight.clone()
    network.reset_classifier(3)
    assert network.num_classes == 3 and network.build_args.num_classes == 3
    network.train()
    logits, aux = network(torch.randn(2, 3, 32, 32))
    assert logits.shape == aux.shape == (2, 3)
    assert torch.equal(network.stem[0].weight, stem)  # only the heads change
    loaded = load_network(save_network(network, tmp_path / "net.pt")).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), network.eval()(x))


def test_reset_classifier_keeps_a_chain_networks_dropout():
    network = build_network(PUBLISHED["FairNAS_A"], width=0.25)
    network.reset_classifier(5)
    assert isinstance(network.classifier[0], torch.nn.Dropout) and network.classifier[1].out_features == 5
    assert network.num_features == 1280


@pytest.mark.parametrize("bad", [0, -1, True, None, 2.0])
def test_reset_classifier_refuses_bad_counts(bad):
    network = build_network(PUBLISHED["mobilenet_v2"], width=0.25)
    with pytest.raises(InvalidInputError, match="num_classes must be a positive integer"):
        network.reset_classifier(bad)
    assert network.num_classes == 1000 and network.classifier[-1].out_features == 1000
