"""Node overhead (decode + encode + publish) as a share of the model step, and a memory soak.

Runs SegmentationNode through the rclpy stand-in with a random-weight GSVNet on the CPU:

    .venv/bin/python test/ros/bench_node_overhead.py --frames 30 --size 1024x512
    .venv/bin/python test/ros/bench_node_overhead.py --soak 2000 --size 256x128

The stand-in's transport (CDR serialisation to and from each subscriber with the rosbags
typestore) is timed separately: real rclpy pays its own (C) serialisation instead.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

import fake_ros  # noqa: E402

NS = 1_000_000_000


def install_stand_in() -> dict:
    """Put the stand-in into sys.modules (what the test fixture does) and init rclpy."""
    fake_ros.reset()
    mods = fake_ros.modules(with_gsvnet_msgs=True,
                            msg_text=(HERE.parents[1] / "msg/SegmentationInfo.msg").read_text())
    sys.modules.update(mods)
    for name in [n for n in sys.modules if n.startswith("gsvnet_ros.ros")]:
        del sys.modules[name]
    mods["rclpy"].init()
    return mods


def build_backend(threads: int = 1) -> Any:
    import torch

    from gsvnet_ros.backends.base import resolve_device
    from gsvnet_ros.backends.torch_backend import TorchBackend
    from gsvnet_ros.config import GSVNetConfig
    from gsvnet_ros.models.build import build_gsvnet

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    return TorchBackend(build_gsvnet(GSVNetConfig().model), resolve_device("cpu"))


class _Timer:
    """Accumulates the wall time of calls to a wrapped function."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def wrap(self, fn: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds.append(time.perf_counter() - start)
        return timed


def _frames(width: int, height: int, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (height + count, width + count, 3), dtype=np.uint8)
    return [np.ascontiguousarray(base[i:i + height, i:i + width]) for i in range(min(count, 8))]


def _image_msg(rgb: np.ndarray, stamp_ns: int, frame_id: str = "cam") -> Any:
    Image = fake_ros.message_class("sensor_msgs/msg/Image")
    Header = fake_ros.message_class("std_msgs/msg/Header")
    Time = fake_ros.message_class("builtin_interfaces/msg/Time")
    import array
    sec, nsec = divmod(stamp_ns, NS)
    return Image(header=Header(stamp=Time(sec=sec, nanosec=nsec), frame_id=frame_id),
                 height=rgb.shape[0], width=rgb.shape[1], encoding="bgr8", is_bigendian=0,
                 step=rgb.shape[1] * 3, data=array.array("B", rgb[:, :, ::-1].tobytes()))


def _setup(mods: dict, backend: Any, outputs: tuple[str, ...], interval: int) -> tuple:
    from gsvnet_ros.ros.node import SegmentationNode

    Parameter = mods["rclpy.parameter"].Parameter
    node = SegmentationNode(backend=backend, start_worker=False, parameter_overrides=[
        Parameter("keyframe_interval", value=interval)])
    probe = mods["rclpy"].create_node("bench_probe")
    counts = {name: 0 for name in outputs}
    Image = fake_ros.message_class("sensor_msgs/msg/Image")
    Info = fake_ros.message_class("gsvnet_ros_msgs/msg/SegmentationInfo")
    for name in outputs:
        def count(msg: Any, name: str = name) -> None:
            counts[name] += 1
        probe.create_subscription(Info if name == "info" else Image,
                                  f"/segmentation_node/{name}", count, 10)
    pub = probe.create_publisher(Image, "/image", mods["rclpy.qos"].qos_profile_sensor_data)
    executor = mods["rclpy.executors"].SingleThreadedExecutor()
    executor.add_node(node)
    executor.add_node(probe)
    return node, probe, pub, executor, counts


def _drain(executor: Any) -> None:
    while executor._ready():
        executor.spin_once(timeout_sec=0)


