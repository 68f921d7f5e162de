"""rclpy.node.Node of the stand-in: names, parameters (every row of RCLPY_SURFACE §1.2)."""
from __future__ import annotations

import math
import re
import warnings
from typing import Any, Callable, Dict, List, Optional

from . import _context, _graph, _msgs
from ._callback_groups import MutuallyExclusiveCallbackGroup
from ._entities import Client, Publisher, Service, Subscription, Timer
from ._exceptions import (InvalidNamespaceException, InvalidNodeNameException,
                          InvalidParameterException, InvalidParameterTypeException,
                          InvalidParameterValueException, InvalidTopicNameException,
                          NotInitializedException, ParameterAlreadyDeclaredException,
                          ParameterNotDeclaredException, ParameterUninitializedException)
from ._logging import RcutilsLogger
from ._parameter import Parameter
from ._qos import profile_from, qos_profile_parameter_events, qos_profile_services_default
from ._time import ROSClock

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOPIC_RE = re.compile(r"^[~/A-Za-z0-9_{}]+$")
PARAM_REL_TOL = 1e-6


def _descriptor_cls() -> Any:
    return _msgs.message_class("rcl_interfaces/msg/ParameterDescriptor")


def _result(successful: bool, reason: str = "") -> Any:
    return _msgs.message_class("rcl_interfaces/msg/SetParametersResult")(
        successful=successful, reason=reason)


