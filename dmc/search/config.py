"""Search settings: defaults from the paper's search setting, overridable from YAML and the CLI."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dmc.errors import InvalidInputError, check_known_settings
from dmc.io import read_yaml
from dmc.kernels import KERNEL_CHOICES
from dmc.search.beta import BetaSchedule


@dataclass
class SearchConfig:
    """Everything a search run depends on; saved as ``config.json`` in the run folder."""

    space: str = "darts_s0"
    dataset: str = "digits"
    data_root: str | None = None
    epochs: int = 50
    batch_size: int = 64
    train_portion: float = 0.5
    """Fraction of the training split that trains the weights; the rest trains alpha (and validates)."""
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    arch_lr: float = 3e-4
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = 1e-3
    order: int = 1
    """1: first-order DARTS; 2: unrolled step with the finite-difference Hessian-vector product."""
    channels: int | None = None
    """Initial channels; None keeps the space's macro setting."""
    layers: int | None = None
    """Cells (DARTS family) or cells per stage (NAS-Bench-201); None keeps the space's setting."""
    beta_schedule: str = "linear"
    beta0: float = 1.0
    beta_start: int = 0
    beta_stop: int | None = None
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    deterministic: bool = False
    num_workers: int = 0
    kernels: str = "auto"
    """Mixed-sum implementation: fused (compiled CPU/CUDA kernels), reference (eager PyTorch), or auto
    (fused where it builds)."""
    channels_last: bool = True
    """Activations in channels-last memory format (faster convolutions on CPU)."""
    recompute_edges: bool = False
    """Mixed edges keep only their input and recompute the candidates in backward: less memory."""
    compile: bool = False
    """torch.compile each mixed edge (inductor; aot_eager on CUDA without Triton)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes kept with the run (not used by the search)."""

    @property
    def beta(self) -> BetaSchedule:
        return BetaSchedule(self.beta_schedule, self.beta0, self.beta_start, self.beta_stop)

    def validate(self) -> SearchConfig:
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (0 < self.train_portion < 1, "train_portion must be between 0 and 1"),
            (self.order in (1, 2), "order must be 1 or 2"),
            (self.lr > 0 and self.arch_lr > 0, "learning rates must be > 0"),
            (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
             "device must be auto, cpu or cuda"),
            (self.channels is None or self.channels >= 1, "channels must be >= 1"),
            (self.layers is None or self.layers >= 1, "layers must be >= 1"),
            (self.kernels in KERNEL_CHOICES, f"kernels must be one of {', '.join(KERNEL_CHOICES)}"),
        ]
        for ok, problem in checks:
            if not ok:
                raise InvalidInputError(f"search config: {problem}")
        self.beta.validate(self.epochs)
        return self

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["arch_betas"] = list(self.arch_betas)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "search config") -> SearchConfig:
        if not isinstance(data, dict):
            raise InvalidInputError(f"{source}: expected a mapping of settings")
        check_known_settings(data, [f.name for f in dataclasses.fields(cls)], source)
        values = dict(data)
        if "arch_betas" in values:
            values["arch_betas"] = tuple(values["arch_betas"])
        try:
            return cls(**values).validate()
        except TypeError as exc:
            raise InvalidInputError(f"{source}: {exc}") from None


def load_search_config(path: str | Path, **overrides: Any) -> SearchConfig:
    """Reads a YAML file of settings; ``overrides`` (e.g. from the CLI; None = not given) win."""
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path}: expected a mapping of settings")
    data.update({k: v for k, v in overrides.items() if v is not None})
    return SearchConfig.from_dict(data, str(path))
