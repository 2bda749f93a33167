"""A fourth network family is one module and one registry entry: a toy family (a plain stack of searchable layers at
one width), defined here and nowhere in dmc, goes through spec loading, search, derivation, genotype files, the
compiler and the settings check with dmc's own entry points."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import torch
from torch import nn

from dmc.compiler import BuildArgs, build_network
from dmc.derive import derive
from dmc.errors import InvalidInputError, SettingError
from dmc.families import AnySpace, family_of, register_family, unregister_family
from dmc.families.alpha_weights import edge_weights
from dmc.genotype import genotype_from_dict
from dmc.genotype_checks import check_genotype_in_space
from dmc.ops import OPS
from dmc.ops.mbconv import conv_bn
from dmc.space import space_from_dict
from dmc.spec_checks import SPACE_FORMAT
from dmc.supernet import build_supernet
from dmc.supernet.mixed_edge import MixedEdge

frozen = dataclasses.dataclass(frozen=True)


@frozen
class PlainMacro:
    width: int = 8
    depth: int = 3
    kind = "plain"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "plain", "width": self.width, "depth": self.depth}


@frozen
class PlainSpace:
    name: str
    macro: PlainMacro
    ops: tuple[str, ...]
    source: str = "<memory>"
    kind = "plain"
    row_noun = "layer"
    alpha_groups = ("layers",)
    search_defaults = ()

    def candidates(self, group: str = "layers") -> tuple[tuple[str, ...], ...]:
        return (self.ops,) * self.macro.depth

    @property
    def operations(self) -> list[str]:
        return sorted(self.ops)

    @property
    def summary(self) -> str:
        return f"{self.macro.depth} layers of width {self.macro.width}"

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def with_macro(self, **changes: Any) -> PlainSpace:
        return dataclasses.replace(self, macro=dataclasses.replace(self.macro, **changes))

    def to_dict(self, include_description: bool = True) -> dict[str, Any]:
        return {"format": SPACE_FORMAT, "name": self.name, "kind": "plain", "macro": self.macro.to_dict(),
                "ops": list(self.ops)}


@frozen
class PlainGenotype:
    layers: tuple[str, ...]
    macro: PlainMacro
    space: str | None = None
    space_hash: str | None = None
    kind = "plain"
    groups = ("layers",)
    deterministic = True

    def skip_count(self, group: str = "layers") -> int:
        return sum(OPS[op].skip for op in self.layers)

    def describe(self) -> str:
        return ", ".join(self.layers)

    def to_dict(self) -> dict[str, Any]:
        return {"format": "dmc.genotype", "version": 1, "kind": "plain", "macro": self.macro.to_dict(),
                "space": {"name": self.space, "hash": self.space_hash}, "layers": list(self.layers)}

    def save(self, path: Any) -> Any:
        raise NotImplementedError


class PlainFamily:
    name = genotype_kind = spec_kind = "plain"
    styles = ("plain",)
    settings = ("width",)
    search_methods = ("darts",)
    has_auxiliary_head = False

    def space_from_dict(self, data: Any, source: str) -> PlainSpace:
        return PlainSpace(data["name"], self.macro_from_dict(data["macro"], source), tuple(data["ops"]), source)

    def genotype_from_dict(self, data: dict[str, Any], source: str) -> PlainGenotype:
        return PlainGenotype(tuple(data["layers"]), self.macro_from_dict(data["macro"], source),
                             data["space"]["name"], data["space"]["hash"])

    def macro_from_dict(self, data: Any, source: str) -> PlainMacro:
        return PlainMacro(data["width"], data["depth"])

    def check_settings(self, settings: Mapping[str, Any], subject: str = "") -> None:
        from dmc.families.settings import check_family_settings

        check_family_settings(self.name, self.settings, settings, subject)

    def style_of(self, macro: PlainMacro) -> str:
        return "plain"

    def default_macro(self, style: str) -> tuple[PlainMacro, int]:
        return PlainMacro(), 10

    def build_macro(self, genotype, style, settings) -> tuple[PlainMacro, int]:
        return genotype.macro, 10

    def replace_macro(self, macro: PlainMacro, style, settings: Mapping[str, Any]) -> PlainMacro:
        return dataclasses.replace(macro, **settings)

    def input_size(self, macro: PlainMacro) -> int:
        return 16

    def describe_macro(self, macro: PlainMacro) -> str:
        return f"width {macro.width}, {macro.depth} layers"

    def build_body(self, builder, macro: PlainMacro, in_channels: int, make_block: Callable) -> None:
        builder.set_stem(conv_bn(in_channels, macro.width, 3, 2, act="relu"), None, macro.width, 2)
        for i in range(macro.depth):
            builder.add_block(make_block, i)
        builder.end_stage(2, macro.width)
        builder.set_head(nn.Identity(), macro.width)

    def stem_states(self, stem, stem1, x: torch.Tensor) -> list[torch.Tensor]:
        return [stem(x)]

    def strides(self, macro, blocks, stem1) -> list[tuple[str | None, int]]:
        return [(None, 2)]

    def check_search(self, space, method, options) -> None:
        pass

    def search_block(self, space: AnySpace, options) -> Callable[[Any], nn.Module]:
        w = space.macro.width
        return lambda i: MixedEdge(space.candidates()[i], w, w, 1, nn.Identity, act="relu", row=i)

    def derive(self, alphas: Mapping[str, torch.Tensor], space: AnySpace, edge_norms) -> PlainGenotype:
        weights = edge_weights(alphas["layers"].detach(), space, "layers")
        layers = tuple(ops[int(w.argmax())] for w, ops in zip(weights, space.candidates("layers")))
        return PlainGenotype(layers, space.macro, space.name, space.content_hash)

    def check_genotype_in_space(self, genotype, space) -> None:
        for i, op in enumerate(genotype.layers):
            if op not in space.ops:
                raise InvalidInputError(f"layers[{i}]: {op!r} is not a candidate of {space.name}")

    def resized_space(self, space, macro):
        return space.with_macro(width=macro.width)

    def deploy_block(self, genotype, macro: PlainMacro) -> Callable[[Any], nn.Module]:
        return lambda i: OPS[genotype.layers[i]].build(macro.width, macro.width, 1, affine=True, act="relu")

    def auxiliary_head(self, macro, blocks, num_classes) -> None:
        return None


SPEC = {"format": SPACE_FORMAT, "name": "toy_plain", "kind": "plain", "macro": {"width": 8, "depth": 3},
        "ops": ["mbconv_k3_e3", "mbconv_k5_e3", "skip"]}


@pytest.fixture
def plain_family():
    family = register_family(PlainFamily())
    yield family
    unregister_family("plain")


def test_a_registered_family_goes_from_spec_to_search_to_compiled_network(plain_family):
    space = space_from_dict(SPEC, "toy.yaml")
    assert isinstance(space, PlainSpace) and family_of(space) is plain_family

    torch.manual_seed(0)
    supernet = build_supernet(space, num_classes=4)
    x = torch.randn(2, 3, 16, 16)
    loss = supernet(x).logsumexp(-1).sum()
    loss.backward()  # the architecture weights of the toy layers learn
    assert supernet.alpha_layers.grad is not None and supernet.alpha_layers.grad.abs().sum() > 0

    with torch.no_grad():
        supernet.alpha_layers.zero_()
        supernet.alpha_layers[:, 1] = 1.0  # mbconv_k5_e3 wins every layer
        supernet.alpha_layers[2, 2] = 2.0  # the last layer is skipped
    genotype = derive(supernet.alphas(), space)
    assert genotype == PlainGenotype(("mbconv_k5_e3", "mbconv_k5_e3", "skip"), space.macro, "toy_plain",
                                     space.content_hash)
    assert genotype_from_dict(genotype.to_dict(), "g.json") == genotype  # the genotype file, by its kind
    check_genotype_in_space(genotype, space)
    with pytest.raises(InvalidInputError, match="'mbconv_k7_e6' is not a candidate"):
        check_genotype_in_space(dataclasses.replace(genotype, layers=("mbconv_k7_e6",) * 3), space)

    network = build_network(genotype, num_classes=5, width=16)
    assert network.build_args.describe() == "plain network: width 16, 3 layers, 5 classes"
    assert network(x).shape == (2, 5)
    assert [type(block).__name__ for block in network.blocks][:2] == ["MBConv", "MBConv"]
    assert BuildArgs.from_dict(network.build_args.to_dict()) == network.build_args  # the macro, by its kind

    with pytest.raises(SettingError, match="channels is not a setting of plain networks") as info:
        build_network(genotype, channels=16)
    assert "--channels" in info.value.cli_text() and "--width" in info.value.cli_text()


def test_an_unregistered_kind_is_refused_in_one_line():
    with pytest.raises(InvalidInputError, match=r"kind: 'plain' is not allowed \(allowed: cell, chain\)"):
        space_from_dict(SPEC, "toy.yaml")