class Node:
    PARAM_REL_TOL = PARAM_REL_TOL

    def __init__(self, node_name: str, *, context: Any = None, cli_args: Optional[List[str]] = None,
                 namespace: Optional[str] = None, use_global_arguments: bool = True,
                 enable_rosout: bool = True, start_parameter_services: bool = True,
                 parameter_overrides: Optional[List[Parameter]] = None,
                 allow_undeclared_parameters: bool = False,
                 automatically_declare_parameters_from_overrides: bool = False) -> None:
        self._context = _context.get_default_context() if context is None else context
        if not self._context.ok():
            raise NotInitializedException("cannot create node")
        if not _NAME_RE.match(node_name):
            raise InvalidNodeNameException(f"node name '{node_name}' is invalid")
        ns = namespace or ""
        if ns and not ns.startswith("/"):
            ns = "/" + ns
        if ns and (ns.endswith("/") and ns != "/" or not re.match(r"^[/A-Za-z0-9_]*$", ns)
                   or "//" in ns):
            raise InvalidNamespaceException(f"namespace '{namespace}' is invalid")
        self._name = node_name
        self._namespace = ns.rstrip("/") or "/"
        self._allow_undeclared_parameters = allow_undeclared_parameters
        self._parameters: Dict[str, Parameter] = {}
        self._descriptors: Dict[str, Any] = {}
        self._parameters_callbacks: List[Callable] = []
        global_params = self._context.global_params if use_global_arguments else {}
        local_params, self._remaps = _context.parse_ros_args(cli_args)
        if use_global_arguments:
            self._remaps = self._context.global_remaps + self._remaps
        self._parameter_overrides: Dict[str, Parameter] = {
            k: Parameter(k, value=v) for k, v in {**global_params, **local_params}.items()}
        for p in parameter_overrides or []:
            self._parameter_overrides[p.name] = p
        self._logger = RcutilsLogger(node_name)
        self._clock = ROSClock()
        self._default_callback_group = MutuallyExclusiveCallbackGroup()
        self._publishers: list = []
        self._subscriptions: list = []
        self._services: list = []
        self._clients: list = []
        self._timers: list = []
        self._executor: Any = None
        self.destroyed = False
        ParameterEvent = _msgs.message_class("rcl_interfaces/msg/ParameterEvent")
        self._parameter_event_publisher = self.create_publisher(
            ParameterEvent, "/parameter_events", qos_profile_parameter_events)
        # TimeSource: use_sim_time, and an on_set callback rejecting a non-bool value.
        self.declare_parameter("use_sim_time", False)
        self.add_on_set_parameters_callback(self._time_source_callback)
        if automatically_declare_parameters_from_overrides:
            for name, p in self._parameter_overrides.items():
                if not self.has_parameter(name):
                    self.declare_parameter(name, p.value)

    @staticmethod
    def _time_source_callback(parameters: List[Parameter]) -> Any:
        for p in parameters:
            if p.name == "use_sim_time" and p.type_ != Parameter.Type.BOOL:
                return _result(False, "use_sim_time parameter must be a boolean")
        return _result(True)

    # ---- identity ------------------------------------------------------------------------
    def get_name(self) -> str:
        return self._name

    def get_namespace(self) -> str:
        return self._namespace

    def get_fully_qualified_name(self) -> str:
        return ("" if self._namespace == "/" else self._namespace) + "/" + self._name

    def get_logger(self) -> RcutilsLogger:
        return self._logger

    def get_clock(self) -> ROSClock:
        return self._clock

    @property
    def context(self) -> Any:
        return self._context

    @property
    def default_callback_group(self) -> Any:
        return self._default_callback_group

    @property
    def executor(self) -> Any:
        return self._executor

    @executor.setter
    def executor(self, value: Any) -> None:
        self._executor = value

    @property
    def publishers(self):
        yield from self._publishers

    @property
    def subscriptions(self):
        yield from self._subscriptions

    @property
    def services(self):
        yield from self._services

    @property
    def timers(self):
        yield from self._timers

    @property
    def clients(self):
        yield from self._clients

    # ---- names -----------------------------------------------------------------------------
    def resolve_topic_name(self, topic: str, *, only_expand: bool = False) -> str:
        if not topic or not _TOPIC_RE.match(topic) or topic.endswith("/") or "//" in topic:
            raise InvalidTopicNameException(f"topic name '{topic}' is invalid")
        fqn = self.get_fully_qualified_name()
        if topic == "~":
            name = fqn
        elif topic.startswith("~/"):
            name = fqn + topic[1:]
        elif topic.startswith("/"):
            name = topic
        else:
            name = ("" if self._namespace == "/" else self._namespace) + "/" + topic
        if not only_expand:
            for src, dst in self._remaps:
                if src.startswith("__"):
                    continue
                if self.resolve_topic_name(src, only_expand=True) == name:
                    name = self.resolve_topic_name(dst, only_expand=True)
                    break
        return name

    # ---- parameters -------------------------------------------------------------------------
    def declare_parameter(self, name: str, value: Any = None, descriptor: Any = None,
                          ignore_override: bool = False) -> Parameter:
        if value is None and descriptor is None:
            warnings.warn(f"when declaring parameter named '{name}', declaring a parameter only "
                          "providing its name is deprecated.", DeprecationWarning, stacklevel=2)
            descriptor = _descriptor_cls()(dynamic_typing=True)
        if descriptor is None:
            descriptor = _descriptor_cls()()
        return self.declare_parameters("", [(name, value, descriptor)], ignore_override)[0]

    def declare_parameters(self, namespace: str, parameters: List[tuple],
                           ignore_override: bool = False) -> List[Parameter]:
        plist: list[Parameter] = []
        descriptors: dict[str, Any] = {}
        for index, ptuple in enumerate(parameters):
            if not 1 <= len(ptuple) <= 3:
                raise TypeError(f"Invalid parameter tuple length at index {index}")
            name = ptuple[0]
            second = ptuple[1] if len(ptuple) > 1 else None
            descriptor = ptuple[2] if len(ptuple) > 2 else _descriptor_cls()()
            if not isinstance(name, str):
                raise TypeError(f"First element {name} at index {index} is not a str.")
            if not isinstance(descriptor, _descriptor_cls()):
                raise TypeError(f"Third element at index {index} is not a ParameterDescriptor.")
            if len(ptuple) == 1:
                warnings.warn(f"declaring parameter '{name}' by name only is deprecated",
                              DeprecationWarning, stacklevel=2)
                descriptor.dynamic_typing = True
            value = None
            if isinstance(second, Parameter.Type):
                if second == Parameter.Type.NOT_SET:
                    raise ValueError(f"Cannot declare parameter {{{name}}} as statically typed "
                                     "of type NOT_SET")
                if descriptor.dynamic_typing:
                    raise ValueError("dynamic_typing=True is not allowed with a parameter type")
                descriptor.type = second.value
            else:
                value = second
                if not descriptor.dynamic_typing:
                    if value is None:  # Jazzy's rule (stricter than Humble)
                        raise ValueError("Cannot declare a statically typed parameter with default "
                                         "value of type PARAMETER_NOT_SET")
                    descriptor.type = Parameter.Type.from_parameter_value(value).value
            if not ignore_override and name in self._parameter_overrides:
                value = self._parameter_overrides[name].value
            if namespace:
                name = f"{namespace}.{name}"
            if not name:
                raise InvalidParameterException(name)
            plist.append(Parameter(name, value=value))
            descriptors[name] = descriptor
        already = [p.name for p in plist if p.name in self._parameters]
        if already:
            raise ParameterAlreadyDeclaredException(already)
        for param in plist:
            result = self._set_atomically([param], descriptors, allow_not_set=True)
            if not result.successful:
                if result.reason.startswith("Wrong parameter type"):
                    raise InvalidParameterTypeException(
                        param, Parameter.Type(descriptors[param.name].type).name)
                raise InvalidParameterValueException(param.name, param.value, result.reason)
        return [self._parameters[p.name] for p in plist]

    def undeclare_parameter(self, name: str) -> None:
        if self.has_parameter(name):
            if self._descriptors[name].read_only:
                raise RuntimeError("Attempting to undeclare a read-only parameter")
            del self._parameters[name]
            del self._descriptors[name]
        else:
            raise ParameterNotDeclaredException(name)

    def has_parameter(self, name: str) -> bool:
        return name in self._parameters

    def get_parameter(self, name: str) -> Parameter:
        if self.has_parameter(name):
            param = self._parameters[name]
            if param.type_ == Parameter.Type.NOT_SET and not self._descriptors[name].dynamic_typing:
                raise ParameterUninitializedException(name)
            return param
        if self._allow_undeclared_parameters:
            return Parameter(name, Parameter.Type.NOT_SET, None)
        raise ParameterNotDeclaredException(name)

    def get_parameters(self, names: List[str]) -> List[Parameter]:
        return [self.get_parameter(n) for n in names]

    def get_parameter_or(self, name: str, alternative_value: Optional[Parameter] = None
                         ) -> Parameter:
        if alternative_value is None:
            alternative_value = Parameter(name, Parameter.Type.NOT_SET)
        param = self._parameters.get(name)
        if param is None or param.type_ == Parameter.Type.NOT_SET:
            return alternative_value
        return param

    def get_parameters_by_prefix(self, prefix: str) -> Dict[str, Parameter]:
        prefix = prefix + "." if prefix else ""
        return {k[len(prefix):]: v for k, v in self._parameters.items() if k.startswith(prefix)}

    def describe_parameter(self, name: str) -> Any:
        if name not in self._descriptors:
            raise ParameterNotDeclaredException(name)
        return self._descriptors[name]

    def set_parameters(self, parameter_list: List[Parameter]) -> List[Any]:
        results = []
        for param in parameter_list:
            self._check_declared([param])
            results.append(self._set_atomically([param], None, allow_not_set=False))
        return results

    def set_parameters_atomically(self, parameter_list: List[Parameter]) -> Any:
        self._check_declared(parameter_list)
        return self._set_atomically(parameter_list, None, allow_not_set=False)

    def add_on_set_parameters_callback(self, callback: Callable) -> None:
        self._parameters_callbacks.insert(0, callback)

    def remove_on_set_parameters_callback(self, callback: Callable) -> None:
        self._parameters_callbacks.remove(callback)

    def _check_declared(self, parameter_list: List[Parameter]) -> None:
        if not all(isinstance(p, Parameter) for p in parameter_list):
            raise TypeError("parameter must be instance of type Parameter")
        undeclared = [p.name for p in parameter_list if p.name not in self._parameters]
        if undeclared and not self._allow_undeclared_parameters:
            raise ParameterNotDeclaredException(undeclared)

    def _set_atomically(self, plist: List[Parameter], descriptors: Optional[dict],
                        allow_not_set: bool) -> Any:
        for param in plist:
            if descriptors is not None:
                desc, check_ro = descriptors[param.name], False
            elif param.name in self._descriptors:
                desc, check_ro = self._descriptors[param.name], True
            else:
                continue
            result = self._apply_descriptor(param, desc, check_ro)
            if not result.successful:
                return result
        for callback in self._parameters_callbacks:
            result = callback(plist)
            if not result.successful:  # AttributeError when a callback returns None, as rclpy
                return result
        event = _msgs.message_class("rcl_interfaces/msg/ParameterEvent")(
            node=self.get_fully_qualified_name(), stamp=self._clock.now().to_msg())
        for param in plist:
            if not allow_not_set and param.type_ == Parameter.Type.NOT_SET:
                self._parameters.pop(param.name, None)
                self._descriptors.pop(param.name, None)
                event.deleted_parameters.append(param.to_parameter_msg())
                continue
            if descriptors is not None:
                self._descriptors[param.name] = descriptors[param.name]
            elif param.name not in self._descriptors:
                self._descriptors[param.name] = _descriptor_cls()(dynamic_typing=True)
            known = self.get_parameter_or(param.name).type_ != Parameter.Type.NOT_SET
            (event.changed_parameters if known else event.new_parameters).append(
                param.to_parameter_msg())
            self._parameters[param.name] = param
        self._parameter_event_publisher.publish(event)
        return _result(True)

    def _apply_descriptor(self, param: Parameter, desc: Any, check_read_only: bool) -> Any:
        desc.name = param.name
        if check_read_only and desc.read_only:
            return _result(False, f"Trying to set a read-only parameter: {param.name}.")
        if desc.dynamic_typing:
            desc.type = param.type_.value
        elif self.has_parameter(param.name) and param.type_ == Parameter.Type.NOT_SET:
            return _result(False, "Static parameter cannot be undeclared")
        elif param.type_ != Parameter.Type.NOT_SET and param.type_.value != desc.type:
            return _result(False, "Wrong parameter type, expected "
                                  f"'{Parameter.Type(desc.type)}' got '{param.type_}'")
        if param.type_ == Parameter.Type.INTEGER and desc.integer_range:
            r = desc.integer_range[0]
            lo, hi = min(r.from_value, r.to_value), max(r.from_value, r.to_value)
            if param.value in (lo, hi):
                return _result(True)
            if not lo < param.value < hi:
                return _result(False, f"Parameter {param.name} out of range. Min: {lo}, Max: {hi}, "
                                      f"value: {param.value}")
            if r.step and (param.value - lo) % r.step:
                return _result(False, f"The parameter value for {param.name} is not a valid step.")
        if param.type_ == Parameter.Type.DOUBLE and desc.floating_point_range:
            r = desc.floating_point_range[0]
            lo, hi = min(r.from_value, r.to_value), max(r.from_value, r.to_value)
            if any(math.isclose(param.value, b, rel_tol=PARAM_REL_TOL) for b in (lo, hi)):
                return _result(True)
            if not lo < param.value < hi:
                return _result(False, f"Parameter {param.name} out of range Min: {lo}, Max: {hi}, "
                                      f"value: {param.value}")
            if r.step:
                k = round((param.value - lo) / r.step)
                if not math.isclose(lo + k * r.step, param.value, rel_tol=PARAM_REL_TOL):
                    return _result(False, f"The parameter value for {param.name} is not close "
                                          "enough to a valid step.")
        return _result(True)

    # ---- entities ------------------------------------------------------------------------------
    def _group(self, callback_group: Any, entity: Any) -> Any:
        group = self._default_callback_group if callback_group is None else callback_group
        group.add_entity(entity)
        return group

    def create_publisher(self, msg_type: Any, topic: str, qos_profile: Any, *,
                         callback_group: Any = None, event_callbacks: Any = None,
                         qos_overriding_options: Any = None, publisher_class: Any = None) -> Any:
        qos = profile_from(qos_profile)
        pub = Publisher(msg_type, topic, self.resolve_topic_name(topic), qos, None)
        pub.callback_group = self._group(callback_group, pub)
        self._publishers.append(pub)
        _graph.current().add_publisher(pub)
        return pub

    def create_subscription(self, msg_type: Any, topic: str, callback: Callable, qos_profile: Any,
                            *, callback_group: Any = None, event_callbacks: Any = None,
                            qos_overriding_options: Any = None, raw: bool = False) -> Any:
        qos = profile_from(qos_profile)
        sub = Subscription(msg_type, topic, self.resolve_topic_name(topic), callback, qos, None,
                           raw)
        sub.callback_group = self._group(callback_group, sub)
        self._subscriptions.append(sub)
        _graph.current().add_subscription(sub)
        return sub

    def create_service(self, srv_type: Any, srv_name: str, callback: Callable, *,
                       qos_profile: Any = qos_profile_services_default,
                       callback_group: Any = None) -> Any:
        srv = Service(srv_type, self.resolve_topic_name(srv_name), callback, qos_profile, None)
        srv.callback_group = self._group(callback_group, srv)
        self._services.append(srv)
        _graph.current().add_service(srv)
        return srv

    def create_client(self, srv_type: Any, srv_name: str, *,
                      qos_profile: Any = qos_profile_services_default,
                      callback_group: Any = None) -> Any:
        client = Client(srv_type, self.resolve_topic_name(srv_name), None)
        client.callback_group = self._group(callback_group, client)
        self._clients.append(client)
        return client

    def create_timer(self, timer_period_sec: float, callback: Callable, callback_group: Any = None,
                     clock: Any = None) -> Any:
        timer = Timer(timer_period_sec, callback, None, clock or self._clock)
        timer.callback_group = self._group(callback_group, timer)
        self._timers.append(timer)
        _graph.current().notify()
        return timer

    def _destroy(self, entity: Any, group: list) -> bool:
        if entity not in group:
            return False
        group.remove(entity)
        entity.destroy()
        return True

    def destroy_publisher(self, publisher: Any) -> bool:
        return self._destroy(publisher, self._publishers)

    def destroy_subscription(self, subscription: Any) -> bool:
        return self._destroy(subscription, self._subscriptions)

    def destroy_service(self, service: Any) -> bool:
        return self._destroy(service, self._services)

    def destroy_client(self, client: Any) -> bool:
        return self._destroy(client, self._clients)

    def destroy_timer(self, timer: Any) -> bool:
        return self._destroy(timer, self._timers)

    def destroy_node(self) -> None:
        for group in (self._publishers, self._subscriptions, self._services, self._clients,
                      self._timers):
            while group:
                group.pop().destroy()
        self.destroyed = True
        _graph.current().notify()

    def count_publishers(self, topic_name: str) -> int:
        return _graph.current().count(self.resolve_topic_name(topic_name), "pub")

    def count_subscribers(self, topic_name: str) -> int:
        return _graph.current().count(self.resolve_topic_name(topic_name), "sub")
