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
    ("stream:\n  keyframe_interval: 0\n", "expected an integer in 1..1000"),
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


@pytest.mark.parametrize("text, message", [
    ("stream:\n  keyframe_interval: 1e23\n", "'stream.keyframe_interval': expected int, got '1e23'"),
    ("stream:\n  keyframe_interval: 1.0e+23\n", "'stream.keyframe_interval': expected int"),
    ("stream:\n  keyframe_interval: 100000000000000000000000\n", "expected an integer in 1..1000"),
    ("stream:\n  keyframe_interval: 1001\n", "expected an integer in 1..1000, got 1001"),
    ("stream:\n  max_gap_s: .inf\n", "'stream.max_gap_s': expected a number in [0.001, 3600.0]"),
    ("stream:\n  max_gap_s: .nan\n", "'stream.max_gap_s'"),
    ("stream:\n  max_gap_s: 0\n", "'stream.max_gap_s'"),
    ("model:\n  num_classes: 256\n", "'model.num_classes': expected an integer in 1..255"),
    ("model:\n  keyframe_scale: .nan\n", "'model.keyframe_scale'"),
    ("runtime:\n  threads: -1\n", "'runtime.threads': expected an integer in 0..1024"),
    ("runtime:\n  threads: 4096\n", "'runtime.threads'"),
    ("runtime:\n  onnx_cache_max_mb: 99999999999\n", "'runtime.onnx_cache_max_mb'"),
    ("runtime:\n  onnx_max_sizes: 0\n", "'runtime.onnx_max_sizes': expected an integer in 1..64"),
    ("runtime:\n  allow_mismatched_weights: 1\n", "'runtime.allow_mismatched_weights': expected bool"),
    ("runtime:\n  keyframe_weights: \"a\\0b\"\n", "'runtime.keyframe_weights': expected a path"),
    ("runtime:\n  device: cuda:99999999999\n", "'runtime.device'"),
    ("1: 2\n", "unknown config key '1'"),
    ("model: " + "[" * 20000 + "]" * 20000 + "\n", "not valid YAML"),
])
def test_out_of_range_or_hostile_values_are_rejected(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_integer_ranges_accept_their_bounds():
    cfg = load_config(None, {"stream": {"keyframe_interval": 1000, "max_gap_s": 3600},
                             "model": {"num_classes": 255},
                             "runtime": {"threads": 1024, "onnx_max_sizes": 64,
                                         "allow_mismatched_weights": True}})
    assert cfg.stream.keyframe_interval == 1000 and cfg.runtime.onnx_max_sizes == 64


def test_a_config_file_that_is_not_utf8_is_one_config_error(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("model:\n  keyframe_net: swiftnet_r18  # réglage\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1.yaml is not UTF-8 text \(invalid .* at byte 40\)"):
        load_config(path)
