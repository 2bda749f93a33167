"""Search settings: defaults from the paper's search setting, overridable from YAML and the CLI."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from dmc.cuda_graphs.choice import CUDA_GRAPH_CHOICES
from dmc.distributed import MIN_BATCH
from dmc.errors import SettingError
from dmc.kernels import KERNEL_CHOICES
from dmc.limits import MAX_INPUT_SIZE
from dmc.search.beta import BetaSchedule
from dmc.search.cost_rules import check_cost_settings
from dmc.settings import check_settings, settings_from_dict

METHODS = ("darts", "pc-darts", "p-darts")


@dataclass
class SearchConfig:
    """Everything a search run depends on; saved as ``config.json`` in the run folder."""

    renamed_settings: ClassVar[dict[str, str]] = {"compile": "torch_compile"}
    """Old setting names (in config files and run folders of older versions) -> their fields."""

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
    method: str = "darts"
    """darts; pc-darts: PC-DARTS's partial channel connections and edge normalisation (cell spaces); p-darts:
    P-DARTS's progressive stages (cell spaces). The auxiliary skip (beta0 > 0) makes each the DARTS- variant."""
    partial_channels: int = 4
    """pc-darts: K, the candidates of an edge see 1/K of its channels."""
    channel_shuffle: bool = True
    """pc-darts: shuffle the channels of each edge's output (PC-DARTS's; the DARTS- paper removes it as a prior)."""
    arch_warmup: int = 0
    """Epochs that train only the weights before the architecture steps start (PC-DARTS: 15 of 50; P-DARTS: 10
    of 25, in every stage)."""
    stage_layers: tuple[int, ...] = (5, 11, 17)
    """p-darts: cells of each stage's supernet (epochs, arch_warmup and the beta schedule apply per stage)."""
    stage_keep: tuple[int, ...] = (5, 3)
    """p-darts: candidates kept per edge after each stage but the last (the strongest by the stage's alphas)."""
    skip_dropout: tuple[float, ...] = ()
    """P-DARTS's prior: dropout on skip connections, one rate per stage (one for a plain search), scheduled over
    the stage's epochs as P-DARTS does (:func:`dmc.search.skip_dropout.skip_dropout_rate`); empty: none."""
    max_skips: int | None = None
    """P-DARTS's prior: at most this many skip connections in the final normal cell (P-DARTS: 2); None: no
    limit."""
    channels: int | None = None
    """Initial channels; None keeps the space's macro setting."""
    layers: int | None = None
    """Cells (DARTS family) or cells per stage (NAS-Bench-201); None keeps the space's setting."""
    width: float | None = None
    """Chain spaces: width multiplier of the skeleton; None keeps the space's."""
    image_size: int = 32
    """Side of the (square) training images: digits and image folders are resized to it."""
    beta_schedule: str = "linear"
    beta0: float = 1.0
    beta_start: int = 0
    beta_stop: int | None = None
    beta_convention: str = "dmc"
    """dmc: the schedule spans this run's epochs; official: the official DARTS- code's formulas
    (see :class:`BetaSchedule`)."""
    beta_max_epoch: int | None = None
    """The official convention's decay_max_epoch (None: 50)."""
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    deterministic: bool = False
    num_workers: int = 0
    kernels: str = "auto"
    """Kernels of the mixed sums and depthwise convs: fused (compiled CPU/CUDA kernels), reference (eager
    PyTorch), or auto (fused where they build and pass their check)."""
    channels_last: bool = True
    """Activations in channels-last memory format (faster convolutions on CPU)."""
    recompute_edges: bool = False
    """The mixed edges that hold the most memory keep only their input and recompute their candidates in backward
    (:meth:`dmc.supernet.Supernet.set_recompute_edges`): less memory, some more time."""
    torch_compile: bool = False
    """torch.compile each mixed edge (inductor; aot_eager on CUDA without Triton). Named apart from ``dmc compile``,
    the genotype compiler; files of older dmc versions call it ``compile``."""
    cuda_graphs: str = "auto"
    """How the steps run (:mod:`dmc.cuda_graphs`): auto (captured as CUDA graphs on one GPU, eager elsewhere), on,
    off, or static (the captured step's code run eagerly, on any device)."""
    sync_bn: bool = False
    """Distributed runs: batch-norm statistics over the global batch (:class:`dmc.distributed.SyncBatchNorm2d`)
    instead of each process's share."""
    bench: str | None = None
    """nb201 searches: NATS-Bench's topology archive folder; each epoch's derived cell is looked up in it and its
    benchmark accuracies recorded (:class:`dmc.bench.NB201Bench`)."""
    cost: str | None = None
    """Search for a cost too (:mod:`dmc.search.cost`): ``latency:LUT.json`` (a table of ``dmc latency table``, chain
    spaces), ``macs`` or ``params`` (counted on the supernet's candidates); None: accuracy only."""
    cost_target: float | None = None
    """The target cost T, in the cost's unit (ms, millions of MACs or of parameters); FBNet's rule has none."""
    cost_loss: str = "proxyless-mul"
    """How the cost enters the architecture step's loss: fbnet, proxyless-mul, proxyless-add or tfnas."""
    cost_weight: float | None = None
    """The rule's weight (a of FBNet and ProxylessNAS mul#log, l of the additive rules); None: the authors'."""
    cost_exponent: float | None = None
    """The multiplicative rules' exponent b; None: the authors' (FBNet 0.6, ProxylessNAS 0.3)."""
    hessian_every: int = 0
    """Every N epochs, the dominant eigenvalue of the Hessian of the validation loss w.r.t. alpha (0: never)."""
    hessian_samples: int = 256
    """Validation images (the first of the architecture half, in batches of batch_size) the Hessian is taken on."""
    hessian_iterations: int = 20
    """Most power-iteration steps per eigenvalue (it stops earlier at 1e-3 relative change)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes kept with the run (not used by the search)."""

    @property
    def stages(self) -> int:
        """Searches this run is made of: P-DARTS's stages, or one."""
        return len(self.stage_layers) if self.method == "p-darts" else 1

    @property
    def beta(self) -> BetaSchedule:
        return BetaSchedule(self.beta_schedule, self.beta0, self.beta_start, self.beta_stop, self.beta_convention,
                            self.beta_max_epoch)

    def validate(self, source: str = "search config") -> SearchConfig:
        check_settings(self, source)
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= MIN_BATCH, f"batch_size must be >= {MIN_BATCH} (batch norm needs more than one image "
                                           "per batch)"),
            (0 < self.train_portion < 1, "train_portion must be between 0 and 1"),
            (self.order in (1, 2), "order must be 1 or 2"),
            (self.method in METHODS, f"method must be one of {', '.join(METHODS)}"),
            (self.partial_channels >= 1, "partial_channels must be >= 1"),
            (0 <= self.arch_warmup < self.epochs, "arch_warmup must be >= 0 and below epochs"),
            (len(self.stage_layers) >= 1 and all(n >= 1 for n in self.stage_layers),
             "stage_layers must list at least one stage's cells, each >= 1"),
            (len(self.stage_keep) == len(self.stage_layers) - 1 and all(k >= 1 for k in self.stage_keep)
             and list(self.stage_keep) == sorted(self.stage_keep, reverse=True),
             "stage_keep must give one count >= 1 per stage but the last, not increasing"),
            (len(self.skip_dropout) in (0, self.stages) and all(0 <= p < 1 for p in self.skip_dropout),
             "skip_dropout must give one rate in [0, 1) per stage (one for a plain search), or none"),
            (self.max_skips is None or self.max_skips >= 0, "max_skips must be >= 0"),
            (self.lr > 0 and self.arch_lr > 0, "learning rates must be > 0"),
            (self.lr_min >= 0, "lr_min must be >= 0"),
            (self.momentum >= 0 and self.weight_decay >= 0 and self.arch_weight_decay >= 0,
             "momentum and weight decays must be >= 0"),
            (self.grad_clip > 0, "grad_clip must be > 0"),
            (all(0 <= b < 1 for b in self.arch_betas), "arch_betas must be in [0, 1)"),
            (self.num_workers >= 0, "num_workers must be >= 0"),
            (re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device) is not None, "device must be auto, cpu or cuda[:N]"),
            (self.channels is None or self.channels >= 1, "channels must be >= 1"),
            (self.layers is None or self.layers >= 1, "layers must be >= 1"),
            (self.width is None or 0 < self.width <= 8, "width must be in (0, 8]"),
            (8 <= self.image_size <= MAX_INPUT_SIZE, f"image_size must be in 8..{MAX_INPUT_SIZE}"),
            (self.kernels in KERNEL_CHOICES, f"kernels must be one of {', '.join(KERNEL_CHOICES)}"),
            (self.cuda_graphs in CUDA_GRAPH_CHOICES, f"cuda_graphs must be one of {', '.join(CUDA_GRAPH_CHOICES)}"),
            (self.hessian_every >= 0, "hessian_every must be >= 0 (0: never)"),
            (self.hessian_samples >= 1 and self.hessian_iterations >= 1,
             "hessian_samples and hessian_iterations must be >= 1"),
            (not (self.hessian_every and self.torch_compile),
             "hessian_every needs eager mixed edges (double backward): drop {torch_compile} or {hessian_every}"),
        ]
        for ok, problem in checks:
            if not ok:
                raise SettingError(f"{source}: {problem}")
        self.beta.validate(self.epochs)
        check_cost_settings(self.cost, self.cost_target, self.cost_loss, self.cost_weight, self.cost_exponent)
        return self

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["arch_betas"] = list(self.arch_betas)
        return data

    @classmethod
    def from_dict(cls, data: Any, source: str = "search config") -> SearchConfig:
        """Settings from a mapping (a YAML file, config.json, the command line); ``source`` names it in errors."""
        return settings_from_dict(cls, data, source).validate(source)
