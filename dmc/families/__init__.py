"""Network families: the DARTS cell family, NAS-Bench-201 and the chain family, each a registered unit (spec,
genotype, layout, derivation, build settings). See :mod:`dmc.families.family` for the interface."""

from dmc.families.family import AnyGenotype, AnySpace, BodyBuilder, Family, SearchBlockOptions
from dmc.families.registry import (
    families,
    family_for_genotype,
    family_for_spec,
    family_of,
    get_family,
    macro_from_dict,
    register_family,
    spec_kinds,
    unregister_family,
)

__all__ = ["AnyGenotype", "AnySpace", "BodyBuilder", "Family", "SearchBlockOptions", "families", "family_for_genotype",
           "family_for_spec", "family_of", "get_family", "macro_from_dict", "register_family", "spec_kinds",
           "unregister_family"]
