"""pretrained=PATH: checkpoints of the same architecture under their own key names (torchvision's mobilenet_v2, the
FairNAS authors' FairNAS-A/B/C, dmc's network files) load into create_model's network and compute the same outputs;
every mismatch is one line."""

import pytest
import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from dmc.checkpoints import NETWORK, save_checkpoint
from dmc.compiler import save_network
from dmc.compiler.saved import network_record
from dmc.errors import InvalidInputError
from dmc.models import create_model

# xiaomi-automl/FairNAS models/FairNAS_{A,B,C}.py transcribed: the authors' module names and order (their
# checkpoints' keys: stem, separable_conv, mb_module.N.conv1/bn1/conv2/bn2/conv3/bn3, conv_before_pooling,
# classifier) and (expansion, channels, kernel, stride) of each searchable layer.
FAIRNAS_LAYERS = {
    "FairNAS_A": [(3, 32, 7, 2), (3, 32, 3, 1),
                  (3, 40, 7, 2), (6, 40, 3, 1), (6, 40, 7, 1), (3, 40, 3, 1),
                  (3, 80, 3, 2), (6, 80, 7, 1), (6, 80, 7, 1), (3, 80, 5, 1),
                  (6, 96, 3, 1), (3, 96, 5, 1), (3, 96, 5, 1), (6, 96, 3, 1),
                  (6, 192, 3, 2), (6, 192, 7, 1), (6, 192, 3, 1), (6, 192, 7, 1),
                  (6, 320, 5, 1)],
    "FairNAS_B": [(3, 32, 5, 2), (3, 32, 3, 1),
                  (3, 40, 5, 2), (3, 40, 3, 1), (6, 40, 3, 1), (3, 40, 5, 1),
                  (3, 80, 7, 2), (3, 80, 3, 1), (6, 80, 3, 1), (3, 80, 5, 1),
                  (3, 96, 3, 1), (6, 96, 3, 1), (3, 96, 7, 1), (3, 96, 3, 1),
                  (6, 192, 7, 2), (6, 192, 5, 1), (6, 192, 7, 1), (6, 192, 3, 1),
                  (6, 320, 5, 1)],
    "FairNAS_C": [(3, 32, 5, 2), (3, 32, 3, 1),
                  (3, 40, 7, 2), (3, 40, 3, 1), (3, 40, 3, 1), (3, 40, 3, 1),
                  (3, 80, 3, 2), (3, 80, 3, 1), (3, 80, 3, 1), (6, 80, 3, 1),
                  (3, 96, 3, 1), (3, 96, 3, 1), (3, 96, 3, 1), (3, 96, 3, 1),
                  (6, 192, 7, 2), (6, 192, 7, 1), (6, 192, 3, 1), (6, 192, 3, 1),
                  (6, 320, 5, 1)],
}


class AuthorsInvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expansion: int):
        super().__init__()
        hidden = round(c_in * expansion)
        self.residual = stride == 1 and c_in == c_out
        self.conv1 = nn.Conv2d(c_in, hidden, 1, 1, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.conv2 = nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.conv3 = nn.Conv2d(hidden, c_out, 1, 1, 0, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)

    def forward(self, x):
        y = F.relu6(self.bn1(self.conv1(x)))
        y = F.relu6(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return x + y if self.residual else y


class AuthorsFairNAS(nn.Module):
    def __init__(self, layers, num_classes: int = 1000):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6(inplace=True))
        self.separable_conv = nn.Sequential(
            nn.Conv2d(32, 32, 3, 1, 1, groups=32, bias=False), nn.BatchNorm2d(32), nn.ReLU6(inplace=True),
            nn.Conv2d(32, 16, 1, 1, 0, bias=False), nn.BatchNorm2d(16))
        blocks, c_in = [], 16
        for expansion, c_out, kernel, stride in layers:
            blocks.append(AuthorsInvertedResidual(c_in, c_out, kernel, stride, expansion))
            c_in = c_out
        self.mb_module = nn.Sequential(*blocks)
        self.conv_before_pooling = nn.Sequential(nn.Conv2d(c_in, 1280, 1, 1, 0, bias=False), nn.BatchNorm2d(1280),
                                                 nn.ReLU6(inplace=True))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x):
        x = self.conv_before_pooling(self.mb_module(self.separable_conv(self.stem(x))))
        return self.classifier(x.mean(3).mean(2))


def _same_outputs(network: nn.Module, reference: nn.Module) -> None:
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference.eval()(x)
        torch.testing.assert_close(network.eval()(x), expected, rtol=1e-5, atol=1e-5)
    assert expected.std() > 0.1  # outputs that depend on the weights