def measure_overhead(*, width: int = 1024, height: int = 512, frames: int = 30, interval: int = 5,
                     outputs: tuple[str, ...] = ("class_mask", "info"), backend: Any = None,
                     mods: dict | None = None) -> dict[str, Any]:
    """Per-frame milliseconds of the model step and of everything else the node does."""
    from gsvnet_ros.stream import VideoSegmenter

    mods = mods or install_stand_in()
    backend = backend or build_backend()
    node, probe, pub, executor, counts = _setup(mods, backend, outputs, interval)
    graph_cls = type(fake_ros.graph())
    callback, step, publish = _Timer(), _Timer(), _Timer()
    transport_s = [0.0] * (frames + 1)  # per frame: the stand-in's CDR round trips of outputs
    frame = [0]
    node._image_sub.callback = callback.wrap(node._image_sub.callback)
    original_publish, original_step, original_deliver = node._publish, VideoSegmenter.step, \
        graph_cls.deliver
    in_publish = [False]

    def publish_and_flag(*args: Any) -> None:
        in_publish[0] = True
        try:
            original_publish(*args)
        finally:
            in_publish[0] = False

    def deliver(graph: Any, *args: Any) -> None:
        if not in_publish[0]:
            return original_deliver(graph, *args)
        start = time.perf_counter()
        original_deliver(graph, *args)
        transport_s[frame[0]] += time.perf_counter() - start

    node._publish = publish.wrap(publish_and_flag)
    VideoSegmenter.step = step.wrap(original_step)
    graph_cls.deliver = deliver
    images = _frames(width, height, frames)
    try:
        for i in range(frames + 1):  # frame 0 is a warm-up
            frame[0] = i
            pub.publish(_image_msg(images[i % len(images)], NS + i * 33_000_000))
            _drain(executor)
            node.process_pending()
            _drain(executor)
    finally:
        VideoSegmenter.step, graph_cls.deliver = original_step, original_deliver
    model = np.array(step.seconds[1:]) * 1e3
    non_key = np.sort(model)[: len(model) - len(model) // interval]
    decode = np.array(callback.seconds[1:]) * 1e3
    pub_ms = np.array(publish.seconds[1:]) * 1e3
    transport_ms = float(np.mean(transport_s[1:]) * 1e3)
    node_ms = float((decode + pub_ms).mean())
    result = {
        "frames": len(model),
        "model_mean_ms": float(model.mean()),
        "model_non_keyframe_mean_ms": float(non_key.mean()),
        "decode_ms": float(decode.mean()),
        "publish_ms": float(pub_ms.mean()),
        "stand_in_transport_ms": transport_ms,
        "node_overhead_ms": node_ms,
        "share_of_mean_step": node_ms / float(model.mean()),
        "share_of_non_keyframe_step": node_ms / float(non_key.mean()),
        "share_without_transport": (node_ms - transport_ms) / float(model.mean()),
        "outputs_received": dict(counts),
    }
    executor.remove_node(node)
    node.destroy_node()
    probe.destroy_node()
    return result


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def soak(*, frames: int = 2000, width: int = 256, height: int = 128, backend: Any = None,
         mods: dict | None = None, warmup: int = 200) -> dict[str, float]:
    """Run `frames` frames (two cameras, all outputs subscribed, some bad input); RSS growth."""
    mods = mods or install_stand_in()
    backend = backend or build_backend()
    node, probe, pub, executor, counts = _setup(
        mods, backend, ("class_mask", "color_mask", "overlay", "info"), 5)
    images = _frames(width, height, 8)
    rss_start = None
    for i in range(frames):
        if i == warmup:
            rss_start = _rss_mb()
        msg = _image_msg(images[i % len(images)], NS + i * 33_000_000,
                         frame_id="left" if i % 2 else "right")
        if i % 50 == 25:
            msg.step = 1  # a bad frame now and then
        pub.publish(msg)
        _drain(executor)
        node.process_pending()
        if i % 100 == 0:
            node.publish_diagnostics()
        _drain(executor)
    rss_end = _rss_mb()
    snap = node.stats.snapshot()
    node.destroy_node()
    probe.destroy_node()
    return {"frames": frames, "rss_after_warmup_mb": rss_start, "rss_end_mb": rss_end,
            "rss_growth_mb": rss_end - rss_start, "processed": snap["frames_processed"],
            "decode_errors": snap["decode_errors"], "outputs_received": dict(counts)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1024x512", help="WIDTHxHEIGHT")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--interval", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--soak", type=int, default=0, help="run the memory soak instead")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    mods = install_stand_in()
    backend = build_backend(args.threads)
    if args.soak:
        r = soak(frames=args.soak, width=width, height=height, backend=backend, mods=mods)
        print(f"soak {r['frames']} frames at {width}x{height}: RSS {r['rss_after_warmup_mb']:.1f}"
              f" MB after warm-up -> {r['rss_end_mb']:.1f} MB (growth {r['rss_growth_mb']:+.1f}"
              f" MB); processed {r['processed']}, decode errors {r['decode_errors']}")
        return 0
    for outputs in (("class_mask", "info"), ("class_mask", "color_mask", "overlay", "info")):
        r = measure_overhead(width=width, height=height, frames=args.frames,
                             interval=args.interval, outputs=outputs, backend=backend, mods=mods)
        print(f"{width}x{height}, interval {args.interval}, {r['frames']} frames, subscribed: "
              f"{', '.join(outputs)}\n"
              f"  model step mean {r['model_mean_ms']:.1f} ms (non-keyframe "
              f"{r['model_non_keyframe_mean_ms']:.1f} ms)\n"
              f"  node: decode {r['decode_ms']:.2f} ms + encode/publish {r['publish_ms']:.2f} ms"
              f" = {r['node_overhead_ms']:.2f} ms = {100 * r['share_of_mean_step']:.1f} % of the "
              f"mean step ({100 * r['share_of_non_keyframe_step']:.1f} % of a non-keyframe step)\n"
              f"  of which the stand-in's CDR round trips of the outputs: "
              f"{r['stand_in_transport_ms']:.2f} ms (without them: "
              f"{100 * r['share_without_transport']:.1f} % of the mean step)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
