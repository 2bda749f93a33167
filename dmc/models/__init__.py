"""The model registry, timm/torchvision style: every published genotype and chain network by name, with its default
build settings and data, and any genotype or genotype file, built by one call.

    dmc.list_models("FairNAS*")                         # ['FairNAS_A', 'FairNAS_B', 'FairNAS_C']
    net = dmc.create_model("FairNAS_A", num_classes=10, width=0.5)
    net = dmc.create_model("mobilenet_v2", pretrained="mobilenet_v2-b0353104.pth")   # torchvision's weights
    dmc.model_entry("DARTS_V2").data                    # DataConfig: CIFAR-10's mean and std, 3 x 32 x 32, 10 classes
"""

from dmc.models.entry import DataConfig, ModelEntry
from dmc.models.factory import build_network, create_model, resolve_model
from dmc.models.pretrained import load_by_position, load_pretrained
from dmc.models.published import register_published_models
from dmc.models.registry import find_model, list_models, model_entry, register_model, unregister_model

register_published_models()

__all__ = ["DataConfig", "ModelEntry", "build_network", "create_model", "find_model", "list_models",
           "load_by_position", "load_pretrained", "model_entry", "register_model", "resolve_model",
           "unregister_model"]
