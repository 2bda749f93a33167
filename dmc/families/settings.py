"""The one check that a build or search setting belongs to the family it is given for."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dmc.errors import SettingError

SIZE_SETTINGS = ("channels", "layers", "width")
"""The settings that size a network, each of one family."""


def check_family_settings(name: str, own: tuple[str, ...], settings: Mapping[str, Any], subject: str = "") -> None:
    """Refuses the first setting of ``settings`` that is given (not None) and not one of ``own``, the settings of
    ``name`` networks. ``subject`` leads the message (e.g. ``"s5 is a chain space"``)."""
    foreign = [key for key, value in settings.items() if value is not None and key not in own]
    if foreign:
        lead = subject or f"a {name} network"
        sized_by = " and ".join(f"{{{key}}}" for key in own if key in SIZE_SETTINGS)
        raise SettingError(f"{lead}: {{{foreign[0]}}} is not a setting of {name} networks",
                           f"{name} networks are sized by {sized_by}")
