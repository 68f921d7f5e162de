"""A test-side `ros2 bag play --clock`: a rosbag2's images and labels published over DDS at their
recorded rate (times `rate`), with /clock carrying the bag's time (rosbag2_py and ros2cli are not
installable here).

Messages are read with the rosbags library (gsvnet_ros.bag.BagReader) and rebuilt as rclpy's
sensor_msgs/Image. /clock is published before each message and every `clock_period_s` of wall time
in between, as `--clock 100` would, so that a node with use_sim_time sees the bag's time advance.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image

from gsvnet_ros.bag import BagReader

NS = 1_000_000_000


def to_rclpy_image(msg: Any) -> Image:
    """A rosbags sensor_msgs/Image as rclpy's class, header and pixels as they are."""
    out = Image(height=int(msg.height), width=int(msg.width), encoding=msg.encoding,
                is_bigendian=int(msg.is_bigendian), step=int(msg.step))
    out.header.frame_id = msg.header.frame_id
    out.header.stamp.sec, out.header.stamp.nanosec = int(msg.header.stamp.sec), int(
        msg.header.stamp.nanosec)
    out.data.frombytes(np.asarray(msg.data, np.uint8).tobytes())
    return out


def clock_msg(time_ns: int) -> Clock:
    msg = Clock()
    msg.clock.sec, msg.clock.nanosec = divmod(int(time_ns), NS)
    return msg


def play(bag: Path, publishers: dict[str, Any], clock_publisher: Any, *, rate: float = 1.0,
         clock_period_s: float = 0.01,
         between: Optional[Callable[[], None]] = None) -> tuple[int, int]:
    """Publish every message of the topics in `publishers` (topic -> rclpy publisher) in bag
    order at `rate` times the recorded rate; (messages published, bag time of the last, ns).

    `between()` (for example a spin of the caller's executor) runs while waiting.
    """
    published, last = 0, 0
    with BagReader(bag) as reader:
        start_bag = start_wall = None
        for item in reader.messages(sorted(publishers)):
            if start_bag is None:
                start_bag, start_wall = item.timestamp, time.monotonic()
            due = start_wall + (item.timestamp - start_bag) / NS / rate
            while True:
                now = time.monotonic()
                sim = start_bag + int(min(now - start_wall, due - start_wall) * rate * NS)
                clock_publisher.publish(clock_msg(sim))
                if now >= due:
                    break
                if between is not None:
                    between()
                time.sleep(min(clock_period_s, max(0.0, due - time.monotonic())))
            clock_publisher.publish(clock_msg(item.timestamp))
            publishers[item.topic].publish(to_rclpy_image(item.msg))
            published, last = published + 1, item.timestamp
    return published, last
