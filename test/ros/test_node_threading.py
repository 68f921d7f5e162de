"""Worker thread + executor: bounded latency, counted drops, survived errors, main."""
import subprocess
import sys
import threading
import time

import pytest

from node_harness import NS, image_msg, scene, stamp_of

MODEL_S = 0.03


class SlowBackend:
    """A real backend taking at least MODEL_S per network call (a model slower than the camera)."""

    def __init__(self, inner, fail_on_call=None):
        self.inner, self.calls, self.fail_on_call = inner, 0, fail_on_call
        self.name, self.model_name = inner.name, inner.model_name
        self.num_classes, self.device = inner.num_classes, inner.device

    def _tick(self):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("simulated CUDA error")
        time.sleep(MODEL_S)

    def keyframe(self, frame):
        self._tick()
        return self.inner.keyframe(frame)

    def propagate(self, *args):
        self._tick()
        return self.inner.propagate(*args)


def _spin_in_background(executor, stop):
    def run():
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.02)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_fast_camera_slow_model_drops_stale_frames_and_bounds_latency(ros, backend):
    from node_harness import Harness

    h = Harness(ros, SlowBackend(backend), subscribe=("class_mask",), start_worker=True,
                multi_threaded=True)
    stop = threading.Event()
    spinner = _spin_in_background(h.executor, stop)
    try:
        sent = [NS + i * 5_000_000 for i in range(40)]
        for stamp in sent:  # 200 Hz against a model of >= 30 ms per frame
            h.image_pub.publish(image_msg(scene(shift=stamp // 5_000_000 % 50), stamp_ns=stamp))
            time.sleep(0.005)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = h.received["class_mask"]
            if got and stamp_of(got[-1]) == sent[-1]:
                break
            time.sleep(0.02)
    finally:
        stop.set()
        spinner.join(5)
    snap = h.node.stats.snapshot()
    got = h.received["class_mask"]
    assert stamp_of(got[-1]) == sent[-1]  # the newest frame is always processed
    assert snap["frames_dropped"] > 0
    assert snap["frames_processed"] + snap["frames_dropped"] == snap["frames_received"]
    assert len(got) == snap["frames_processed"] < len(sent)
    assert [stamp_of(m) for m in got] == sorted(stamp_of(m) for m in got)  # never out of order
    # Latency (arrival -> published) is at most ~one model step of waiting plus its own step.
    worst = max(snap[f"latency_{t}_ms"]["max"] or 0.0 for t in ("keyframe", "non_keyframe"))
    worst_model = max(snap[f"model_{t}_ms"]["max"] or 0.0 for t in ("keyframe", "non_keyframe"))
    assert worst <= 2 * worst_model + 250.0
    h.close()


def test_a_failing_model_step_is_counted_and_the_node_goes_on(harness, backend):
    h = harness(subscribe=("class_mask",))
    h.node.backend = SlowBackend(backend, fail_on_call=2)
    h.node._streams.clear()
    for i in range(3):
        h.step(image_msg(scene(shift=i), stamp_ns=NS + i * 50_000_000))
    assert len(h.received["class_mask"]) == 2
    assert h.node.stats.snapshot()["segmentation_errors"] == 1


def test_destroy_node_stops_the_worker_thread(harness):
    h = harness(subscribe=(), start_worker=True)
    worker = h.node._worker
    assert worker.is_alive()
    h.node.destroy_node()
    assert not worker.is_alive()


def _class_mask_publishers(observer):
    return observer.count_publishers("/segmentation_node/class_mask")


def _started(observer):
    """The node's last start-up entity, the ~/enable service, is visible in the graph."""
    names = [name for name, _ in observer.get_service_names_and_types()]
    return "/segmentation_node/enable" in names


def test_main_spins_until_the_context_is_shut_down_and_exits_0(ros):
    from gsvnet_ros.ros import node as node_module

    ros.rclpy.try_shutdown()  # main() calls init itself, on the default context
    observer_context = ros.rclpy.Context()
    ros.rclpy.init(context=observer_context)
    observer = ros.rclpy.create_node("observer", context=observer_context)
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("rc", node_module.main([])))
    thread.start()
    try:
        deadline = time.monotonic() + 60.0
        while not _started(observer) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _started(observer) and _class_mask_publishers(observer) == 1, "no node came up"
        ros.rclpy.shutdown()  # what SIGINT does to the context
        thread.join(20)
        assert result == {"rc": 0}
        deadline = time.monotonic() + 10.0
        while _class_mask_publishers(observer) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _class_mask_publishers(observer) == 0  # destroy_node ran: its endpoints are gone
    finally:
        observer.destroy_node()
        ros.rclpy.try_shutdown(context=observer_context)


def test_main_returns_0_on_keyboard_interrupt(ros, monkeypatch):
    from gsvnet_ros.ros import node as node_module

    ros.rclpy.try_shutdown()

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ros.mods["rclpy.executors"].SingleThreadedExecutor, "spin", interrupted)
    assert node_module.main([]) == 0
    assert not ros.rclpy.ok()


def test_main_with_a_bad_parameter_exits_1_with_one_fatal_line(ros, capfd):
    from gsvnet_ros.ros import node as node_module

    ros.rclpy.try_shutdown()
    assert node_module.main(["--ros-args", "-p", "keyframe_interval:=0"]) == 1
    err = capfd.readouterr().err
    fatal = [line for line in err.splitlines() if "[FATAL]" in line]
    assert len(fatal) == 1 and "keyframe_interval" in fatal[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize("module", ["node", "evaluator"])
def test_without_rclpy_main_prints_one_line_and_returns_1(module):
    code = ("import sys; sys.modules['rclpy'] = None\n"
            f"from gsvnet_ros.ros.{module} import main\n"
            "sys.exit(main([]))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert len(lines) == 1
    assert "sourced ROS 2 environment (Humble or Jazzy" in lines[0] and "rclpy" in lines[0]


def test_an_unexpected_error_in_decoding_is_counted_and_the_next_frame_is_segmented(
        harness, monkeypatch):
    from gsvnet_ros import codec

    h = harness(subscribe=("class_mask",))
    real, calls = codec.decode_image, []

    def flaky(msg, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise MemoryError("simulated allocation failure")
        return real(msg, **kwargs)

    monkeypatch.setattr(codec, "decode_image", flaky)
    assert not h.step(image_msg(scene(), stamp_ns=NS))  # dropped, counted, node alive
    assert h.step(image_msg(scene(shift=1), stamp_ns=NS + 50_000_000))
    snap = h.node.stats.snapshot()
    assert snap["decode_errors_by_kind"] == {"unexpected": 1}
    assert [stamp_of(m) for m in h.received["class_mask"]] == [NS + 50_000_000]


def test_oversized_images_are_refused_from_their_declared_size(harness, ros, monkeypatch):
    """A 16384 x 16384 raw image and a JPEG whose header claims 60000 x 60000: both refused
    before any pixel is touched (cv2.imdecode would fail the test), the node goes on."""
    import cv2

    h = harness(subscribe=("class_mask",), overrides={"subscribe_compressed": True})
    with monkeypatch.context() as patch:
        patch.setattr(cv2, "imdecode", lambda *a: pytest.fail("decoded an oversized image"))
        _send_oversized(h, ros)
    kinds = h.node.stats.snapshot()["decode_errors_by_kind"]
    assert kinds.get("too_large") == 1 and sum(kinds.values()) == 2, kinds
    assert not h.node.process_pending()
    assert h.step(image_msg(scene(shift=2), stamp_ns=NS + 50_000_000))


def _send_oversized(h, ros):
    import struct

    from sensor_msgs.msg import CompressedImage

    from node_harness import header

    huge = image_msg(scene(), stamp_ns=NS)
    huge.height, huge.width, huge.step = 16384, 16384, 16384 * 3  # 768 MiB declared, 24 KiB sent
    h.send(huge)
    # SOI, then a baseline SOF0 segment: precision 8, height 60000, width 60000, 3 components.
    sof = struct.pack(">BHHB", 8, 60000, 60000, 3) + bytes([1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0])
    jpeg = b"\xff\xd8" + b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof + b"\xff\xd9"
    msg = CompressedImage(header=header(NS, "cam"), format="jpeg")
    msg.data.frombytes(jpeg)
    pub = h.probe.create_publisher(CompressedImage, "/image/compressed",
                                   ros.mods["rclpy.qos"].qos_profile_sensor_data)
    h.spin(until=lambda: pub.get_subscription_count() > 0)
    before = h.node.stats.snapshot()["frames_received"]
    pub.publish(msg)
    h.spin(until=lambda: h.node.stats.snapshot()["frames_received"] > before)
