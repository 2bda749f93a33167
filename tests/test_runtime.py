"""The device a run asks for: a GPU asked for on a machine without one is refused, naming the setting."""

import pytest
import torch

from dmc.errors import SettingError
from dmc.runtime import resolve_device


def test_a_gpu_asked_for_without_one_names_the_device_setting(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(SettingError, match="device 'cuda:1' requested but no GPU is visible") as info:
        resolve_device("cuda:1")
    assert info.value.hint == "use device cpu or auto"
    assert info.value.cli_text().endswith("(hint: use --device cpu or auto)")
