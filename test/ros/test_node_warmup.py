"""warmup_size: the worker segments a synthetic keyframe and non-keyframe before the first image, on a
stream of its own; a bad size is refused at start-up; a failing warm-up is logged and the node goes on."""
from __future__ import annotations

import time

import pytest


class _Recording:
    """The shared test backend, with its keyframe and propagate calls recorded."""

    def __init__(self, inner, fail: bool = False) -> None:
        self.inner, self.fail, self.calls = inner, fail, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def keyframe(self, frame):
        self.calls.append(("keyframe", tuple(frame.shape[-2:])))
        if self.fail:
            raise RuntimeError("no graph for this size")
        return self.inner.keyframe(frame)

    def propagate(self, *args, **kwargs):
        self.calls.append(("propagate", tuple(args[0].shape[-2:])))
        return self.inner.propagate(*args, **kwargs)


def _node(ros, backend, size: str, start_worker: bool):
    from gsvnet_ros.ros.node import SegmentationNode

    Parameter = ros.mods["rclpy.parameter"].Parameter
    return SegmentationNode(backend=backend, start_worker=start_worker,
                            parameter_overrides=[Parameter("warmup_size", value=size)])


def test_the_worker_warms_up_before_the_first_image(ros, backend):
    recording = _Recording(backend)
    node = _node(ros, recording, "96x64", start_worker=True)
    try:
        deadline = time.monotonic() + 60
        while len(recording.calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        # 96x64 is padded to 96x64 (multiples of 32); the non-keyframe works at 1/8
        assert recording.calls == [("keyframe", (64, 96)), ("propagate", (8, 12))]
        assert not node._streams and node.stats.processed == 0  # no camera stream touched
    finally:
        node.destroy_node()


def test_no_warm_up_without_a_size(ros, backend):
    recording = _Recording(backend)
    node = _node(ros, recording, "", start_worker=False)
    try:
        assert node.warm_up() is None and recording.calls == []
    finally:
        node.destroy_node()


def test_a_failing_warm_up_is_logged_and_the_node_goes_on(ros, backend):
    recording = _Recording(backend, fail=True)
    node = _node(ros, recording, "64x32", start_worker=False)
    try:
        assert node.warm_up() is None and recording.calls == [("keyframe", (32, 64))]
    finally:
        node.destroy_node()


@pytest.mark.parametrize("size", ["1024by512", "0x512", "1024x", "x", "-4x4"])
def test_a_bad_warmup_size_is_refused_at_start_up(ros, backend, size):
    with pytest.raises(ValueError, match="warmup_size must be empty or WIDTHxHEIGHT"):
        _node(ros, backend, size, start_worker=False)
