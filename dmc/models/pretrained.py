"""Pretrained weights from checkpoints of the same architecture, under their own key names: dmc's network files and
training checkpoints by name, any other code's state dict (torchvision's ``mobilenet_v2``, the FairNAS authors'
FairNAS-A/B/C, ...) by position. Files are read as data (``weights_only=True``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from dmc.checkpoints import load_torch_file
from dmc.compiler import CompiledNetwork
from dmc.compiler.saved import NETWORK_FORMATS, load_file_weights, read_network_file
from dmc.errors import InvalidInputError

WEIGHT_KEYS = ("state_dict", "model_state", "model")
"""Where checkpoints keep their state dict when they hold more (``state_dict``: timm, mmengine, Lightning;
``model_state``: the FairNAS authors'; ``model``: torchvision's reference scripts)."""
BN_COUNTER = "num_batches_tracked"
"""BatchNorm's step counter: not a weight (outputs never depend on it), and older checkpoints lack it."""
HINT = "pass a checkpoint of the same architecture: a dmc network file, or a state dict such as torchvision's"


def load_pretrained(network: CompiledNetwork, path: str | os.PathLike) -> CompiledNetwork:
    """Loads the checkpoint at ``path`` into ``network`` and returns it.

    A dmc network file or training checkpoint is loaded by name; it must hold the network's genotype and build
    arguments. Any other checkpoint (a state dict, or one under ``state_dict``, ``model_state`` or ``model``) is
    loaded by position with :func:`load_by_position`.
    """
    path = Path(path)
    state = load_torch_file(path, "checkpoint", HINT)
    if isinstance(state, dict) and state.get("format") in NETWORK_FORMATS:
        file = read_network_file(path)  # read again, with the checks of dmc's own files
        if file.genotype != network.genotype:
            raise InvalidInputError(f"{path} holds a network of another genotype ({file.genotype.describe()})",
                                    "create the model it was built from, or load it with "
                                    f"dmc.load_network('{path}')")
        if file.build_args != network.build_args:
            raise InvalidInputError(f"{path} holds a {file.build_args.describe()}, not a "
                                    f"{network.build_args.describe()}",
                                    f"pass the build settings it was built with, or load it with "
                                    f"dmc.load_network('{path}')")
        load_file_weights(network, file)
        return network
    return load_by_position(network, _weights(state, path), str(path))


def load_by_position(network: CompiledNetwork, weights: Mapping[str, Any],
                     source: str = "checkpoint") -> CompiledNetwork:
    """Loads a state dict of another code's module of the same architecture into ``network``, whatever its key names:
    its tensors, in their order, map one to one onto the network's in forward order (stem, first block, blocks, head,
    classifier; BatchNorm's step counters aside), each to one of the same shape and kind (``weight``, ``bias``,
    ``running_mean``, ...). Any mismatch is one :class:`InvalidInputError` naming ``source`` and the tensor."""
    ours = _forward_order(network)
    theirs = [(key, value) for key, value in weights.items() if not key.endswith(BN_COUNTER)]
    for key, value in theirs:
        if not isinstance(value, torch.Tensor):
            raise InvalidInputError(f"{source}: {key} is a {type(value).__name__}, not a tensor", HINT)
    if len(theirs) != len(ours):
        raise InvalidInputError(f"{source} holds {len(theirs)} tensors; the {network.build_args.describe()} has "
                                f"{len(ours)}", HINT)
    state = network.state_dict()
    for i, ((our_key, our_value), (key, value)) in enumerate(zip(ours, theirs)):
        if value.shape != our_value.shape or key.rsplit(".", 1)[-1] != our_key.rsplit(".", 1)[-1]:
            raise InvalidInputError(f"{source}: tensor {i} {key} {tuple(value.shape)} does not fit the network's "
                                    f"{our_key} {tuple(our_value.shape)}", HINT)
        state[our_key] = value
    network.load_state_dict(state)
    return network


def _forward_order(network: CompiledNetwork) -> list[tuple[str, torch.Tensor]]:
    """The network's tensors in forward order (the order its modules are registered in, :mod:`dmc.network.body`),
    the auxiliary head and BatchNorm's step counters aside."""
    return [(key, value) for key, value in network.state_dict().items()
            if not key.endswith(BN_COUNTER) and not key.startswith("auxiliary_head.")]


def _weights(state: Any, path: Path) -> Mapping[str, Any]:
    """The state dict a checkpoint holds: itself, or the one under one of :data:`WEIGHT_KEYS`."""
    if isinstance(state, dict):
        state = next((state[key] for key in WEIGHT_KEYS if isinstance(state.get(key), dict)), state)
    if not isinstance(state, dict) or not state or not all(isinstance(key, str) for key in state):
        raise InvalidInputError(f"{path}: no state dict in it",
                                f"expected a mapping of names to tensors, or one under {' or '.join(WEIGHT_KEYS)}")
    return state
