"""Parameters: one table, descriptors, config-file defaults, run-time changes and rejections."""
import pytest

from gsvnet_ros.config import GSVNetConfig
from gsvnet_ros.ros import params as P
from node_harness import NS, image_msg, scene


def _set(ros, node, name, value):
    Parameter = ros.mods["rclpy.parameter"].Parameter
    return node.set_parameters([Parameter(name, value=value)])[0]


def test_every_table_row_is_declared_with_its_descriptor(harness):
    node = harness(subscribe=()).node
    for spec in P.PARAMETERS:
        assert node.has_parameter(spec.name), spec.name
        desc = node.describe_parameter(spec.name)
        assert desc.read_only == spec.read_only and desc.description == spec.description
        if spec.int_range:
            assert (desc.integer_range[0].from_value, desc.integer_range[0].to_value) == \
                spec.int_range
        if spec.float_range:
            r = desc.floating_point_range[0]
            assert (r.from_value, r.to_value) == spec.float_range


def test_table_defaults_are_the_built_in_config_defaults():
    assert P.defaults_from(GSVNetConfig()) == {s.name: s.default for s in P.PARAMETERS}


@pytest.mark.parametrize("name, value", [
    ("keyframe_interval", 2), ("overlay_alpha", 0.0), ("overlay_alpha", 1.0),
    ("publish_overlay", False), ("max_gap_s", 2.0), ("mask_resolution", "network"),
    ("enabled", False)])
def test_valid_run_time_changes_are_accepted(harness, ros, name, value):
    node = harness(subscribe=()).node
    result = _set(ros, node, name, value)
    assert result.successful, result.reason
    assert node.get_parameter(name).value == value


@pytest.mark.parametrize("name, value, words", [
    ("keyframe_interval", 0, "out of range"),
    ("keyframe_interval", 2.0, "Wrong parameter type"),
    ("overlay_alpha", 1.5, "out of range"),
    ("overlay_alpha", 1, "Wrong parameter type"),
    ("publish_color_mask", "yes", "Wrong parameter type"),
    ("mask_resolution", "full", "mask_resolution must be one of"),
    ("device", "cpu", "read-only"),
    ("keyframe_weights", "/tmp/x.pt", "read-only"),
    ("backend", "torch", "read-only"),
    ("keyframe_net", "bisenet_r18", "read-only"),
    ("keyframe_scale", 0.5, "read-only"),
])
def test_invalid_run_time_changes_are_rejected_with_a_reason(harness, ros, name, value, words):
    node = harness(subscribe=()).node
    before = node.get_parameter(name).value
    result = _set(ros, node, name, value)
    assert not result.successful
    assert words in result.reason
    assert node.get_parameter(name).value == before


def test_on_set_callback_gives_its_own_reason_where_descriptors_cannot():
    assert "keyframe_interval must be an integer >= 1" in P.validate("keyframe_interval", 0)
    assert "overlay_alpha must be a number in [0, 1]" in P.validate("overlay_alpha", -0.1)
    assert "max_gap_s must be a number > 0" in P.validate("max_gap_s", 0.0)
    assert "must be a bool" in P.validate("enabled", 1)
    assert P.validate("use_sim_time", "whatever") is None  # not ours to judge


def test_interval_change_applies_to_running_streams(harness_info, ros_info):
    ros = ros_info
    h = harness_info(subscribe=("info",))
    h.step(image_msg(scene(), stamp_ns=NS))
    assert _set(ros, h.node, "keyframe_interval", 2).successful
    for i in range(1, 5):
        h.step(image_msg(scene(shift=i), stamp_ns=NS + i * 50_000_000))
    assert [m.is_keyframe for m in h.received["info"]] == [True, False, True, False, True]


