"""ONNX Runtime backend: parity with PyTorch per graph and size, cache reuse, corrupt cache rebuilt."""
import dataclasses
import os

import numpy as np
import pytest
import torch

from gsvnet_ros.backends import build_backend, choose_backend
from gsvnet_ros.backends.onnx_export import cached_export, model_fingerprint, prune_cache
from gsvnet_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
from gsvnet_ros.config import GSVNetConfig, ModelConfig
from gsvnet_ros.models.gsvnet import build_gsvnet
from gsvnet_ros.stream import VideoSegmenter

pytest.importorskip("onnxruntime")

SIZES = [(64, 64), (96, 160), (128, 256)]


def _model(keyframe_net: str = "swiftnet_r18", seed: int = 0):
    """A random model whose keyframe logits are scaled to a trained net's range (std ≈ 5)."""
    torch.manual_seed(seed)
    model = build_gsvnet(ModelConfig(keyframe_net=keyframe_net)).eval()
    last_conv = [m for m in model.keyframe_net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        std = model.keyframe_forward(torch.rand(1, 3, 64, 64)).std()
        last_conv.weight.mul_(5 / std)
        if last_conv.bias is not None:
            last_conv.bias.mul_(5 / std)
    return model


@pytest.fixture(scope="module", params=["swiftnet_r18", "bisenet_r18"])
def pair(request, tmp_path_factory):
    model = _model(request.param)
    backend = OnnxRuntimeBackend(model, threads=2, cache_dir=str(tmp_path_factory.mktemp("onnx")))
    return model, backend


@pytest.mark.parametrize("size", SIZES)
def test_keyframe_graph_matches_pytorch(pair, size):
    model, backend = pair
    frame = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = model.keyframe_forward(frame)
    got = backend.keyframe(frame)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-3
    assert (got.argmax(1) == expected.argmax(1)).float().mean().item() >= 0.999


@pytest.mark.parametrize("size", SIZES)
def test_propagation_graph_matches_pytorch(pair, size):
    model, backend = pair
    gen = torch.Generator().manual_seed(2)
    h8, w8 = size[0] // 8, size[1] // 8
    frame, prev = torch.rand(1, 3, h8, w8, generator=gen), torch.rand(1, 3, h8, w8, generator=gen)
    logits = 5 * torch.randn(1, 19, h8, w8, generator=gen)
    with torch.inference_mode():
        expected = model.propagate_forward(frame, prev, logits)
    got = backend.propagate(frame, prev, logits)
    assert (got - expected).abs().max().item() <= 1e-3
    assert (got.argmax(1) == expected.argmax(1)).float().mean().item() >= 0.999


def _moving_flow(model, scale: float = 0.5):
    """Random flow-net output weights, so the propagation graphs warp by several pixels."""
    with torch.no_grad():
        model.flow_net.to_flow.weight.normal_(0, scale, generator=torch.Generator().manual_seed(3))
    return model


def test_propagation_graph_matches_pytorch_with_a_moving_flow(tmp_path):
    model = _moving_flow(_model())
    backend = OnnxRuntimeBackend(model, threads=2, cache_dir=str(tmp_path))
    gen = torch.Generator().manual_seed(4)
    frame, prev = torch.rand(1, 3, 16, 32, generator=gen), torch.rand(1, 3, 16, 32, generator=gen)
    logits = 5 * torch.randn(1, 19, 16, 32, generator=gen)
    with torch.inference_mode():
        flow = model.flow(frame, prev)
        expected = model.propagate_forward(frame, prev, logits)
    assert flow.abs().max().item() > 2  # a real warp, partly from outside the frame
    got = backend.propagate(frame, prev, logits)
    assert (got - expected).abs().max().item() <= 1e-3
    assert (got.argmax(1) == expected.argmax(1)).float().mean().item() >= 0.999


def test_stream_labels_agree_between_backends(tmp_path):
    from gsvnet_ros.backends.torch_backend import TorchBackend

    model = _model()
    frames = [np.random.default_rng(i).integers(0, 256, (70, 100, 3), dtype=np.uint8) for i in range(4)]
    torch_seg = VideoSegmenter(TorchBackend(model, torch.device("cpu")))
    ort_seg = VideoSegmenter(OnnxRuntimeBackend(model, cache_dir=str(tmp_path)))
    for i, frame in enumerate(frames):
        a, b = torch_seg.step(frame, i), ort_seg.step(frame, i)
        assert a.is_keyframe == b.is_keyframe
        assert (a.labels == b.labels).mean() >= 0.999


def test_cached_export_is_reused_and_a_corrupt_one_rebuilt(tmp_path):
    model = _model()
    first = cached_export(model, "propagation", 64, 64, tmp_path)
    stamp = first.with_suffix(".json").stat().st_mtime_ns  # the sidecar is only written on export
    assert cached_export(model, "propagation", 64, 64, tmp_path) == first
    assert first.with_suffix(".json").stat().st_mtime_ns == stamp  # reused, not re-exported
    good = first.read_bytes()
    first.write_bytes(good[: len(good) // 2])  # truncated
    assert cached_export(model, "propagation", 64, 64, tmp_path).read_bytes() == good
    other = cached_export(model, "keyframe", 64, 64, tmp_path)
    first.write_bytes(other.read_bytes())  # a graph of another part under this name
    rebuilt = cached_export(model, "propagation", 64, 64, tmp_path)
    assert rebuilt.read_bytes() == good


def test_other_weights_get_another_cache_entry(tmp_path):
    a, b = _model(seed=0), _model(seed=1)
    assert model_fingerprint(a) != model_fingerprint(b)
    assert cached_export(a, "propagation", 64, 64, tmp_path) != cached_export(b, "propagation", 64, 64, tmp_path)


def test_least_recently_used_graphs_are_evicted_beyond_the_limit(tmp_path):
    graphs = []
    for age, name in enumerate("abcd"):
        graph = tmp_path / f"{name}.onnx"
        graph.write_bytes(b"x" * 1000)
        graph.with_suffix(".json").write_text("{}")
        os.utime(graph, (1000 + age, 1000 + age))  # a is the least recently used
        graphs.append(graph)
    removed = prune_cache(tmp_path, 2000, keep=[graphs[0]])
    assert removed == [graphs[1], graphs[2]]  # oldest first, the protected one skipped
    assert [g.exists() for g in graphs] == [True, False, False, True]
    assert not (tmp_path / "b.json").exists() and (tmp_path / "a.json").exists()
    assert prune_cache(tmp_path, 2000) == []  # within the limit: nothing to do


def test_cached_export_evicts_stale_graphs_but_never_the_one_it_returns(tmp_path):
    a, b = _model(seed=0), _model(seed=1)
    old = cached_export(a, "keyframe", 64, 64, tmp_path, max_cache_mb=1)
    assert old.stat().st_size > 2**20  # alone above the limit, and kept: it is the one in use
    new = cached_export(b, "keyframe", 64, 64, tmp_path, max_cache_mb=1)
    assert new.exists() and not old.exists() and not old.with_suffix(".json").exists()
    assert cached_export(b, "keyframe", 64, 64, tmp_path, max_cache_mb=0) == new


def test_auto_picks_onnxruntime_on_cpu():
    cfg = GSVNetConfig()
    cfg = dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, device="cpu"))
    assert choose_backend(cfg) == "onnxruntime"
    cfg = dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, backend="torch"))
    assert build_backend(cfg).name == "torch"


