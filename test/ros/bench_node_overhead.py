"""Node overhead over real DDS: publish -> class mask received, minus the model's own step.

The node runs as a process (`segmentation_node`, started as segment.launch.py starts it, shipped
DDS settings); this process publishes one full-size frame at a time, waits for its class mask and
its ~/info, and takes overhead = (mask received - frame published) - info.total_ms: decoding,
the slot and the worker hand-over, encoding, and DDS both ways. Also a memory soak of the node
in this process (real rclpy, many frames, two cameras, some bad input).

    .venv/bin/python test/ros/bench_node_overhead.py --frames 30 --size 1024x512
    .venv/bin/python test/ros/bench_node_overhead.py --soak 2000 --size 256x128
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

NS = 1_000_000_000


def _frames(width: int, height: int, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (height + count, width + count, 3), dtype=np.uint8)
    return [np.ascontiguousarray(base[i:i + height, i:i + width]) for i in range(min(count, 8))]


def _summary(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, np.float64)
    if not array.size:
        return {"count": 0, "median": float("nan"), "p95": float("nan")}
    return {"count": int(array.size), "median": float(np.median(array)),
            "p95": float(np.percentile(array, 95))}


def measure_overhead(*, width: int = 1024, height: int = 512, frames: int = 30,
                     interval: int = 5, backend: str = "torch",
                     workdir: Path | None = None) -> dict[str, Any]:
    """Median and p95 of the node's overhead per frame type, and its share of a non-keyframe."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from gsvnet_ros_msgs.msg import SegmentationInfo
    from node_harness import raw_image, spin_until
    from node_process import STARTUP_S, start_node, stop

    workdir = workdir or Path(tempfile.mkdtemp(prefix="gsvnet_bench_"))
    process = start_node(workdir, {"device": "cpu", "keyframe_interval": str(interval)},
                         {"backend": backend, "keyframe_net": "swiftnet_r18"})
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("overhead_bench", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    arrived: dict[int, float] = {}
    infos: dict[int, Any] = {}

    def stamp(msg: Any) -> int:
        return msg.header.stamp.sec * NS + msg.header.stamp.nanosec

    node.create_subscription(Image, "/segmentation_node/class_mask",
                             lambda m: arrived.setdefault(stamp(m), time.perf_counter()), 10)
    node.create_subscription(SegmentationInfo, "/segmentation_node/info",
                             lambda m: infos.setdefault(stamp(m), m), 10)
    pub = node.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
    overhead: dict[str, list[float]] = {"keyframe": [], "non_keyframe": []}
    model: dict[str, list[float]] = {"keyframe": [], "non_keyframe": []}
    try:
        if not spin_until(executor, lambda: pub.get_subscription_count() > 0
                          and process.poll() is None, STARTUP_S):
            raise RuntimeError("the node did not come up")
        images = _frames(width, height, frames)
        for i in range(frames + 1):  # frame 0 is a warm-up
            msg = raw_image(images[i % len(images)], "rgb8", stamp_ns=NS * 1000 + i * 66_000_000)
            key = stamp(msg)
            sent = time.perf_counter()
            pub.publish(msg)
            if not spin_until(executor, lambda: key in arrived and key in infos, 60.0):
                raise RuntimeError(f"frame {i} was not segmented within 60 s")
            if i == 0:
                continue
            info = infos[key]
            kind = "keyframe" if info.is_keyframe else "non_keyframe"
            overhead[kind].append((arrived[key] - sent) * 1e3 - info.total_ms)
            model[kind].append(info.total_ms)
            time.sleep(0.05)  # one frame at a time: nothing is dropped, nothing queues
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        stop(process, signal.SIGINT)
    result: dict[str, Any] = {"width": width, "height": height, "interval": interval,
                              "backend": backend}
    for kind in ("keyframe", "non_keyframe"):
        result[f"overhead_{kind}_ms"] = _summary(overhead[kind])
        result[f"model_{kind}_ms"] = _summary(model[kind])
    step = result["model_non_keyframe_ms"]["median"]
    result["share_of_non_keyframe_step"] = {
        kind: result[f"overhead_{kind}_ms"]["median"] / step for kind in overhead}
    return result


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def soak(*, frames: int = 2000, width: int = 256, height: int = 128, backend: Any,
         env: Any, warmup: int = 200) -> dict[str, Any]:
    """Run `frames` frames through an in-process node (two cameras, all outputs subscribed, a
    bad frame every 50); resident memory growth after warm-up."""
    from node_harness import Harness

    h = Harness(env, backend, subscribe=("class_mask", "color_mask", "overlay", "info"),
                overrides={"keyframe_interval": 5})
    from node_harness import image_msg

    images = _frames(width, height, 8)
    rss_start = None
    counts = {name: 0 for name in ("class_mask", "info")}
    for i in range(frames):
        if i == warmup:
            rss_start = _rss_mb()
        rgb = images[i % len(images)]
        msg = image_msg(rgb, stamp_ns=NS + i * 33_000_000, frame_id="left" if i % 2 else "right")
        if i % 50 == 25:
            msg.step = 1  # a bad frame now and then
            h.send(msg)
            continue
        h.step(msg)
        for name in counts:  # count the outputs, keep none (the probe must not grow either)
            counts[name] += len(h.received[name])
        for kept in h.received.values():
            kept.clear()  # in place: the subscriptions append to these very lists
        if i % 100 == 0:
            h.node.publish_diagnostics()
    rss_end = _rss_mb()
    snap = h.node.stats.snapshot()
    h.close()
    return {"frames": frames, "rss_after_warmup_mb": rss_start, "rss_end_mb": rss_end,
            "rss_growth_mb": rss_end - rss_start, "processed": snap["frames_processed"],
            "decode_errors": snap["decode_errors"], "outputs_received": counts}


def _print_overhead(r: dict[str, Any]) -> None:
    print(f"{r['width']}x{r['height']}, interval {r['interval']}, backend {r['backend']}, "
          "node as a process, frames over DDS one at a time (ms):")
    for kind in ("keyframe", "non_keyframe"):
        o, m = r[f"overhead_{kind}_ms"], r[f"model_{kind}_ms"]
        print(f"  {kind:13s} n={o['count']:3d}  model step median {m['median']:7.1f}  "
              f"overhead median {o['median']:6.2f}  p95 {o['p95']:6.2f}  "
              f"= {100 * r['share_of_non_keyframe_step'][kind]:5.1f} % of a non-keyframe step")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1024x512", help="WIDTHxHEIGHT")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--interval", type=int, default=5)
    parser.add_argument("--backend", default="torch", choices=("torch", "onnxruntime"))
    parser.add_argument("--soak", type=int, default=0, help="run the memory soak instead")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    import conftest  # the test environment: own DDS domain, built interface packages

    if args.soak:
        import rclpy

        rclpy.init()
        env = conftest.Environment(with_info=True)
        r = soak(frames=args.soak, width=width, height=height,
                 backend=conftest.random_backend(), env=env)
        rclpy.try_shutdown()
        print(f"soak {r['frames']} frames at {width}x{height}: RSS {r['rss_after_warmup_mb']:.1f}"
              f" MB after warm-up -> {r['rss_end_mb']:.1f} MB (growth {r['rss_growth_mb']:+.1f}"
              f" MB); processed {r['processed']}, decode errors {r['decode_errors']}")
        return 0
    _print_overhead(measure_overhead(width=width, height=height, frames=args.frames,
                                     interval=args.interval, backend=args.backend))
    return 0


if __name__ == "__main__":
    sys.exit(main())
