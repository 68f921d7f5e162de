"""SegmentationNode: GSVNet video semantic segmentation as a ROS 2 node (Humble and Jazzy).

Threads: the image subscriptions (one callback group) only decode and put the newest frame into a
depth-1 slot; a worker thread woken by an Event runs the model and publishes; services and the
diagnostics timer share a second group; one executor thread runs them all (main()). A slow model
therefore drops stale frames (counted) instead of queueing them, and the executor stays responsive
while the model runs.
"""
from __future__ import annotations

import collections
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

from gsvnet_ros import codec
from gsvnet_ros.ros import params as P
from gsvnet_ros.ros.slot import Frame, LatestFrameSlot
from gsvnet_ros.ros.stats import NodeStats, diagnostic_values

try:  # the only ROS imports; without them the module still imports so main() can explain
    import rclpy
    import rclpy.logging
    from rcl_interfaces.msg import SetParametersResult
    from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
    from rclpy.clock import Clock, ClockType
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage, Image
    from std_srvs.srv import SetBool, Trigger
    from diagnostic_msgs.msg import DiagnosticArray

    from gsvnet_ros.ros import messages
    ROS_IMPORT_ERROR: Optional[ImportError] = None
except ImportError as exc:  # no sourced ROS 2 environment
    ROS_IMPORT_ERROR = exc
    Node = object  # type: ignore[misc,assignment]

# Optional interface packages: without one, its output is off and the node says so once at start.
try:  # ros-<distro>-vision-msgs (apt); not on the package registry
    from vision_msgs.msg import LabelInfo, VisionClass
except ImportError as exc:
    LabelInfo = VisionClass = None
    _LABEL_INFO_OFF: Optional[str] = (f"~/label_info is off: could not import vision_msgs "
                                      f"({exc}); install ros-<distro>-vision-msgs")
else:
    _LABEL_INFO_OFF = None
try:  # built from msg/ by `gsvnet-msgs-package` + colcon (see README)
    from gsvnet_ros_msgs.msg import SegmentationInfo
except ImportError as exc:
    SegmentationInfo = None
    _INFO_OFF: Optional[str] = (f"~/info is off: could not import gsvnet_ros_msgs ({exc}); "
                                "build it with `gsvnet-msgs-package <ws>/src` and colcon")
else:
    _INFO_OFF = None

__all__ = ["SegmentationNode", "main"]

NEEDS_ROS = ("segmentation_node needs a sourced ROS 2 environment (Humble or Jazzy: "
             "`source /opt/ros/<distro>/setup.bash`); could not import {missing}")


@dataclass
class _Stream:
    segmenter: Any
    encoding: Optional[str] = None


# One call site per kind of bad input: rclpy fixes the severity and filters of each call site.
_DECODE_ERROR_LOG = {
    "encoding": lambda log, text, t: log.error(text, throttle_duration_sec=t),
    "size": lambda log, text, t: log.error(text, throttle_duration_sec=t),
    "step": lambda log, text, t: log.error(text, throttle_duration_sec=t),
    "data_length": lambda log, text, t: log.error(text, throttle_duration_sec=t),
    "endianness": lambda log, text, t: log.error(text, throttle_duration_sec=t),
    "compressed": lambda log, text, t: log.error(text, throttle_duration_sec=t),
}


def _log_other_decode_error(log: Any, text: str, period: float) -> None:
    log.error(text, throttle_duration_sec=period)


def _file_name(path: Optional[str]) -> str:
    return Path(path).name if path else "none (random)"


