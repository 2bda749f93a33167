"""Every field of a spec or genotype given a value of another YAML type (a list, a mapping, null, ...) is one
error line naming the file, from the validators, never an unexpected error (e.g. "unhashable type")."""

import copy

import pytest

from dmc.errors import InvalidInputError
from dmc.genotype import genotype_from_dict, published_genotypes
from dmc.io import read_yaml
from dmc.space import bundled_spaces, space_from_dict

WRONG_TYPES = [["x"], {"k": 1}, None, True, 10**12, 1.5, "text", [], {}, [[1]], [{"a": 1}]]


def _paths(node, prefix=()):
    """The key paths of ``node``'s fields (the first 3 items of each list)."""
    if prefix:
        yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node[:3]):
            yield from _paths(value, (*prefix, i))


def _refusals(data, read) -> list:
    """(path, value, what happened) for each edit of ``data`` that ``read`` does not refuse in one line."""
    wrong = []
    for path in _paths(data):
        for value in WRONG_TYPES:
            edited = copy.deepcopy(data)
            node = edited
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = copy.deepcopy(value)
            try:
                read(edited)
            except InvalidInputError as exc:
                if not str(exc).startswith("file: ") or "\n" in str(exc):
                    wrong.append((path, value, str(exc)))
            except Exception as exc:  # anything else is what this test looks for
                wrong.append((path, value, f"{type(exc).__name__}: {exc}"))
    return wrong


@pytest.mark.parametrize("name", sorted(bundled_spaces()))
def test_spec_fields_of_the_wrong_type_are_refused(name):
    assert _refusals(read_yaml(bundled_spaces()[name]), lambda data: space_from_dict(data, "file")) == []


@pytest.mark.parametrize("name", ["DARTS_V2", "FairNAS_A"])
def test_genotype_fields_of_the_wrong_type_are_refused(name):
    data = published_genotypes()[name].to_dict()
    assert _refusals(data, lambda data: genotype_from_dict(data, "file")) == []
