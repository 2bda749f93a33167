"""Training derived networks from scratch: `dmc train`."""

from dmc.train.config import TrainConfig
from dmc.train.loop import TrainResult, load_train_checkpoint, train

__all__ = ["TrainConfig", "TrainResult", "load_train_checkpoint", "train"]
