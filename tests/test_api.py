"""The public API module exposes every pipeline step, and importing it stays on the core; ``import dmc`` gives it,
lazily."""

import subprocess
import sys

import pytest

import dmc
import dmc.api


def test_api_exports_resolve():
    for name in dmc.api.__all__:
        assert getattr(dmc.api, name) is not None, name


def test_import_dmc_is_cheap_and_gives_the_public_api():
    code = ("import sys, dmc; cheap = 'torch' not in sys.modules; "
            "print(cheap, dmc.create_model('DARTS_V2', channels=4, layers=5).num_classes, dmc.list_models('Fair*'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.split(maxsplit=2) == ["True", "10", "['FairNAS_A', 'FairNAS_B', 'FairNAS_C']\n"]


def test_every_api_name_is_a_name_of_dmc():
    from dmc import create_model, load_space  # PEP 562: from-imports work too

    assert create_model is dmc.api.create_model and load_space is dmc.api.load_space
    modules = {"search", "train", "derive", "profile"}  # the package's modules of those names, by Python's imports
    for name in dmc.api.__all__:
        value = getattr(dmc, name)
        assert value is (sys.modules[f"dmc.{name}"] if name in modules else getattr(dmc.api, name)), name
    assert dmc.search.search is dmc.api.search and set(dmc.api.__all__) <= set(dir(dmc))
    with pytest.raises(AttributeError, match="module 'dmc' has no attribute 'nope'"):
        dmc.nope  # noqa: B018
