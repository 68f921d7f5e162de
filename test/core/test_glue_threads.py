"""Torch's own threads around the ONNX Runtime graphs: one for the stream's glue, the configured count for
export and calibration, the caller's count restored after every step."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gsvnet_ros.backends.base import torch_threads
from gsvnet_ros.backends.torch_backend import TorchBackend
from gsvnet_ros.config import ModelConfig, StreamConfig
from gsvnet_ros.models.gsvnet import build_gsvnet
from gsvnet_ros.stream import VideoSegmenter

MS = 1_000_000


@pytest.fixture
def two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


def test_torch_threads_sets_and_restores_the_count(two_threads):
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    for unchanged in (None, 0, 2):
        with torch_threads(unchanged):
            assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError, match="inside"):
        with torch_threads(1):
            raise RuntimeError("inside")
    assert torch.get_num_threads() == 2


def _frames(n):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (64 + n, 96 + n, 3), dtype=np.uint8)
    return [(np.ascontiguousarray(base[i:i + 64, i:i + 96]), i * 50 * MS) for i in range(n)]


def test_the_stream_runs_onnxruntime_glue_on_one_torch_thread_and_exports_on_the_configured_count(
        two_threads, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from gsvnet_ros.backends import onnxruntime_backend
    from gsvnet_ros.backends.onnxruntime_backend import OnnxRuntimeBackend

    export_threads = []
    cached_export = onnxruntime_backend.cached_export

    def recording_export(*args, **kwargs):
        export_threads.append(torch.get_num_threads())
        return cached_export(*args, **kwargs)

    monkeypatch.setattr(onnxruntime_backend, "cached_export", recording_export)
    torch.manual_seed(0)
    backend = OnnxRuntimeBackend(build_gsvnet(ModelConfig(flow="dis")), threads=2, cache_dir=str(tmp_path))
    assert backend.glue_threads == 1
    seen = []
    for name in ("keyframe", "propagate", "ahead"):
        method = getattr(backend, name)

        def recording(*args, _method=method, _name=name, **kwargs):
            seen.append((_name, torch.get_num_threads()))
            return _method(*args, **kwargs)

        monkeypatch.setattr(backend, name, recording)
    segmenter = VideoSegmenter(backend, StreamConfig(keyframe_interval=3))
    for frame, stamp in _frames(4):
        segmenter.step(frame, stamp)
        assert torch.get_num_threads() == 2  # the caller's count, back after each step
    list(segmenter.segment(_frames(4)))  # the networks here, Backend.ahead on the worker thread
    assert torch.get_num_threads() == 2
    assert {name for name, _ in seen} == {"keyframe", "propagate", "ahead"}
    assert all(count == 1 for _, count in seen), seen
    assert export_threads and all(count == 2 for count in export_threads), export_threads


def test_the_torch_backend_keeps_the_configured_threads(two_threads):
    torch.manual_seed(0)
    backend = TorchBackend(build_gsvnet(ModelConfig()), torch.device("cpu"))
    assert backend.glue_threads is None
    seen = []
    keyframe = backend.keyframe
    backend.keyframe = lambda frame: (seen.append(torch.get_num_threads()), keyframe(frame))[1]
    VideoSegmenter(backend).step(_frames(1)[0][0], 0)
    assert seen == [2]
