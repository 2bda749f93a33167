"""Settings for a new search: the searched space's own defaults, then the user's (a file, the command line)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dmc.io import read_yaml
from dmc.search.config import SearchConfig
from dmc.space import load_space


def search_config_for_space(data: dict[str, Any], source: str = "search config") -> SearchConfig:
    """Settings for a new search: the space's own search defaults (a chain space carries the paper's S5 setting),
    then ``data`` (None = not given)."""
    given = {k: v for k, v in data.items() if v is not None}
    defaults: dict[str, Any] = {}
    if isinstance(given.get("space", SearchConfig.space), str):
        defaults = dict(load_space(given.get("space", SearchConfig.space)).search_defaults)
    return SearchConfig.from_dict({**defaults, **given}, source)


def load_search_config(path: str | Path, **overrides: Any) -> SearchConfig:
    """Reads a YAML file of settings; ``overrides`` (e.g. from the CLI; None = not given) win, and the space's
    search defaults fill in what neither gives."""
    data = read_yaml(path)
    data = {} if data is None else data
    if not isinstance(data, dict):  # refused by from_dict, naming the file
        return SearchConfig.from_dict(data, str(path))
    return search_config_for_space({**data, **{k: v for k, v in overrides.items() if v is not None}}, str(path))
