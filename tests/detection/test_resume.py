"""Resuming an mmengine run works on torch >= 2.6 (weights_only loading) through dmc's entry point."""

import pickle
import subprocess
import sys

import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.registry import MODELS
from torch import nn

from dmc.detection.detector_checkpoints import mmengine_checkpoint_globals
from dmc.detection.runner import build_runner, train
from dmc.errors import InvalidInputError
from dmc.pickles import torch_safe_globals


@MODELS.register_module(force=True)
class _ToyRegressor(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, labels=None, mode="tensor"):
        out = self.linear(torch.stack(inputs) if isinstance(inputs, list) else inputs)
        if mode == "loss":
            return {"loss": ((out - labels) ** 2).mean()}
        return out


def _config(work_dir, epochs):
    generator = torch.Generator().manual_seed(0)
    data = [dict(inputs=torch.randn(2, generator=generator), labels=torch.randn(1, generator=generator))
            for _ in range(8)]
    return dict(
        model=dict(type="_ToyRegressor"),
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=data, sampler=dict(type="DefaultSampler", shuffle=True), batch_size=2,
                              collate_fn=dict(type="default_collate")),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05, momentum=0.9)),
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1), logger=dict(type="LoggerHook")),
        randomness=dict(seed=0),
        log_level="WARNING",
    )


def test_resumed_run_continues_and_equals_an_uninterrupted_one(tmp_path):
    straight = train(_config(tmp_path / "straight", epochs=3))
    train(_config(tmp_path / "resumed", epochs=2))
    # The problem being solved: a plain weights_only load of mmengine's checkpoint fails.
    plain = subprocess.run([sys.executable, "-c", "import sys, torch; torch.load(sys.argv[1])",
                            str(tmp_path / "resumed" / "epoch_2.pth")], capture_output=True, text=True)
    assert plain.returncode != 0 and "Unsupported global" in plain.stderr
    runner = build_runner(_config(tmp_path / "resumed", epochs=3), resume=True)
    resumed = runner.train()
    assert runner.epoch == 3 and runner.iter == 12
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_resume_from_an_explicit_checkpoint(tmp_path):
    train(_config(tmp_path, epochs=1))
    runner = build_runner(_config(tmp_path, epochs=2), resume=tmp_path / "epoch_1.pth")
    runner.train()
    assert runner.epoch == 2
    with pytest.raises(InvalidInputError, match="does not exist"):
        build_runner(_config(tmp_path, epochs=2), resume=tmp_path / "missing.pth")


def test_allowlist_refuses_other_getattr_calls(tmp_path):
    class Sneaky:
        def __reduce__(self):
            return getattr, (HistoryBuffer, "__init__")

    path = tmp_path / "sneaky.pth"
    torch.save({"x": Sneaky()}, path)
    with pytest.raises(pickle.UnpicklingError, match="refusing getattr"), mmengine_checkpoint_globals():
        torch.load(path, weights_only=True)


def test_the_allowlist_holds_for_one_load_only(tmp_path):
    """Resuming leaves torch's allowlist as it found it: a later plain load refuses mmengine's globals again."""
    train(_config(tmp_path, epochs=1))
    build_runner(_config(tmp_path, epochs=2), resume=True).train()
    # torch adds globals of its own as its modules load (torch.distributed's): only dmc's must be gone
    left = set(torch.serialization.get_safe_globals())
    assert HistoryBuffer not in left and not left & set(torch_safe_globals())
    with pytest.raises(pickle.UnpicklingError, match="Unsupported global"):
        torch.load(tmp_path / "epoch_2.pth", weights_only=True)
