"""Typed config: YAML loading, defaults, unknown keys and wrong types rejected with clear messages."""
from pathlib import Path

import pytest

from gsvnet_ros.config import ConfigError, GSVNetConfig, load_config

REPO = Path(__file__).resolve().parents[2]


def test_shipped_yaml_loads_and_equals_defaults_where_documented():
    cfg = load_config(REPO / "config" / "model.yaml")
    assert cfg == GSVNetConfig()


def test_overrides_apply_per_section(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  keyframe_net: bisenet_r18\nstream:\n  keyframe_interval: 3\n")
    cfg = load_config(path, {"stream": {"max_gap_s": 2}})
    assert cfg.model.keyframe_net == "bisenet_r18"
    assert cfg.stream.keyframe_interval == 3
    assert cfg.stream.max_gap_s == 2.0 and isinstance(cfg.stream.max_gap_s, float)


@pytest.mark.parametrize("text, message", [
    ("model:\n  keyframe_nett: x\n", "unknown config key 'model.keyframe_nett'"),
    ("modle: {}\n", "unknown config key 'modle'"),
    ("model:\n  keyframe_net: resnet50\n", "'model.keyframe_net': expected one of 'swiftnet_r18', 'bisenet_r18'"),
    ("stream:\n  keyframe_interval: 2.5\n", "'stream.keyframe_interval': expected int"),
    ("stream:\n  keyframe_interval: true\n", "'stream.keyframe_interval': expected int"),
    ("stream:\n  keyframe_interval: 0\n", "expected an integer >= 1"),
    ("model:\n  kernel_size: 4\n", "one of 3, 5"),
    ("runtime:\n  device: gpu\n", "'runtime.device'"),
    ("runtime:\n  keyframe_weights: 3\n", "'runtime.keyframe_weights': expected str or null"),
    ("model: 3\n", "section 'model': expected a mapping"),
    ("- a\n- b\n", "expected a mapping at the top level"),
    ("model: [\n", "not valid YAML"),
])
def test_bad_config_is_rejected_with_a_message(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(path)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_relative_weight_paths_are_relative_to_the_yaml_file(tmp_path):
    (tmp_path / "cfg").mkdir()
    path = tmp_path / "cfg" / "m.yaml"
    path.write_text("runtime:\n  keyframe_weights: ../models/k.pt\n  propagation_weights: /abs/p.pt\n")
    cfg = load_config(path)
    assert cfg.runtime.keyframe_weights == str((tmp_path / "models" / "k.pt").resolve())
    assert cfg.runtime.propagation_weights == "/abs/p.pt"