class SegmentationNode(Node):
    """Subscribes `image`; publishes ~/class_mask, ~/color_mask, ~/overlay, ~/label_info, ~/info."""

    def __init__(self, *, node_name: str = "segmentation_node", backend: Any = None,
                 start_worker: bool = True, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self._values = self._declare_parameters()
        self.config = P.build_config(self._values["config_file"], self._values)
        if backend is None:
            from gsvnet_ros.backends import build_backend
            backend = build_backend(self.config)
        self.backend = backend
        self.stats = NodeStats(self._values["stats_window"])
        self._slot = LatestFrameSlot()
        self._streams: collections.OrderedDict[str, _Stream] = collections.OrderedDict()
        self._state_lock = threading.Lock()
        self._input_group = MutuallyExclusiveCallbackGroup()
        self._control_group = MutuallyExclusiveCallbackGroup()
        self._create_interfaces()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._stop = threading.Event()
        self._last_decode_errors = 0
        self._worker: Optional[threading.Thread] = None
        if start_worker:
            self._worker = threading.Thread(target=self._worker_loop, name="gsvnet_worker",
                                            daemon=True)
            self._worker.start()
        runtime = self.config.runtime
        policy = (f"keyframe interval {self._values['keyframe_interval']}"
                  if self._values["keyframe_policy"] == "fixed"
                  else f"adaptive keyframes (budget {self._values['keyframe_budget']:g})")
        self.get_logger().info(
            f"GSVNet {getattr(backend, 'model_name', '?')} on {getattr(backend, 'name', '?')} "
            f"({getattr(backend, 'device', '?')}), flow {self.config.model.flow}, {policy}, "
            f"listening on {self._image_sub.topic_name}; weights: "
            f"{_file_name(runtime.keyframe_weights)} + {_file_name(runtime.propagation_weights)}")
        if runtime.keyframe_weights is None:
            self.get_logger().warning(
                "no keyframe_weights (config_file and keyframe_weights are empty): the networks are "
                "randomly initialised and their labels mean nothing; set config_file to a model "
                "config such as share/gsvnet_ros/config/swiftnet_r18.yaml")

    # ---- set-up --------------------------------------------------------------------------------
    def _declare_parameters(self) -> dict[str, Any]:
        """Declare every parameter of params.PARAMETERS; defaults come from config_file."""
        spec = P.SPECS["config_file"]
        config_file = self.declare_parameter(spec.name, spec.default, P.descriptor(spec)).value
        defaults = P.defaults_from(P.build_config(config_file, {}))
        values = {"config_file": config_file}
        for spec in P.PARAMETERS[1:]:
            values[spec.name] = self.declare_parameter(
                spec.name, defaults[spec.name], P.descriptor(spec)).value
        for name, value in values.items():
            reason = P.validate(name, value)
            if reason is not None:
                raise ValueError(f"parameter {reason}")
        return values

    def _create_interfaces(self) -> None:
        reliability = (ReliabilityPolicy.RELIABLE if self._values["input_reliability"] == "reliable"
                       else ReliabilityPolicy.BEST_EFFORT)
        sensor_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self._values["input_depth"],
                                reliability=reliability, durability=DurabilityPolicy.VOLATILE)
        self._image_sub = self.create_subscription(Image, "image", self._on_image, sensor_qos,
                                                   callback_group=self._input_group)
        self._compressed_sub = None
        if self._values["subscribe_compressed"]:
            self._compressed_sub = self.create_subscription(
                CompressedImage, "image/compressed", self._on_compressed, sensor_qos,
                callback_group=self._input_group)
        out_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                             reliability=ReliabilityPolicy.RELIABLE)
        self._pub_mask = self.create_publisher(Image, "~/class_mask", out_qos)
        self._pub_color = self.create_publisher(Image, "~/color_mask", out_qos)
        self._pub_overlay = self.create_publisher(Image, "~/overlay", out_qos)
        self._pub_info = None
        if SegmentationInfo is not None:
            self._pub_info = self.create_publisher(SegmentationInfo, "~/info", out_qos)
        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                             reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._pub_label_info = None
        if LabelInfo is not None:
            self._pub_label_info = self.create_publisher(LabelInfo, "~/label_info", latched)
            self._pub_label_info.publish(messages.label_info_msg(LabelInfo, VisionClass))
        for reason in (_LABEL_INFO_OFF, _INFO_OFF):
            if reason is not None:
                self.get_logger().warning(reason)
        self._pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 1)
        # Diagnostics describe the node itself: on the steady clock, also under use_sim_time (a
        # timer on /clock time would stop with a paused bag and fire in bursts when it jumps).
        self._diag_timer = self.create_timer(
            self._values["diagnostics_period_s"],
            self._guarded("diagnostics timer", self.publish_diagnostics), self._control_group,
            clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._srv_reset = self.create_service(Trigger, "~/reset",
                                              self._guarded("~/reset", self._on_reset),
                                              callback_group=self._control_group)
        self._srv_enable = self.create_service(SetBool, "~/enable",
                                               self._guarded("~/enable", self._on_enable),
                                               callback_group=self._control_group)

    def _guarded(self, what: str, callback: Any) -> Any:
        """`callback` that counts and logs (throttled) what it raises instead of ending the node.

        A service answers success=false with the error; a timer simply runs again next period.
        """
        def run(*args: Any) -> Any:
            try:
                return callback(*args)
            except Exception as exc:
                self.stats.on_callback_error()
                text = f"{what} failed: {type(exc).__name__}: {exc}"
                self.get_logger().error(text,
                                        throttle_duration_sec=self._values["error_log_throttle_s"])
                if len(args) == 2:  # (request, response): a service
                    response = args[1]
                    response.success, response.message = False, text
                    return response
                return None
        return run

    # ---- input ---------------------------------------------------------------------------------
    def _on_image(self, msg: Any) -> None:
        received = time.monotonic()
        if self._accepting():
            self._decode_and_store(codec.decode_image, msg, str(msg.encoding), received,
                                   self._image_sub.topic_name)

    def _on_compressed(self, msg: Any) -> None:
        received = time.monotonic()
        if self._accepting():
            self._decode_and_store(codec.decode_compressed, msg, f"compressed/{msg.format}",
                                   received, self._compressed_sub.topic_name)

    def _accepting(self) -> bool:
        self.stats.on_received()
        if not self._values["enabled"]:
            self.stats.on_skipped()
            return False
        return True

    def _decode_and_store(self, decode: Any, msg: Any, encoding: str, received: float,
                          topic: str) -> None:
        try:
            rgb = decode(msg, max_pixels=self._values["max_image_pixels"])
        except codec.ImageDecodeError as exc:
            self.stats.on_decode_error(exc.kind)
            log = _DECODE_ERROR_LOG.get(exc.kind, _log_other_decode_error)
            log(self.get_logger(), f"dropped an image on {topic} "
                f"(frame_id '{msg.header.frame_id}'): {exc}", self._values["error_log_throttle_s"])
            return
        except Exception as exc:  # nothing a sender does may end the node (counted, logged)
            self.stats.on_decode_error("unexpected")
            _log_other_decode_error(self.get_logger(), f"dropped an image on {topic} (frame_id "
                                    f"'{msg.header.frame_id}'): unexpected "
                                    f"{type(exc).__name__}: {exc}",
                                    self._values["error_log_throttle_s"])
            return
        if self._slot.put(Frame(rgb, msg.header, encoding, received)):
            self.stats.on_dropped()

    # ---- worker --------------------------------------------------------------------------------
    def _worker_loop(self) -> None:
        if self._values["warmup_size"]:
            self.warm_up()
        while not self._stop.is_set():
            if self._slot.wait(0.5):
                self.process_pending()

    def warm_up(self) -> Optional[float]:
        """Segment a synthetic warmup_size frame as a keyframe and as a non-keyframe on a stream of its
        own (the cameras' streams are untouched), so that the graphs' export, int8 quantization and the
        compiled kernels' loading happen now rather than on the first image. Returns the seconds it took
        (None without warmup_size, or when it failed: logged, and the node goes on)."""
        size = P.warmup_size(self._values["warmup_size"])
        if size is None:
            return None
        import numpy as np

        from gsvnet_ros.stream import VideoSegmenter

        width, height = size
        started = time.monotonic()
        ys, xs = np.mgrid[0:height, 0:width + 2]
        pattern = np.stack(((xs * 3) % 256, (ys * 5) % 256, ((xs // 16 + ys // 16) % 2) * 255), axis=-1)
        pattern = pattern.astype(np.uint8)
        stream = VideoSegmenter(self.backend, replace(P.stream_config(self.config, self._values),
                                                      keyframe_policy="fixed", keyframe_interval=2))
        try:
            for index in range(2):  # a keyframe, then a non-keyframe two pixels further
                frame = np.ascontiguousarray(pattern[:, 2 * index:2 * index + width])
                stream.step(frame, index * 50_000_000)
        except Exception as exc:  # noqa: BLE001 (a warm-up failure must not stop the node)
            if not self._stop.is_set():  # after destroy_node the node's logger may be gone
                self.get_logger().error(f"warm-up at {width}x{height} failed: {type(exc).__name__}: "
                                        f"{exc}; the first image will pay what it would have prepared")
            return None
        seconds = time.monotonic() - started
        if not self._stop.is_set():
            self.get_logger().info(f"warm-up: a {width}x{height} keyframe and non-keyframe in "
                                   f"{seconds:.1f} s")
        return seconds

    def process_pending(self) -> bool:
        """Segment and publish the frame in the slot, if any (the worker calls this)."""
        frame = self._slot.take()
        if frame is None or self._stop.is_set():
            return False
        try:
            self._process(frame)
        except Exception as exc:  # a bad frame or a model failure must not stop the node
            self.stats.on_segmentation_error()
            self.get_logger().error(f"segmentation failed on frame_id '{frame.header.frame_id}': "
                                    f"{type(exc).__name__}: {exc}",
                                    throttle_duration_sec=self._values["error_log_throttle_s"])
        return True

    def _stream(self, frame_id: str) -> _Stream:
        stream = self._streams.get(frame_id)
        if stream is None:
            from gsvnet_ros.stream import VideoSegmenter
            stream = _Stream(VideoSegmenter(self.backend, P.stream_config(self.config,
                                                                          self._values)))
            self._streams[frame_id] = stream
            while len(self._streams) > self._values["max_streams"]:
                self._streams.popitem(last=False)
        self._streams.move_to_end(frame_id)
        return stream

    def _process(self, frame: Frame) -> None:
        header = frame.header
        stamp = messages.stamp_ns(header.stamp)
        with self._state_lock:
            stream = self._stream(str(header.frame_id))
            force = "encoding_change" if stream.encoding not in (None, frame.encoding) else None
            stream.encoding = frame.encoding
            result = stream.segmenter.step(frame.rgb, stamp, force_reason=force)
        self._publish(frame, result)
        age_ms = (self.get_clock().now().nanoseconds - stamp) / 1e6
        self.stats.on_processed(is_keyframe=result.is_keyframe, keyframe_reason=result.keyframe_reason,
                                latency_ms=(time.monotonic() - frame.received) * 1e3,
                                model_ms=result.timings_ms.get("total", 0.0), stamp_age_ms=age_ms)

    def _publish(self, frame: Frame, result: Any) -> None:
        header, labels = frame.header, result.labels
        self._pub_mask.publish(messages.image_msg(header, codec.encode_image(labels, "mono8")))
        if self._values["publish_color_mask"] and self._pub_color.get_subscription_count() > 0:
            color = codec.labels_to_color(labels)
            self._pub_color.publish(messages.image_msg(header, codec.encode_image(color, "rgb8")))
        if self._values["publish_overlay"] and self._pub_overlay.get_subscription_count() > 0:
            blended = codec.overlay(frame.rgb, labels, self._values["overlay_alpha"])
            self._pub_overlay.publish(messages.image_msg(header,
                                                         codec.encode_image(blended, "rgb8")))
        if self._pub_info is not None:
            self._pub_info.publish(messages.info_msg(
                SegmentationInfo, header, result, model_name=self.backend.model_name,
                backend=self.backend.name))

    # ---- parameters and services ---------------------------------------------------------------
    def _on_set_parameters(self, parameters: list) -> Any:
        for param in parameters:
            reason = P.validate(param.name, param.value)
            if reason is not None:
                return SetParametersResult(successful=False, reason=reason)
        for param in parameters:
            if param.name in P.SPECS:
                self._apply(param.name, param.value)
        return SetParametersResult(successful=True)

    def _apply(self, name: str, value: Any) -> None:
        previous = self._values.get(name)
        self._values[name] = value
        with self._state_lock:
            if name in ("keyframe_interval", "keyframe_policy", "keyframe_budget"):
                for stream in self._streams.values():
                    setattr(stream.segmenter, name, value)
            elif name in P.RUNTIME_REBUILD and value != previous:
                self._streams.clear()
                self.get_logger().info(f"{name} is now {value!r}: every stream restarts with a "
                                       "keyframe")
            elif name == "enabled" and value and not previous:
                for stream in self._streams.values():
                    stream.segmenter.reset()
        if name == "enabled" and not value:
            self._slot.take()

    def _on_reset(self, request: Any, response: Any) -> Any:
        with self._state_lock:
            for stream in self._streams.values():
                stream.segmenter.reset()
            count = len(self._streams)
        response.success = True
        response.message = f"reset {count} stream(s): the next frame of each is a keyframe"
        return response

    def _on_enable(self, request: Any, response: Any) -> Any:
        result = self.set_parameters([Parameter("enabled", value=bool(request.data))])[0]
        response.success = bool(result.successful)
        response.message = ("enabled" if request.data else "disabled") if result.successful \
            else result.reason
        return response

    # ---- diagnostics ---------------------------------------------------------------------------
    def publish_diagnostics(self) -> None:
        """One DiagnosticStatus on /diagnostics (the timer calls it every diagnostics_period_s)."""
        snap = self.stats.snapshot()
        level, message = "ok", "segmenting"
        if not self._values["enabled"]:
            message = "disabled (~/enable)"
        elif snap["input_rate_hz"] == 0.0:
            level, message = "warn", f"no images on {self._image_sub.topic_name}"
        elif snap["decode_errors"] > self._last_decode_errors:
            level, message = "warn", "undecodable images received (see decode_errors_*)"
        self._last_decode_errors = snap["decode_errors"]
        values = diagnostic_values(snap)
        values.update({"streams": len(self._streams),
                       "keyframe_interval": self._values["keyframe_interval"],
                       "keyframe_policy": self._values["keyframe_policy"],
                       "keyframe_budget": self._values["keyframe_budget"],
                       "model": self.backend.model_name, "backend": self.backend.name,
                       "enabled": self._values["enabled"]})
        self._pub_diag.publish(messages.diagnostic_array(
            self.get_clock().now().to_msg(), name=f"{self.get_name()}: segmentation",
            hardware_id=str(getattr(self.backend, "device", "")), level=level, message=message,
            values=values))

    def destroy_node(self) -> None:
        """Stop the worker thread, then destroy the ROS entities.

        Idempotent: rclpy 9 (Kilted) destroys every node of a context at shutdown, so this runs
        again after main() has called it, possibly on a node whose __init__ did not finish.
        """
        if getattr(self, "_destroyed", False):
            return
        self._destroyed = True
        name = self.get_name()
        stop, slot, worker = (getattr(self, a, None) for a in ("_stop", "_slot", "_worker"))
        if stop is not None:
            stop.set()
        if slot is not None:
            slot.wake()
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=10.0)
            # Not the node's logger: its /rosout publisher is gone once the context is shut down.
            log = rclpy.logging.get_logger(name)
            if worker.is_alive():
                log.warning("the worker thread did not stop within 10 s")
            else:
                log.info("stopped: worker thread joined")
        super().destroy_node()


def main(args: Optional[list[str]] = None) -> int:
    """Console script `segmentation_node`: spin the node on a SingleThreadedExecutor."""
    if ROS_IMPORT_ERROR is not None:
        missing = ROS_IMPORT_ERROR.name or str(ROS_IMPORT_ERROR)
        print(NEEDS_ROS.format(missing=missing), file=sys.stderr)
        return 1
    rclpy.init(args=args)
    node = None
    try:
        node = SegmentationNode()
    except KeyboardInterrupt:
        rclpy.try_shutdown()
        return 0
    except Exception as exc:  # bad parameters, config or weights: one clear line, exit code 1
        if not rclpy.ok():  # SIGINT/SIGTERM shut the context down while the node was starting
            return 0
        rclpy.logging.get_logger("segmentation_node").fatal(
            f"cannot start: {type(exc).__name__}: {exc}")
        rclpy.try_shutdown()
        return 1
    # One executor thread: every callback is light (the model runs on the worker thread), and
    # rclpy's MultiThreadedExecutor spends so much time holding the GIL per callback that, with
    # /clock at 100 Hz (`ros2 bag play --clock 100`), it starved the worker: a 1024x512
    # non-keyframe step took 1.4 s instead of 36 ms (test/ros/test_replay.py, diagnostics).
    try:
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
        # else: SIGINT/SIGTERM shut the context down while the executor was being set up
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
