"""``python float64_dmc.py ARGS``: the ``dmc`` command computing in float64 (networks and the digits images), also
under torchrun.

In float32, two runs whose sums differ only in rounding (one process or two, other kernels, another memory layout)
part after a few steps of a search: a difference of 1e-7 sooner or later moves a ReLU input or a max-pool window
across its kink, and each such jump moves the weights further. In float64 rounding stays near 1e-15 and crosses no
kink in a short run, so what two processes compute can be held to one process's step for step.
"""

import torch

from dmc.data.tensors import TensorImageDataset

_item = TensorImageDataset.__getitem__


def _float64_item(self: TensorImageDataset, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    image, label = _item(self, index)
    return image.double(), label


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    TensorImageDataset.__getitem__ = _float64_item
    from dmc.cli.main import main

    main()
