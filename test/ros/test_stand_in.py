"""The rclpy stand-in follows RCLPY_SURFACE.md (stricter rule where Humble and Jazzy differ)."""
import array

import numpy as np
import pytest


def test_messages_are_keyword_only_and_humble_strict(ros):
    Image = ros.msg("sensor_msgs/msg/Image")
    with pytest.raises(TypeError):
        Image(None)
    with pytest.raises(AssertionError, match="Invalid arguments passed to constructor: nope"):
        Image(nope=1)
    msg = Image(data=b"\x01\x02")
    assert isinstance(msg.data, array.array) and msg.data.typecode == "B"
    with pytest.raises(AssertionError):
        msg.data = np.zeros(3, np.uint8)  # an ndarray is not a Sequence
    with pytest.raises(AssertionError):
        msg.data = array.array("b", [1])
    with pytest.raises(AssertionError):
        msg.height = 2**32  # uint32 range
    with pytest.raises(AttributeError):
        msg.not_a_field = 1
    LabelInfo = ros.msg("vision_msgs/msg/LabelInfo")
    with pytest.raises(AssertionError):
        LabelInfo(threshold=1)  # float32 field: an int is rejected
    Status = ros.msg("diagnostic_msgs/msg/DiagnosticStatus")
    assert Status().level == b"\x00" and Status.ERROR == b"\x02"
    with pytest.raises(AssertionError):
        Status(level=2)
    KeyValue = ros.msg("diagnostic_msgs/msg/KeyValue")
    with pytest.raises(AssertionError):
        KeyValue(key="a", value=1.0)
    CameraInfo = ros.msg("sensor_msgs/msg/CameraInfo")
    assert isinstance(CameraInfo().k, np.ndarray) and CameraInfo().k.shape == (9,)


def test_received_uint8_arrays_are_array_array(ros):
    node = ros.rclpy.create_node("n")
    Image = ros.msg("sensor_msgs/msg/Image")
    got = []
    node.create_subscription(Image, "img", got.append, 10)
    pub = node.create_publisher(Image, "img", 10)
    pub.publish(Image(data=bytes([1, 2, 3])))
    ros.rclpy.spin_once(node, timeout_sec=0.1)
    assert isinstance(got[0].data, array.array) and list(got[0].data) == [1, 2, 3]
    with pytest.raises(TypeError):
        pub.publish("not an image")


def test_qos_and_entity_signatures(ros):
    qos = ros.mods["rclpy.qos"]
    with pytest.raises(qos.InvalidQoSProfileException):
        qos.QoSProfile()
    with pytest.raises(TypeError):
        qos.QoSProfile(10)
    node = ros.rclpy.create_node("n")
    Image = ros.msg("sensor_msgs/msg/Image")
    with pytest.raises(TypeError):
        node.create_publisher(Image, "img")  # qos_profile is required
    with pytest.raises(ValueError):
        node.create_publisher(Image, "img", -1)
    with pytest.raises(TypeError):
        node.create_subscription(Image, "img", print, 10, None)  # callback_group is keyword-only
    best_effort = node.create_publisher(Image, "be", qos.qos_profile_sensor_data)
    node.create_subscription(Image, "be", print, 10)  # RELIABLE reader: no match
    assert best_effort.get_subscription_count() == 0
    node.create_subscription(Image, "be", print, qos.qos_profile_sensor_data)
    assert best_effort.get_subscription_count() == 1
    assert node.create_publisher(Image, "~/x", 1).topic_name == "/n/x"


def test_parameter_rules(ros):
    exc = ros.mods["rclpy.exceptions"]
    Parameter = ros.mods["rclpy.parameter"].Parameter
    Result = ros.msg("rcl_interfaces/msg/SetParametersResult")
    Descriptor = ros.msg("rcl_interfaces/msg/ParameterDescriptor")
    node = ros.rclpy.create_node("n")
    assert node.get_parameter("use_sim_time").value is False
    node.declare_parameter("a", 1)
    with pytest.raises(exc.ParameterAlreadyDeclaredException):
        node.declare_parameter("a", 2)
    with pytest.raises(exc.ParameterNotDeclaredException):
        node.set_parameters([Parameter("b", value=1)])
    assert "Wrong parameter type" in node.set_parameters([Parameter("a", value=1.0)])[0].reason
    node.declare_parameter("ro", 1.0, Descriptor(read_only=True))
    assert node.set_parameters([Parameter("ro", value=2.0)])[0].reason == \
        "Trying to set a read-only parameter: ro."
    node.declare_parameter("typed", Parameter.Type.INTEGER)
    with pytest.raises(exc.ParameterUninitializedException):
        node.get_parameter("typed")
    with pytest.raises(ValueError):  # Jazzy's stricter rule
        node.declare_parameter("none", None, Descriptor())
    assert Parameter("e", value=[]).type_ == Parameter.Type.BYTE_ARRAY
    order = []
    node.add_on_set_parameters_callback(lambda ps: order.append("first") or Result(successful=True))
    node.add_on_set_parameters_callback(
        lambda ps: order.append("second") or Result(successful=False, reason="no"))
    assert node.set_parameters([Parameter("a", value=5)])[0].reason == "no"
    assert order == ["second"] and node.get_parameter("a").value == 1  # LIFO, first failure wins
    node.add_on_set_parameters_callback(lambda ps: None)
    with pytest.raises(AttributeError):
        node.set_parameters([Parameter("a", value=5)])
    with pytest.raises(exc.InvalidParameterTypeException):
        ros.rclpy.create_node("m", parameter_overrides=[Parameter("x", value=1)]).declare_parameter(
            "x", 0.5)


def test_logger_call_site_rules(ros):
    logger = ros.rclpy.create_node("n").get_logger()

    def log(severity):
        return getattr(logger, severity)("x", throttle_duration_sec=10.0)

    assert log("error") is True
    assert log("error") is False  # throttled
    with pytest.raises(ValueError):
        log("warning")  # same call site, other severity
    with pytest.raises(TypeError):
        logger.info("x", every_n=3)


def test_context_and_service_rules(ros):
    rclpy = ros.rclpy
    with pytest.raises(RuntimeError):
        rclpy.init()  # already initialised by the fixture
    node = rclpy.create_node("n")
    Trigger = ros.mods["std_srvs.srv"].Trigger
    node.create_service(Trigger, "bad", lambda req, resp: None)
    executor = ros.mods["rclpy.executors"].SingleThreadedExecutor()
    executor.add_node(node)
    with pytest.raises(TypeError):
        ros.fake.call_service(executor, "/bad", Trigger.Request())
    calls = []
    node.create_timer(0.01, lambda: calls.append(1))  # called with no arguments
    executor.spin_once(timeout_sec=0.5)
    assert calls == [1]
    rclpy.shutdown()
    with pytest.raises(Exception, match="failed to shutdown"):
        rclpy.shutdown()
    rclpy.try_shutdown()
    rclpy.try_shutdown()
    rclpy.init()  # try_shutdown gave a fresh default context
    with pytest.raises(ros.mods["rclpy.executors"].ExternalShutdownException):
        executor.spin_once(timeout_sec=0.01)  # its old context is shut down
