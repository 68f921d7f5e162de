"""With launch_ros installed (a sourced ROS 2): expand both launch files without running them."""
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros
launch_ros = pytest.importorskip("launch_ros")

from launch import LaunchContext, LaunchDescription  # noqa: E402
from launch.actions import (DeclareLaunchArgument, ExecuteProcess,  # noqa: E402
                            IncludeLaunchDescription, OpaqueFunction, RegisterEventHandler)
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from launch.utilities import perform_substitutions  # noqa: E402
from launch_ros.actions import Node  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _expand(name, arguments):
    """(context, nodes, processes, handlers) after declarations, includes and OpaqueFunctions."""
    context = LaunchContext()
    context.launch_configurations.update(arguments)
    source = PythonLaunchDescriptionSource(str(REPO / "launch" / name))
    pending = list(source.get_launch_description(context).entities)
    nodes, processes, handlers = [], [], []
    while pending:
        entity = pending.pop(0)
        if isinstance(entity, LaunchDescription):
            pending[:0] = list(entity.entities)
        elif isinstance(entity, (OpaqueFunction, IncludeLaunchDescription)):
            pending[:0] = list(entity.execute(context) or [])
        elif isinstance(entity, Node):
            if entity.condition is None or entity.condition.evaluate(context):
                entity._perform_substitutions(context)
                nodes.append(entity)
        elif isinstance(entity, ExecuteProcess):
            processes.append([perform_substitutions(context, part) for part in entity.cmd])
        elif isinstance(entity, RegisterEventHandler):
            handlers.append(entity.event_handler)
        elif isinstance(entity, DeclareLaunchArgument) or hasattr(entity, "execute"):
            entity.execute(context)
    return context, nodes, processes, handlers


def _override_file(node):
    import yaml

    files = [path for path, is_file in node._Node__expanded_parameter_arguments if is_file]
    return files, yaml.safe_load(Path(files[-1]).read_text())


def test_segment_launch_passes_only_given_arguments():
    _, nodes, _, _ = _expand("segment.launch.py", {})
    (node,) = nodes
    files, overrides = _override_file(node)
    assert files[0].endswith("config/gsvnet.yaml")
    params = list(overrides.values())[0]["ros__parameters"]
    assert params.pop("config_file").endswith("config/swiftnet_r18.yaml")  # the shipped model
    assert params == {"use_sim_time": False}
    _, nodes, _, _ = _expand("segment.launch.py", {"device": "cuda:0", "keyframe_interval": "3",
                                                   "rviz": "true", "image_topic": "/cam/img",
                                                   "config_file": ""})
    seg = [n for n in nodes if n.node_executable == "segmentation_node"][0]
    params = list(_override_file(seg)[1].values())[0]["ros__parameters"]
    assert params == {"device": "cuda:0", "keyframe_interval": 3, "use_sim_time": False}
    assert ("image", "/cam/img") in seg._Node__expanded_remappings
    assert {n.node_executable for n in nodes} == {"segmentation_node", "rviz2"}


def test_replay_launch_plays_the_bag_on_its_clock_and_can_evaluate():
    _, nodes, processes, handlers = _expand("replay.launch.py", {"bag": "/data/b",
                                                                 "evaluate": "true"})
    assert processes == [["ros2", "bag", "play", "/data/b", "--rate", "1.0", "--clock", "100",
                          "--disable-keyboard-controls"]]
    assert {n.node_executable for n in nodes} == {"segmentation_node", "rviz2",
                                                  "segmentation_evaluator"}
    assert [type(h).__name__ for h in handlers] == ["OnProcessExit"]