@pytest.mark.parametrize("name", sorted(FAIRNAS_LAYERS))
def test_the_fairnas_authors_checkpoints_load(name, tmp_path, calibrate_bn):
    torch.manual_seed(0)
    reference = calibrate_bn(AuthorsFairNAS(FAIRNAS_LAYERS[name]), 64)
    path = tmp_path / f"{name}.pth.tar"
    torch.save({"model_state": reference.state_dict(), "epoch": 300}, path)  # the authors' checkpoint layout
    _same_outputs(create_model(name, pretrained=path), reference)


@pytest.mark.parametrize("width", [1.0, 0.5])
def test_torchvisions_mobilenet_v2_weights_load(width, tmp_path, calibrate_bn):
    torch.manual_seed(0)
    reference = calibrate_bn(torchvision.models.mobilenet_v2(width_mult=width), 64)
    path = tmp_path / "mobilenet_v2.pth"
    torch.save(reference.state_dict(), path)
    _same_outputs(create_model("mobilenet_v2", width=width, pretrained=str(path)), reference)


def test_dmcs_own_network_files_load_by_name(tmp_path, calibrate_bn):
    network = calibrate_bn(create_model("FairNAS_B", width=0.25, num_classes=10), 64)
    path = save_network(network, tmp_path / "net.pt")
    _same_outputs(create_model("FairNAS_B", width=0.25, num_classes=10, pretrained=path), network)
    record = network_record(network)  # whatever order a file's tensors are in (older dmc registered blocks first)
    record["model"] = dict(reversed(record["model"].items()))
    save_checkpoint(tmp_path / "reversed.pt", NETWORK, record)
    _same_outputs(create_model("FairNAS_B", width=0.25, num_classes=10, pretrained=tmp_path / "reversed.pt"), network)


def _refusal(source, pretrained, **settings) -> InvalidInputError:
    with pytest.raises(InvalidInputError) as caught:
        create_model(source, pretrained=pretrained, **settings)
    assert "\n" not in caught.value.message
    return caught.value


def test_another_architecture_is_refused_naming_the_tensor(tmp_path):
    path = tmp_path / "fairnas_b.pth.tar"
    torch.save({"model_state": AuthorsFairNAS(FAIRNAS_LAYERS["FairNAS_B"]).state_dict()}, path)
    error = _refusal("FairNAS_A", path)
    assert error.message == (f"{path}: tensor 20 mb_module.0.conv2.weight (48, 1, 5, 5) does not fit the network's "
                             "blocks.0.body.1.0.weight (48, 1, 7, 7)")
    torch.save(torchvision.models.mobilenet_v2().state_dict(), tmp_path / "mobilenet_v2.pth")
    error = _refusal("FairNAS_A", tmp_path / "mobilenet_v2.pth")
    assert error.message == (f"{tmp_path / 'mobilenet_v2.pth'} holds 262 tensors; the chain network: width 1, 19 "
                             "layers, 1000 classes has 307")
    error = _refusal("mobilenet_v2", tmp_path / "mobilenet_v2.pth", num_classes=10)
    assert "tensor 260 classifier.1.weight (1000, 1280) does not fit the network's classifier.1.weight (10, 1280)" \
        in error.message


def test_dmc_files_of_another_network_are_refused(tmp_path):
    path = save_network(create_model("FairNAS_A", width=0.5), tmp_path / "net.pt")
    error = _refusal("FairNAS_A", path, width=0.25)
    assert error.message == (f"{path} holds a chain network: width 0.5, 19 layers, 1000 classes, not a chain "
                             "network: width 0.25, 19 layers, 1000 classes")
    assert "dmc.load_network" in error.hint
    assert "another genotype" in _refusal("FairNAS_B", path, width=0.5).message


def test_files_without_weights_are_refused(tmp_path):
    torch.save({"epoch": 3, "model_state": {"a": torch.zeros(1), "b": "text"}}, tmp_path / "mixed.pt")
    assert _refusal("FairNAS_A", tmp_path / "mixed.pt").message == f"{tmp_path / 'mixed.pt'}: b is a str, not a tensor"
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    assert _refusal("FairNAS_A", tmp_path / "list.pt").message == f"{tmp_path / 'list.pt'}: no state dict in it"
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    assert "corrupt or unreadable checkpoint" in _refusal("FairNAS_A", tmp_path / "junk.pt").message
    assert "no such checkpoint" in _refusal("FairNAS_A", tmp_path / "missing.pt").message


def test_pretrained_must_be_a_path():
    assert _refusal("FairNAS_A", True).message == "dmc bundles no pretrained weights"
    assert _refusal("FairNAS_A", 3).message == "pretrained=3: expected a checkpoint's path or False"