def test_sessions_do_not_busy_wait_between_runs(tmp_path):
    backend = OnnxRuntimeBackend(_model(), threads=2, cache_dir=str(tmp_path))
    options = backend.session("propagation", 64, 64).get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.intra_op_num_threads == 2


_CUDA_AND_CPU = ["CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.mark.parametrize("available, use_cuda, expected", [
    (_CUDA_AND_CPU, True, _CUDA_AND_CPU),
    (_CUDA_AND_CPU, False, ["CPUExecutionProvider"]),
    (["CPUExecutionProvider"], True, ["CPUExecutionProvider"]),  # CPU-only onnxruntime: falls back
])
def test_cuda_provider_only_when_asked_for_and_installed(monkeypatch, tmp_path, available, use_cuda,
                                                         expected):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: available)
    backend = OnnxRuntimeBackend(_model(), use_cuda=use_cuda, cache_dir=str(tmp_path))
    assert backend.providers == expected
    assert expected[0] in backend.describe()


def test_int8_keyframe_graph_is_refused_on_the_cuda_provider(monkeypatch, tmp_path):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: _CUDA_AND_CPU)
    with pytest.raises(ValueError, match="int8 is for the CPU execution provider"):
        OnnxRuntimeBackend(_model(), use_cuda=True, precision="int8", cache_dir=str(tmp_path))


