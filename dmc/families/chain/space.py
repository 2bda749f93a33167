"""Chain search spaces (``kind: chain``): a MobileNetV2-like skeleton with one candidate list per layer.

A spec names the skeleton (``macro``, see :class:`dmc.network.ChainMacro`) and the candidates of its
searchable layers::

    layers:
      candidates: [mbconv_k3_e3, mbconv_k3_e6, ..., skip]   # every layer
      first_of_stage: [mbconv_k3_e3, ...]                   # optional: the first layer of each stage
      # or per_stage: [[...], [...], ...] (one list per stage), or per_layer: [[...], ...]
      skip_projection: false    # 'skip' where the shape changes: a 1x1 conv (FBNet) or refused (ProxylessNAS)
    auxiliary:
      shape_change: factorized_reduce   # DARTS-'s auxiliary skip where the shape changes (or conv1x1)
    search: {lr: 0.045, ...}    # the space's default search settings (any SearchConfig field)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from dmc.errors import InvalidInputError
from dmc.families.chain.layers import chain_layer_names, chain_layer_problem
from dmc.families.chain.macro import ChainMacro, LayerSlot
from dmc.families.settings import check_family_settings
from dmc.ops import OPS
from dmc.spec_checks import SPACE_FORMAT, SpecChecks

AUX_SHAPE_CHANGE = ("factorized_reduce", "conv1x1")
CANDIDATE_FORMS = ("candidates", "per_stage", "per_layer")


@dataclass(frozen=True)
class ChainSpace:
    """A validated chain search space. Equal specs compare (and hash) equal; ``source`` is not part of it."""

    name: str
    macro: ChainMacro
    layer_candidates: tuple[tuple[str, ...], ...]
    """The candidate operations of every searchable layer, in order (the spec's ``layers``)."""
    skip_projection: bool = False
    """'skip' is offered where the shape changes (as a 1x1 conv, BN, act: FBNet's builder)."""
    aux_shape_change: str = "factorized_reduce"
    """DARTS-'s auxiliary skip on a layer that changes the shape: a factorized reduce (a 1x1 ReLU-conv-BN when
    only the width changes), or an identity-initialised 1x1 conv with the layer's stride."""
    search_defaults: tuple[tuple[str, Any], ...] = ()
    """Default search settings of the space (the paper's S5 setting), as (SearchConfig field, value) pairs."""
    description: str = field(default="", compare=False)
    source: str = field(default="<memory>", compare=False)

    kind = "chain"
    row_noun = "layer"
    alpha_groups = ("layers",)
    """Names of the architecture-weight matrices (``alpha_layers``: one row per layer)."""

    def candidates(self, group: str = "layers") -> tuple[tuple[str, ...], ...]:
        """The candidate lists of the rows of ``alpha_<group>``."""
        return self.layer_candidates

    @property
    def operations(self) -> list[str]:
        """Every candidate operation of the space, sorted."""
        return sorted({op for ops in self.layer_candidates for op in ops})

    @property
    def summary(self) -> str:
        """``19 layers, width 1``."""
        return f"{len(self.layer_candidates)} layers, width {self.macro.width:g}"

    def layer_slots(self) -> tuple[LayerSlot, ...]:
        return self.macro.layer_slots()

    @property
    def content_hash(self) -> str:
        blob = json.dumps(self.to_dict(include_description=False), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def with_macro(self, **changes: Any) -> ChainSpace:
        """The same space at another ``width`` (or ``activation``); None = keep. Chain spaces have no
        channels/layers settings: their depth is the skeleton's."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        check_family_settings(self.kind, ("width", "activation"), changes, f"{self.name} is a chain space")
        data = self.to_dict()
        data["macro"] = self.macro.replace(**changes).to_dict()
        return chain_space_from_dict(data, f"{self.source} (with {', '.join(f'{k}={v}' for k, v in changes.items())})")

    def to_dict(self, include_description: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {"format": SPACE_FORMAT, "name": self.name, "kind": "chain"}
        if include_description:
            data["description"] = self.description
        data["macro"] = self.macro.to_dict()
        data["layers"] = {"per_layer": [list(ops) for ops in self.layer_candidates],
                          "skip_projection": self.skip_projection}
        data["auxiliary"] = {"shape_change": self.aux_shape_change}
        data["search"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.search_defaults}
        return data


def chain_space_from_dict(data: Any, source: str = "<memory>") -> ChainSpace:
    """Validates a parsed ``kind: chain`` spec into a :class:`ChainSpace`."""
    return _ChainValidator(source).space(data)


class _ChainValidator:
    def __init__(self, source: str):
        self.v = SpecChecks(source)
        self.source = source

    def space(self, data: Any) -> ChainSpace:
        v = self.v
        top = v.mapping(data, "", {"format", "name", "kind", "macro", "layers"},
                        {"description", "auxiliary", "search"})
        v.header(top, "chain")
        try:
            macro = ChainMacro.from_dict(top["macro"], "macro")
        except InvalidInputError as exc:
            v.fail("", exc.message, exc.hint)
        layers_spec = v.mapping(top["layers"], "layers", set(),
                                {"candidates", "first_of_stage", "per_stage", "per_layer", "skip_projection"})
        skip_projection = v.boolean(layers_spec.get("skip_projection", False), "layers.skip_projection")
        layers = self.candidates(layers_spec, macro)
        for slot, ops in zip(macro.layer_slots(), layers):
            path = f"layers: layer {slot.index} (stage {slot.stage}, {slot.c_in}->{slot.c_out}, stride {slot.stride})"
            for op in ops:
                problem = chain_layer_problem(op, slot)
                if problem is not None:
                    v.fail(path, problem, f"chain layers: {chain_layer_names()}")
                if OPS[op].skip and not slot.keeps_shape and not skip_projection:
                    v.fail(path, "offers 'skip' but changes the shape, and this space has no skip projection",
                           "remove 'skip' from that layer (first_of_stage), or set layers.skip_projection: true")
        aux = v.mapping(top.get("auxiliary", {}), "auxiliary", set(), {"shape_change"})
        shape_change = v.choice(aux.get("shape_change", "factorized_reduce"), "auxiliary.shape_change",
                                AUX_SHAPE_CHANGE)
        if shape_change == "factorized_reduce":
            for slot in macro.layer_slots():
                if slot.stride == 2 and slot.c_out % 2:
                    v.fail("auxiliary.shape_change", f"a factorized reduce needs an even width; layer "
                                                     f"{slot.index} has {slot.c_out}", "use conv1x1")
        return ChainSpace(name=top["name"], macro=macro, layer_candidates=layers, skip_projection=skip_projection,
                          aux_shape_change=shape_change, search_defaults=self.search_defaults(top.get("search", {})),
                          description=top.get("description", "").strip(), source=self.source)

    def candidates(self, spec: dict, macro: ChainMacro) -> tuple[tuple[str, ...], ...]:
        v = self.v
        forms = [form for form in CANDIDATE_FORMS if form in spec]
        if len(forms) != 1:
            v.fail("layers", "give exactly one of candidates (every layer), per_stage or per_layer")
        slots = macro.layer_slots()
        form = forms[0]
        if "first_of_stage" in spec and form != "candidates":
            v.fail("layers.first_of_stage", "only goes with layers.candidates")
        if form == "candidates":
            every = v.op_list(spec["candidates"], "layers.candidates")
            first = v.op_list(spec["first_of_stage"], "layers.first_of_stage") if "first_of_stage" in spec else every
            starts = {0} | {i for i in range(1, len(slots)) if slots[i].stage != slots[i - 1].stage}
            return tuple(first if i in starts else every for i in range(len(slots)))
        lists = spec[form]
        expected = len(macro.stages) if form == "per_stage" else len(slots)
        if not isinstance(lists, list) or len(lists) != expected:
            got = len(lists) if isinstance(lists, list) else type(lists).__name__
            v.fail(f"layers.{form}", f"expected {expected} lists (one per {form[4:]}), got {got}")
        ops = [v.op_list(item, f"layers.{form}[{i}]") for i, item in enumerate(lists)]
        return tuple(ops[slot.stage] if form == "per_stage" else ops[slot.index] for slot in slots)

    def search_defaults(self, value: Any) -> tuple[tuple[str, Any], ...]:
        from dmc.search.config import SearchConfig

        # channels and layers are cell-network settings: a chain space's depth and widths are its skeleton's
        allowed = set(SearchConfig.__dataclass_fields__) - {"space", "extra", "channels", "layers"}
        search = self.v.mapping(value, "search", set(), allowed)
        try:
            SearchConfig.from_dict(dict(search), f"{self.source}: search")
        except InvalidInputError:
            for key in sorted(search):  # name the field when one setting is refused on its own
                SearchConfig.from_dict({key: search[key]}, f"{self.source}: search.{key}")
            raise
        return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in search.items()))