def test_adaptive_policy_at_run_time_takes_a_keyframe_at_a_cut_and_reports_why(harness_info, ros_info):
    ros = ros_info
    h = harness_info(subscribe=("info",))
    h.step(image_msg(scene(), stamp_ns=NS))
    assert _set(ros, h.node, "keyframe_policy", "adaptive").successful
    assert _set(ros, h.node, "keyframe_budget", 8.0).successful
    assert not _set(ros, h.node, "keyframe_budget", 0.5).successful
    for i in range(1, 4):  # a slowly moving scene, then a different one
        h.step(image_msg(scene(shift=i), stamp_ns=NS + i * 50_000_000))
    # another scene: other layout and other colours (channels swapped), as after a cut to another camera
    h.step(image_msg(scene(seed=9)[::-1, :, ::-1].copy(), stamp_ns=NS + 4 * 50_000_000))
    reasons = [m.keyframe_reason for m in h.received["info"]]
    assert reasons[:3] == ["first", "policy_change", ""] and reasons[-1] in ("scene_change", "change")
    values = {v.key: v.value for v in _diagnostics(h)}
    assert values["keyframe_policy"] == "adaptive" and float(values["keyframe_budget"]) == 8.0
    assert values["keyframes_policy_change"] == "1" and values["keyframes_first"] == "1"


def _diagnostics(h):
    """The key-value pairs of the node's next /diagnostics status."""
    count = len(h.received["diagnostics"])
    h.node.publish_diagnostics()
    h.spin(until=lambda: len(h.received["diagnostics"]) > count)
    return h.received["diagnostics"][-1].status[0].values


def test_mask_resolution_change_restarts_streams_with_a_keyframe(harness_info, ros_info):
    ros = ros_info
    h = harness_info(subscribe=("info", "class_mask"))
    h.step(image_msg(scene(), stamp_ns=NS))
    assert _set(ros, h.node, "mask_resolution", "network").successful
    h.step(image_msg(scene(shift=1), stamp_ns=NS + 50_000_000))
    assert h.received["info"][-1].is_keyframe
    assert h.received["class_mask"][-1].width == 16


def test_config_file_supplies_defaults_and_parameters_override_it(harness, tmp_path):
    cfg = tmp_path / "model.yaml"
    cfg.write_text("stream:\n  keyframe_interval: 7\n  max_gap_s: 2.0\n"
                   "model:\n  keyframe_scale: 0.5\n")
    node = harness(subscribe=(), overrides={"config_file": str(cfg), "max_gap_s": 1.0}).node
    assert node.get_parameter("keyframe_interval").value == 7  # from the file
    assert node.get_parameter("keyframe_scale").value == 0.5
    assert node.get_parameter("max_gap_s").value == 1.0  # the override wins
    assert node.config.stream.keyframe_interval == 7 and node.config.stream.max_gap_s == 1.0
    assert node.config.model.keyframe_scale == 0.5


def test_empty_string_parameters_keep_the_config_file_values(harness, tmp_path):
    cfg = tmp_path / "model.yaml"
    cfg.write_text("runtime:\n  device: cpu\n  backend: torch\n")
    node = harness(subscribe=(), overrides={"config_file": str(cfg), "device": "",
                                            "backend": ""}).node
    assert node.config.runtime.device == "cpu" and node.config.runtime.backend == "torch"


def test_start_up_overrides_are_checked(ros, backend):
    from gsvnet_ros.ros.node import SegmentationNode

    Parameter = ros.mods["rclpy.parameter"].Parameter
    exc = ros.mods["rclpy.exceptions"]
    with pytest.raises(exc.InvalidParameterValueException):
        SegmentationNode(backend=backend, start_worker=False,
                         parameter_overrides=[Parameter("keyframe_interval", value=0)])
    with pytest.raises(exc.InvalidParameterTypeException):  # YAML `1` for a float parameter
        SegmentationNode(backend=backend, start_worker=False,
                         parameter_overrides=[Parameter("overlay_alpha", value=1)])
    with pytest.raises(ValueError, match="device"):
        SegmentationNode(backend=backend, start_worker=False,
                         parameter_overrides=[Parameter("device", value="gpu0")])