def test_ahead_runs_phi_beside_dis_and_gives_what_propagate_computes(tmp_path, monkeypatch):
    import threading

    torch.manual_seed(0)
    model = build_gsvnet(ModelConfig(flow="dis")).eval()
    backend = OnnxRuntimeBackend(model, threads=2, cache_dir=str(tmp_path))
    frame, prev, logits = torch.rand(1, 3, 8, 12), torch.rand(1, 3, 8, 12), torch.randn(1, 19, 8, 12)
    runs = []
    real_run = backend._run
    monkeypatch.setattr(backend, "_run", lambda part, *args: (runs.append((part, threading.current_thread().name)),
                                                              real_run(part, *args))[1])
    ahead = backend.ahead(frame, prev)
    assert [part for part, _ in runs] == ["intra"] and runs[0][1].startswith("gsvnet-phi")
    with torch.inference_mode():
        expected_intra = model.intra_logits(frame)
    assert torch.allclose(ahead.intra_1_8, expected_intra, atol=1e-4)
    assert torch.equal(backend.propagate(frame, prev, logits, ahead=ahead), backend.propagate(frame, prev, logits))
    runs.clear()
    inline = backend.ahead(frame, prev, overlap=False)  # segment()'s host thread: phi on the caller's thread
    assert runs == [("intra", threading.current_thread().name)]
    assert torch.equal(inline.intra_1_8, ahead.intra_1_8) and torch.equal(inline.flow_1_8, ahead.flow_1_8)


def _overlap_recorder(monkeypatch, target, name):
    """Wrap target.name so that each call lasts at least 50 ms, and count the calls running at once."""
    import threading
    import time

    real = getattr(target, name)
    state = {"now": 0, "most": 0}
    lock = threading.Lock()

    def recording(*args, **kwargs):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        try:
            time.sleep(0.05)
            return real(*args, **kwargs)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(target, name, recording)
    return state


def _at_once(*calls):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return [future.result() for future in [pool.submit(call) for call in calls]]


def test_two_threads_never_export_at_once(monkeypatch, tmp_path):
    """torch.onnx.export keeps module-global state: two backends (two threads) meeting new graphs at the
    same time export one after the other (before: torch's 'GLOBALS.in_onnx_export must be True')."""
    state = _overlap_recorder(monkeypatch, torch.onnx, "export")
    a = OnnxRuntimeBackend(_model(seed=1), threads=1, cache_dir=str(tmp_path / "a"))
    b = OnnxRuntimeBackend(_model(seed=2), threads=1, cache_dir=str(tmp_path / "b"))
    paths = _at_once(lambda: a.graph_path("keyframe", 64, 96), lambda: b.graph_path("propagation", 64, 96))
    assert all(path.is_file() for path in paths)
    assert state["most"] == 1


def test_one_backend_makes_its_sessions_one_at_a_time(monkeypatch, tmp_path):
    """segment()'s host thread and the networks' thread asking for sessions of one size at once: the
    session table stays whole, and a graph both meet is exported once."""
    backend = OnnxRuntimeBackend(_model(), threads=1, cache_dir=str(tmp_path))
    state = _overlap_recorder(monkeypatch, backend, "graph_path")
    sessions = _at_once(lambda: backend.session("keyframe", 64, 96), lambda: backend.session("intra", 64, 96),
                        lambda: backend.session("intra", 64, 96))
    assert state["most"] == 1 and sessions[1] is sessions[2]
    assert set(backend._sessions[(64, 96)]) == {("keyframe", 1), ("intra", 1)}  # (part, threads)
