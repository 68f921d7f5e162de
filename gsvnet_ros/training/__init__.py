"""Training of the keyframe nets and of the propagation nets (O, phi, G); no argparse inside."""
from .common import TrainingError
from .config import (ClipConfig, DataConfig, KeyframeAugmentConfig, KeyframeTrainConfig, LoopConfig,
                     OptimConfig, PropagationTrainConfig, load_train_config, with_overrides)
from ..data.errors import DatasetLayoutError
from .data import TrainSnippet, index_split
from .keyframe import KeyframeTrainer, keyframe_weights_name
from .propagation import PropagationTrainer, propagation_model_config, propagation_weights_name
from .trainer import CHECKPOINT_NAME, Trainer, read_checkpoint

__all__ = [
    "CHECKPOINT_NAME", "ClipConfig", "DataConfig", "DatasetLayoutError", "KeyframeAugmentConfig",
    "KeyframeTrainConfig", "KeyframeTrainer", "LoopConfig", "OptimConfig", "PropagationTrainConfig",
    "PropagationTrainer", "TrainSnippet",
    "Trainer", "TrainingError", "index_split", "keyframe_weights_name", "load_train_config",
    "propagation_model_config", "propagation_weights_name", "read_checkpoint", "with_overrides",
]
