"""What `ros2 launch gsvnet_ros segment.launch.py` would start, without launch / launch_ros.

launch and launch_ros are not installable here, so this runs a launch file's
generate_launch_description() against a minimal stand-in of the few classes our launch files use,
and turns the resulting Node into the command line launch_ros builds for it: the executable, then
`--ros-args -r __node:=NAME [-r __ns:=NS]`, one `--params-file` per parameter file or dict (a dict
is written to a YAML file under `/**: ros__parameters:`), one `-r from:=to` per remapping, and the
environment that SetEnvironmentVariable actions set. The process tests start exactly that.
"""
from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

REPO = Path(__file__).resolve().parents[2]


class _Context:
    def __init__(self, arguments: dict[str, str]) -> None:
        self.launch_configurations = dict(arguments)


def _perform(value: Any, context: _Context) -> Any:
    if hasattr(value, "perform"):
        return value.perform(context)
    if isinstance(value, (list, tuple)):
        return "".join(str(_perform(v, context)) for v in value)
    return value


class LaunchConfiguration:
    def __init__(self, name: str) -> None:
        self.name = name

    def perform(self, context: _Context) -> str:
        return context.launch_configurations[self.name]


class PathJoinSubstitution:
    def __init__(self, parts: list) -> None:
        self.parts = parts

    def perform(self, context: _Context) -> str:
        return str(Path(*[str(_perform(p, context)) for p in self.parts]))


class FindPackageShare:
    """share/gsvnet_ros of an installed package is the source tree's root here."""

    def __init__(self, package: str) -> None:
        assert package == "gsvnet_ros", package

    def perform(self, context: _Context) -> str:
        return str(REPO)


class IfCondition:
    def __init__(self, predicate: Any) -> None:
        self.predicate = predicate

    def evaluate(self, context: _Context) -> bool:
        return str(_perform(self.predicate, context)).lower() == "true"


class UnlessCondition(IfCondition):
    def evaluate(self, context: _Context) -> bool:
        return not super().evaluate(context)


class ParameterValue:
    def __init__(self, value: Any, value_type: Any = None) -> None:
        self.value, self.value_type = value, value_type


class _Action:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs
        self.condition = kwargs.get("condition")


class DeclareLaunchArgument(_Action):
    pass


class OpaqueFunction(_Action):
    pass


class SetEnvironmentVariable(_Action):
    pass


class Node(_Action):
    pass


class LaunchDescription:
    def __init__(self, entities: list) -> None:
        self.entities = list(entities)


_MODULES = {
    "launch": {"LaunchDescription": LaunchDescription},
    "launch.actions": {"DeclareLaunchArgument": DeclareLaunchArgument,
                       "OpaqueFunction": OpaqueFunction,
                       "SetEnvironmentVariable": SetEnvironmentVariable},
    "launch.conditions": {"IfCondition": IfCondition, "UnlessCondition": UnlessCondition},
    "launch.substitutions": {"LaunchConfiguration": LaunchConfiguration,
                             "PathJoinSubstitution": PathJoinSubstitution},
    "launch_ros": {},
    "launch_ros.actions": {"Node": Node},
    "launch_ros.parameter_descriptions": {"ParameterValue": ParameterValue},
    "launch_ros.substitutions": {"FindPackageShare": FindPackageShare},
}


@dataclass
class NodeProcess:
    """A node as launch would start it: the command after the executable, and added env vars."""

    executable: str
    name: str
    ros_args: list[str]
    env: dict[str, str] = field(default_factory=dict)


def _ros_args(node: Node, context: _Context, workdir: Path) -> list[str]:
    kwargs = node.kwargs
    args = ["--ros-args", "-r", f"__node:={_perform(kwargs['name'], context)}"]
    namespace = _perform(kwargs.get("namespace", ""), context)
    if namespace:
        args += ["-r", f"__ns:={namespace if namespace.startswith('/') else '/' + namespace}"]
    for i, item in enumerate(kwargs.get("parameters", [])):
        if isinstance(item, dict):
            path = workdir / f"params_{i}.yaml"
            values = {k: v.value if isinstance(v, ParameterValue) else v for k, v in item.items()}
            path.write_text(yaml.safe_dump({"/**": {"ros__parameters": values}}))
            item = path
        args += ["--params-file", str(_perform(item, context))]
    for source, target in kwargs.get("remappings", []):
        args += ["-r", f"{_perform(source, context)}:={_perform(target, context)}"]
    return args


def expand(launch_file: str, arguments: dict[str, str], workdir: Path) -> list[NodeProcess]:
    """The nodes `launch_file` (under launch/) starts with these launch arguments."""
    saved = {name: sys.modules.get(name) for name in _MODULES}
    try:
        for name, members in _MODULES.items():
            module = types.ModuleType(name)
            module.__dict__.update(members)
            sys.modules[name] = module
        namespace: dict[str, Any] = {"__name__": "launch_file"}
        path = REPO / "launch" / launch_file
        exec(compile(path.read_text(), str(path), "exec"), namespace)
        description = namespace["generate_launch_description"]()
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    context = _Context(arguments)
    env: dict[str, str] = {}
    nodes: list[NodeProcess] = []
    pending = list(description.entities)
    while pending:
        entity = pending.pop(0)
        if entity.condition is not None and not entity.condition.evaluate(context):
            continue
        if isinstance(entity, DeclareLaunchArgument):
            context.launch_configurations.setdefault(
                entity.args[0], str(_perform(entity.kwargs.get("default_value", ""), context)))
        elif isinstance(entity, SetEnvironmentVariable):
            env[entity.args[0]] = str(_perform(entity.args[1], context))
        elif isinstance(entity, OpaqueFunction):
            pending[:0] = list(entity.kwargs["function"](context) or [])
        elif isinstance(entity, Node):
            nodes.append(NodeProcess(entity.kwargs["executable"],
                                     str(_perform(entity.kwargs["name"], context)),
                                     _ros_args(entity, context, workdir), dict(env)))
    return nodes


def node_process(launch_file: str, arguments: dict[str, str], workdir: Path,
                 executable: str = "segmentation_node") -> Optional[NodeProcess]:
    """The one node named `executable` that `launch_file` starts."""
    found = [n for n in expand(launch_file, arguments, workdir) if n.executable == executable]
    assert len(found) == 1, [n.executable for n in found]
    return found[0]
