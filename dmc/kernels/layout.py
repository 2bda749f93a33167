"""The memory format the kernels give their results, so that fake kernels and layout-keeping code agree."""

from __future__ import annotations

import torch


def layout_of(t: torch.Tensor) -> torch.memory_format:
    """Channels-last iff ``t`` is channels-last and not also contiguous (``layout_of`` in csrc/common.h)."""
    channels_last = t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
    return torch.channels_last if channels_last else torch.contiguous_format
