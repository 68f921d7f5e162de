"""How many sensor_msgs/Image frames arrive between two processes on this host, over real Fast DDS.

    python test/ros/delivery.py --width 2048 --height 1024 --rate 15 --frames 30 \
        --publisher-reliability best_effort --profile config/fastdds_large_images.xml --json

starts a subscriber process (best effort, depth 1 by default: the segmentation node's input QoS)
and a publisher process (rgb8 frames numbered in header.frame_id, publish time in header.stamp),
both from this file and with the same environment: os.environ, discovery kept on localhost,
ROS_DOMAIN_ID left as the caller set it (set one of your own), and the profile in
FASTDDS_DEFAULT_PROFILES_FILE and FASTRTPS_DEFAULT_PROFILES_FILE (both removed for `none`, so Fast
DDS runs on its defaults). The publisher waits until it sees the subscriber
(get_subscription_count) and the parent until the subscriber sees the publisher; then frames go out
at the given rate, and about a second after the last one the subscriber is told to stop and reports
which frames it got. `measure()` does the same from Python and returns a dict (tests import it).
`shm_left` in it is a plain before/after diff of /dev/shm: on a busy machine it can list another
process's live segments.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

MATCH_TIMEOUT_S = 30.0  # discovery on a loaded 2-core machine, two fresh processes
DRAIN_S = 1.0  # after the last frame, before the subscriber is told to stop
_PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
SAME = "same"
_PROTOCOL = ("READY", "MATCHED", "RESULT")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def child_environment(profile: str | os.PathLike | None,
                      extra: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ for one side: localhost discovery, the caller's domain, `profile` or none."""
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.pop("ROS_STATIC_PEERS", None)
    for name in _PROFILE_VARIABLES:
        env.pop(name, None)
    if profile not in (None, "", "none"):
        # Fast DDS 3.x (Kilted on) reads FASTDDS_DEFAULT_PROFILES_FILE; Fast DDS 2.x (Jazzy's
        # 2.14) only knows FASTRTPS_DEFAULT_PROFILES_FILE and silently runs on its defaults
        # without it. Kilted's rmw_fastrtps warns that the FASTRTPS_ name is deprecated, so that
        # one is set only where Fast DDS may be 2.x.
        names = _PROFILE_VARIABLES[:1] if _fastdds_major() == 3 else _PROFILE_VARIABLES
        for name in names:
            env[name] = str(Path(profile).resolve())
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def _fastdds_major() -> int | None:
    """2 or 3 for the Fast DDS this interpreter's rclpy runs on (pip wheels or ROS_DISTRO)."""
    from importlib import metadata

    for distribution, major in (("ros-fastdds", 3), ("ros-fastrtps", 2)):
        try:
            metadata.version(distribution)
            return major
        except metadata.PackageNotFoundError:
            pass
    distro = os.environ.get("ROS_DISTRO", "")
    if distro in ("humble", "iron", "jazzy"):
        return 2
    return 3 if distro else None


def _shm_entries() -> set[str]:
    try:
        return {name for name in os.listdir("/dev/shm") if "fastrtps" in name or "fastdds" in name}
    except OSError:
        return set()


