"""The public API module exposes every pipeline step, and importing it stays on the core."""

import dmc.api


def test_api_exports_resolve():
    for name in dmc.api.__all__:
        assert getattr(dmc.api, name) is not None, name
