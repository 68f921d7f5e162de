"""Training YAML: shipped files equal the defaults; unknown keys, wrong types and bad ranges fail."""
from pathlib import Path

import numpy as np
import pytest
import torch

from gsvnet_ros.config import ConfigError
from gsvnet_ros.training import KeyframeTrainConfig, PropagationTrainConfig, load_train_config, with_overrides
from gsvnet_ros.training.common import class_weights, lr_factor
from gsvnet_ros.training.config import OptimConfig

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("name, cls", [("train_keyframe.yaml", KeyframeTrainConfig),
                                       ("train_propagation.yaml", PropagationTrainConfig)])
def test_shipped_yaml_equals_the_dataclass_defaults(name, cls):
    assert load_train_config(cls, REPO / "config" / name) == cls()


def test_finetune_yaml_differs_from_the_defaults_only_in_lr_and_class_weighting():
    finetune = load_train_config(KeyframeTrainConfig, REPO / "config" / "train_keyframe_finetune.yaml")
    defaults = KeyframeTrainConfig()
    assert finetune.optim.lr == defaults.optim.lr / 2
    assert finetune.class_weighting == "sqrt_inverse" != defaults.class_weighting
    restored = with_overrides(finetune, {"optim": {"lr": defaults.optim.lr}, "class_weighting": "none"})
    assert restored == defaults


def test_gpu_yaml_is_the_finetune_one_with_whole_frame_crops_and_the_full_lr():
    gpu = load_train_config(KeyframeTrainConfig, REPO / "config" / "train_keyframe_gpu.yaml")
    finetune = load_train_config(KeyframeTrainConfig, REPO / "config" / "train_keyframe_finetune.yaml")
    assert (gpu.augment.crop_height, gpu.augment.crop_width, gpu.loop.batch_size) == (384, 768, 16)
    restored = with_overrides(gpu, {"optim": {"lr": finetune.optim.lr},
                                    "augment": {"crop_height": 256, "crop_width": 256},
                                    "loop": {"batch_size": 8, "checkpoint_every": 100}})
    assert restored == finetune


def test_wide_finetune_yaml_is_the_finetune_one_with_whole_frame_crops_at_batch_4():
    wide = load_train_config(KeyframeTrainConfig, REPO / "config" / "train_keyframe_finetune_wide.yaml")
    finetune = load_train_config(KeyframeTrainConfig, REPO / "config" / "train_keyframe_finetune.yaml")
    assert (wide.augment.crop_height, wide.augment.crop_width, wide.loop.batch_size) == (384, 768, 4)
    restored = with_overrides(wide, {"augment": {"crop_height": 256, "crop_width": 256},
                                     "loop": {"batch_size": 8}})
    assert restored == finetune


def test_far_propagation_yaml_is_the_default_one_with_offsets_2_to_4():
    far = load_train_config(PropagationTrainConfig, REPO / "config" / "train_propagation_far.yaml")
    assert (far.clips.min_offset, far.clips.max_offset) == (2, 4)
    assert with_overrides(far, {"clips": {"min_offset": 1}}) == PropagationTrainConfig()


@pytest.mark.parametrize("cls, text, message", [
    (KeyframeTrainConfig, "loop:\n  iteratons: 3\n", "unknown config key 'loop.iteratons'"),
    (KeyframeTrainConfig, "augmnet: {}\n", "unknown config key 'augmnet'"),
    (KeyframeTrainConfig, "distill_weight: 1\n", "unknown config key 'distill_weight'"),
    (PropagationTrainConfig, "clips:\n  crop_height: 100\n",
     "'clips.crop_height': expected a positive multiple of 32"),
    (PropagationTrainConfig, "clips:\n  min_offset: 3\n  max_offset: 2\n", "min_offset <= max_offset"),
    (PropagationTrainConfig, "model:\n  use_intra: 1\n", "'model.use_intra': expected bool"),
    (KeyframeTrainConfig, "optim:\n  optimizer: lamb\n", "'optim.optimizer': expected one of"),
    (KeyframeTrainConfig, "loop:\n  batch_size: 0\n", "'loop.batch_size': expected an integer >= 1"),
    (KeyframeTrainConfig, "- 1\n", "expected a mapping at the top level"),
    (KeyframeTrainConfig, "loop:\n  data_workers: -1\n", "'loop.data_workers': expected an integer >= 0"),
    (PropagationTrainConfig, "loop:\n  data_workers: 2\n", "unknown config key 'loop.data_workers'"),
    (KeyframeTrainConfig, "augment:\n  color_jitter: 1.5\n", "'augment.color_jitter': expected a number in"),
])
def test_bad_training_config_is_rejected_with_the_key_named(tmp_path, cls, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_train_config(cls, path)


def test_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="training config file not found"):
        load_train_config(KeyframeTrainConfig, tmp_path / "nope.yaml")


def test_overrides_merge_into_nested_sections_and_are_validated():
    cfg = with_overrides(KeyframeTrainConfig(), {"loop": {"iterations": 7}, "optim": {"lr": 1}})
    assert cfg.loop.iterations == 7 and cfg.loop.batch_size == KeyframeTrainConfig().loop.batch_size
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    with pytest.raises(ConfigError, match="unknown config key 'loop.nope'"):
        with_overrides(cfg, {"loop": {"nope": 1}})


def test_lr_schedule_warms_up_linearly_then_decays_to_the_floor():
    cfg = OptimConfig(warmup_iterations=4, min_lr_ratio=0.1)
    factors = [lr_factor(i, 20, cfg) for i in range(20)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(factors[3:], factors[4:]))
    assert lr_factor(20, 20, cfg) == pytest.approx(0.1)


def test_sqrt_inverse_class_weights_favour_rare_classes_with_unit_pixel_mean():
    label = np.zeros((10, 10), np.uint8)
    label[0, :4] = 1  # class 1: 4 %, class 0: 96 %, class 2 absent, 255 ignored
    label[9, :] = 255
    weights = class_weights([label], 3, "sqrt_inverse")
    shares = torch.tensor([86 / 90, 4 / 90])
    assert weights[1] / weights[0] == pytest.approx(float((shares[0] / shares[1]).sqrt()))
    assert float((shares * weights[:2]).sum()) == pytest.approx(1.0)
    assert weights[2] == weights.max()
    assert class_weights([label], 3, "none") is None
