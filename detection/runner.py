"""Training and testing entry points on mmengine's Runner, usable from Python and from `dmc detect`.

Configs are read by :func:`dmc.detection.config_files.load_config` (Python configs are code, YAML/JSON
configs data); the COCO annotation files and images a run uses, and any checkpoint it is given, are
checked before the Runner starts, so a bad file is one error line instead of a failure mid-run.
"""

from __future__ import annotations

from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner, find_latest_checkpoint

from dmc.detection.coco import check_config_datasets
from dmc.detection.config_files import load_config
from dmc.detection.detector_checkpoints import DataCheckpointRunner, check_checkpoint_fits, read_detector_checkpoint
from dmc.distributed import join
from dmc.errors import InvalidInputError, SettingError
from dmc.outputs import same_file

__all__ = ["build_runner", "evaluate", "load_config", "train", "training_summary"]

TRAIN_LOADERS = ("train_dataloader", "val_dataloader")


def _refuse_overwriting_the_config(cfg: Config) -> None:
    # mmengine's Runner writes its copy of the config to work_dir/<the config's file name>
    if cfg.filename and same_file(Path(cfg.work_dir) / Path(cfg.filename).name, cfg.filename):
        raise SettingError(f"{cfg.filename} lies in its own work_dir {cfg.work_dir}, where the run writes its copy "
                           "of the config over it", "move the config out of the work_dir, or pass {work_dir}")


def build_runner(config: str | Path | dict | Config, work_dir: str | Path | None = None,
                 resume: bool | str | Path = False, launcher: str = "none",
                 datasets: tuple[str, ...] = TRAIN_LOADERS) -> Runner:
    """Builds mmengine's Runner from ``config``.

    ``resume``: False starts afresh; True continues from the latest checkpoint in ``work_dir``;
    a path continues from that checkpoint. Checkpoints are read with ``weights_only=True``.
    ``launcher`` (none, pytorch, slurm, mpi) is mmengine's, for multi-GPU runs. The COCO datasets of
    the ``datasets`` dataloaders are checked first (:func:`dmc.detection.coco.check_config_datasets`).
    """
    cfg = load_config(config)
    cfg.launcher = launcher
    if launcher != "none" and not torch.cuda.is_available():
        _join_on_cpus(cfg)
    if work_dir is not None:
        cfg.work_dir = str(work_dir)
    if not cfg.get("work_dir"):
        raise InvalidInputError("the config sets no work_dir", "pass a work directory")
    _refuse_overwriting_the_config(cfg)
    check_config_datasets(cfg, datasets)
    checkpoint = None
    if isinstance(resume, (str, Path)) and not isinstance(resume, bool):
        checkpoint = resume
        cfg.resume, cfg.load_from = True, str(resume)
    elif resume:
        checkpoint = find_latest_checkpoint(cfg.work_dir)  # what mmengine resumes from (None: it starts afresh)
        cfg.resume = True
    weights = None if checkpoint is None else read_detector_checkpoint(checkpoint, resume=True)
    runner = DataCheckpointRunner.from_cfg(cfg)
    if weights is not None:
        check_checkpoint_fits(_unwrapped(runner), weights, checkpoint)
    return runner


def _join_on_cpus(cfg: Config) -> None:
    """mmengine's launchers assume one GPU per process (they call ``torch.cuda.set_device`` and NCCL): without GPUs,
    the processes of a torchrun or Slurm run join over gloo here, and the detector is wrapped in DDP without
    device ids."""
    if not join().active:
        raise SettingError(f"{{launcher}} {cfg.launcher}: this process was not started by a distributed launcher",
                           "run it under torchrun (or srun), or use {launcher} none")
    cfg.model_wrapper_cfg = dict(type="MMDistributedDataParallel", device_ids=None, broadcast_buffers=False,
                                 find_unused_parameters=cfg.get("find_unused_parameters", False))


def _unwrapped(runner: Runner):
    return runner.model.module if is_model_wrapper(runner.model) else runner.model


def train(config: str | Path | dict | Config, work_dir: str | Path | None = None,
          resume: bool | str | Path = False, launcher: str = "none"):
    """Trains the model of ``config`` (see :func:`build_runner`); returns the trained model."""
    return build_runner(config, work_dir, resume, launcher).train()


def training_summary(runner: Runner) -> str:
    """One line for the end of a training run: its last checkpoint and the bbox mAP of its last validation."""
    hub = runner.message_hub
    checkpoint, score = hub.get_info("last_ckpt"), hub.log_scalars.get("val/coco/bbox_mAP")
    saved = f"last checkpoint {checkpoint}" if checkpoint else "no checkpoint saved"
    if score is not None:
        scored = f"val bbox mAP {score.current():.4f} (the last validation)"
    elif any(key.startswith("val/") for key in hub.log_scalars):  # mmdet's CocoMetric reports nothing without boxes
        scored = "val bbox mAP: none (the last validation detected nothing to score)"
    else:
        scored = "no validation ran"
    return f"done: {saved}; {scored}; logs in {runner.work_dir}"


def evaluate(config: str | Path | dict | Config, checkpoint: str | Path, work_dir: str | Path | None = None,
             launcher: str = "none") -> dict:
    """Runs the test loop of ``config`` on ``checkpoint``; returns the metrics (COCO bbox mAP, ...).

    Refuses a checkpoint that does not hold every weight of the config's model (e.g. a `dmc search`
    checkpoint), which would otherwise be evaluated as a randomly initialised detector.
    """
    weights = read_detector_checkpoint(checkpoint)
    cfg = load_config(config)
    cfg.load_from = str(checkpoint)
    cfg.resume = False
    runner = build_runner(cfg, work_dir, False, launcher, datasets=("test_dataloader",))
    check_checkpoint_fits(_unwrapped(runner), weights, checkpoint)
    return runner.test()
