"""Training and testing entry points on mmengine's Runner, usable from Python and from `dmc detect`."""

from __future__ import annotations

from pathlib import Path

from mmengine.config import Config
from mmengine.runner import Runner

from dmc.detection.checkpoints import allow_mmengine_checkpoints
from dmc.errors import InvalidInputError


def load_config(config: str | Path | dict | Config) -> Config:
    """Reads an mmengine config from a file (or takes a dict / Config as is)."""
    if isinstance(config, Config):
        return config
    if isinstance(config, dict):
        return Config(config)
    path = Path(config)
    if not path.is_file():
        raise InvalidInputError(f"config file {path} does not exist",
                                "write one with `dmc detect config` or pass the path of an mmdet config")
    return Config.fromfile(str(path))


def build_runner(config: str | Path | dict | Config, work_dir: str | Path | None = None,
                 resume: bool | str | Path = False, launcher: str = "none") -> Runner:
    """Builds mmengine's Runner from ``config``.

    ``resume``: False starts afresh; True continues from the latest checkpoint in ``work_dir``;
    a path continues from that checkpoint. Checkpoints are read with ``weights_only=True``.
    ``launcher`` (none, pytorch, slurm, mpi) is mmengine's, for multi-GPU runs.
    """
    cfg = load_config(config)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = str(work_dir)
    if not cfg.get("work_dir"):
        raise InvalidInputError("the config sets no work_dir", "pass a work directory")
    if isinstance(resume, (str, Path)) and not isinstance(resume, bool):
        if not Path(resume).is_file():
            raise InvalidInputError(f"checkpoint {resume} does not exist", "pass a .pth file from a work_dir")
        cfg.resume, cfg.load_from = True, str(resume)
    elif resume:
        cfg.resume = True
    allow_mmengine_checkpoints()
    return Runner.from_cfg(cfg)


def train(config: str | Path | dict | Config, work_dir: str | Path | None = None,
          resume: bool | str | Path = False, launcher: str = "none"):
    """Trains the model of ``config`` (see :func:`build_runner`); returns the trained model."""
    return build_runner(config, work_dir, resume, launcher).train()


def evaluate(config: str | Path | dict | Config, checkpoint: str | Path, work_dir: str | Path | None = None,
             launcher: str = "none") -> dict:
    """Runs the test loop of ``config`` on ``checkpoint``; returns the metrics (COCO bbox mAP, ...)."""
    if not Path(checkpoint).is_file():
        raise InvalidInputError(f"checkpoint {checkpoint} does not exist", "pass a .pth file from the work dir")
    cfg = load_config(config)
    cfg.load_from = str(checkpoint)
    cfg.resume = False
    runner = build_runner(cfg, work_dir, False, launcher)
    return runner.test()