class _Child:
    """A role of this script as a process: protocol lines on a queue, anything else in `log`."""

    def __init__(self, role: str, args: list[str], env: dict[str, str]):
        self.role = role
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--role", role, *args], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            line = line.rstrip("\n")
            if line.startswith(_PROTOCOL):
                self.lines.put(line)
            else:  # Fast DDS logs its errors on stdout, coloured
                self.log.append(_ANSI.sub("", line))
        self.lines.put(None)

    def _read_err(self) -> None:
        for line in self.process.stderr:
            self.log.append(_ANSI.sub("", line.rstrip("\n")))

    def expect(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.role}: no '{prefix}' within {timeout:.0f} s; "
                                   f"output: {self.log[-20:]}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"{self.role} exited (rc {self.process.wait()}) before "
                                   f"'{prefix}'; output: {self.log[-20:]}")
            if line.startswith(prefix):
                return line[len(prefix):].strip()

    def say(self, word: str) -> None:
        self.process.stdin.write(word + "\n")
        self.process.stdin.flush()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def measure(width: int, height: int, rate: float, frames: int, publisher_reliability: str,
            profile: str | os.PathLike | None, subscriber_reliability: str = "best_effort", *,
            subscriber_profile: str | os.PathLike | None = SAME, subscriber_depth: int = 1,
            publisher_depth: int = 10, extra_env: dict[str, str] | None = None) -> dict:
    """Run one publisher and one subscriber process; what was sent, what arrived, and how.

    `profile` is the Fast DDS XML both processes load (None or "none": Fast DDS defaults);
    `subscriber_profile` gives the subscriber another one (to measure mixed setups).
    """
    if subscriber_profile == SAME:
        subscriber_profile = profile
    shm_before = _shm_entries()
    common = ["--width", str(width), "--height", str(height)]
    sub = _Child("subscriber", [*common, "--subscriber-reliability", subscriber_reliability,
                                "--subscriber-depth", str(subscriber_depth)],
                 child_environment(subscriber_profile, extra_env))
    pub = None
    try:
        sub.expect("READY", MATCH_TIMEOUT_S)
        pub = _Child("publisher", [*common, "--rate", str(rate), "--frames", str(frames),
                                   "--publisher-reliability", publisher_reliability,
                                   "--publisher-depth", str(publisher_depth)],
                     child_environment(profile, extra_env))
        started = time.monotonic()
        pub.expect("MATCHED", MATCH_TIMEOUT_S)  # the publisher sees the subscription
        sub.expect("MATCHED", max(1.0, MATCH_TIMEOUT_S - (time.monotonic() - started)))
        match_s = time.monotonic() - started
        pub.say("go")
        sent = json.loads(pub.expect("RESULT", 60.0 + 2.0 * frames / rate))
        time.sleep(DRAIN_S)
        sub.say("stop")
        got = json.loads(sub.expect("RESULT", 30.0))
        pub.process.wait(timeout=30)
        sub.process.wait(timeout=30)
    finally:
        sub.close()
        if pub is not None:
            pub.close()
    received = got["frames"]
    latencies = got["latencies_ms"]
    return {
        "width": width, "height": height, "rate": rate, "bytes_per_frame": width * height * 3,
        "publisher_reliability": publisher_reliability,
        "subscriber_reliability": subscriber_reliability,
        "profile": None if profile in (None, "", "none") else str(profile),
        "subscriber_profile": (None if subscriber_profile in (None, "", "none")
                               else str(subscriber_profile)),
        "extra_env": dict(extra_env or {}),
        "sent": sent["sent"], "received": len(set(received)),
        "ratio": len(set(received)) / sent["sent"] if sent["sent"] else 0.0,
        "wrong_size": got["wrong_size"],
        "publish_s": sent["elapsed_s"], "publish_call_max_ms": sent["publish_call_max_ms"],
        "match_s": round(match_s, 2),
        "publisher_cpu_s": sent["cpu_s"], "subscriber_cpu_s": got["cpu_s"],
        "latency_ms_median": (sorted(latencies)[len(latencies) // 2] if latencies else None),
        "latency_ms_max": max(latencies) if latencies else None,
        "shm_left": sorted(_shm_entries() - shm_before),
        "publisher_rc": pub.process.returncode, "subscriber_rc": sub.process.returncode,
        # What else the processes printed: Fast DDS errors (a segment it could not create, say).
        "publisher_log": pub.log[-10:], "subscriber_log": sub.log[-10:],
    }


def _cpu_s() -> float:
    """User + system CPU seconds this process has used so far (all its threads)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return round(usage.ru_utime + usage.ru_stime, 2)


def _qos(reliability: str, depth: int):
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=(ReliabilityPolicy.RELIABLE if reliability == "reliable"
                                   else ReliabilityPolicy.BEST_EFFORT),
                      durability=DurabilityPolicy.VOLATILE)


def _stdin_words() -> queue.Queue:
    words: queue.Queue[str] = queue.Queue()

    def read():
        for line in sys.stdin:
            words.put(line.strip())
        words.put("eof")

    threading.Thread(target=read, daemon=True).start()
    return words


def _run_subscriber(args) -> None:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    words = _stdin_words()
    rclpy.init()
    node = rclpy.create_node("delivery_subscriber")
    frames: list[int] = []
    latencies: list[float] = []
    wrong = 0
    expected = args.width * args.height * 3

    def on_image(msg: Image) -> None:
        nonlocal wrong
        now = time.time()
        if len(msg.data) != expected:
            wrong += 1
            return
        frames.append(int(msg.header.frame_id))
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9  # wall time of publish()
        latencies.append(round((now - stamp) * 1e3, 2))

    sub = node.create_subscription(Image, "delivery_image", on_image,
                                   _qos(args.subscriber_reliability, args.subscriber_depth))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    print("READY", flush=True)
    matched = False
    try:
        while True:
            executor.spin_once(timeout_sec=0.02)
            if not matched and sub.get_publisher_count() > 0:
                matched = True
                print("MATCHED", flush=True)
            try:
                word = words.get_nowait()
            except queue.Empty:
                continue
            if word in ("stop", "eof"):
                break
        print("RESULT " + json.dumps({"frames": frames, "latencies_ms": latencies,
                                      "wrong_size": wrong, "cpu_s": _cpu_s()}), flush=True)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


def _run_publisher(args) -> None:
    import array

    import rclpy
    from sensor_msgs.msg import Image

    words = _stdin_words()
    rclpy.init()
    node = rclpy.create_node("delivery_publisher")
    pub = node.create_publisher(Image, "delivery_image",
                                _qos(args.publisher_reliability, args.publisher_depth))
    msg = Image(height=args.height, width=args.width, encoding="rgb8", is_bigendian=0,
                step=3 * args.width)
    payload = bytes(range(256)) * (args.width * args.height * 3 // 256 + 1)
    msg.data = array.array("B", payload[:args.width * args.height * 3])
    try:
        deadline = time.monotonic() + MATCH_TIMEOUT_S
        while pub.get_subscription_count() == 0:
            if time.monotonic() > deadline:
                raise SystemExit("publisher: no subscription matched")
            time.sleep(0.02)
        print("MATCHED", flush=True)
        if words.get() != "go":
            return
        period = 1.0 / args.rate
        start = time.monotonic()
        call_max = 0.0
        for i in range(args.frames):
            target = start + i * period
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = time.time()
            msg.header.frame_id = str(i)
            msg.header.stamp.sec = int(now)
            msg.header.stamp.nanosec = int((now - int(now)) * 1e9)
            t0 = time.monotonic()
            pub.publish(msg)
            call_max = max(call_max, time.monotonic() - t0)
        elapsed = time.monotonic() - start
        print("RESULT " + json.dumps({"sent": args.frames, "elapsed_s": round(elapsed, 3),
                                      "publish_call_max_ms": round(call_max * 1e3, 2),
                                      "cpu_s": _cpu_s()}), flush=True)
        # Stay alive (a reliable writer keeps repairing) until the parent has read the result.
        time.sleep(DRAIN_S + 0.5)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--rate", type=float, default=15.0)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--publisher-reliability", choices=("best_effort", "reliable"),
                        default="best_effort")
    parser.add_argument("--subscriber-reliability", choices=("best_effort", "reliable"),
                        default="best_effort")
    parser.add_argument("--publisher-depth", type=int, default=10)
    parser.add_argument("--subscriber-depth", type=int, default=1)
    parser.add_argument("--profile", default="none",
                        help="Fast DDS XML profile both processes load, or 'none'")
    parser.add_argument("--subscriber-profile", default=SAME,
                        help="another profile (or 'none') for the subscriber only")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for both processes (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--role", choices=("subscriber", "publisher"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "subscriber":
        _run_subscriber(args)
        return 0
    if args.role == "publisher":
        _run_publisher(args)
        return 0
    result = measure(args.width, args.height, args.rate, args.frames, args.publisher_reliability,
                     args.profile, args.subscriber_reliability,
                     subscriber_profile=args.subscriber_profile,
                     subscriber_depth=args.subscriber_depth, publisher_depth=args.publisher_depth,
                     extra_env=dict(item.split("=", 1) for item in args.env))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['received']}/{result['sent']} frames of {args.width}x{args.height} rgb8 "
              f"at {args.rate:g} Hz arrived ({100 * result['ratio']:.1f} %); publisher "
              f"{args.publisher_reliability}, subscriber {args.subscriber_reliability}, profile "
              f"{result['profile'] or 'none'}; median latency {result['latency_ms_median']} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
