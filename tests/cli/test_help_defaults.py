"""The defaults the CLI's help texts state (`[0.025]`) are the config classes' own: the flags default to None and
the configs fill in, so a help text is the only place a default is written twice, and it must not drift."""

import dataclasses
import re

import pytest
from typer.main import get_command

from dmc.cli.main import app
from dmc.search import SearchConfig
from dmc.train import TrainConfig


def _said(value) -> str | None:
    """How a help text writes a config default (None: a default the text describes in words)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(map(str, value)) if value else "none"
    if isinstance(value, (int, float, str)):
        return str(value)
    return None


def _same(stated: str, default: str) -> bool:
    try:
        return float(stated) == float(default)
    except ValueError:
        return stated == default


CLI_OWN = {("train", "dataset"): "digits"}
"""Defaults the CLI sets itself: `dmc train` runs on the embedded data, where TrainConfig's default is the paper's
CIFAR-10."""


@pytest.mark.parametrize("command, config", [("search", SearchConfig), ("train", TrainConfig),
                                             ("ablate", SearchConfig)])
def test_help_texts_state_the_config_defaults(command, config):
    defaults = {f.name: _said(f.default) for f in dataclasses.fields(config) if f.default is not dataclasses.MISSING}
    checked = 0
    for option in get_command(app).commands[command].params:
        stated = re.findall(r"\[([^\]]*)\]", option.help or "")  # the last bracket: '... cifar10[:PATH] [digits]'
        default = CLI_OWN.get((command, option.name), defaults.get(option.name))
        if not stated or default is None:
            continue
        # the plain default comes first: '[600; digits 30; imagenet recipe 350]', '[search 64, train 96]'
        first = re.split(r";|=| \(" if "," in default else r"[;,=]| \(", stated[-1])[0].strip()
        first = re.sub(r"^(search|train) ", "", first)
        if first and " " not in first:
            assert _same(first, default), f"{command} --{option.name}: help says [{first}], the config {default}"
            checked += 1
    assert checked >= 5
