"""The CUDA paths on a real GPU, each against the CPU: preprocessing, the torch backend in fp32 and fp16,
the output stage's torch kernel, segment() and GPU memory over a long stream.

Marker `cuda`: left out of `make test`; `make test-cuda` runs them (they skip, with the reason, where torch
sees no CUDA device). Shipped weights, 1024x512 synthetic driving frames, DIS flow (config/swiftnet_r18.yaml).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gsvnet_ros.backends import build_backend
from gsvnet_ros.config import load_config
from gsvnet_ros.evaluation.bench import driving_frames
from gsvnet_ros.output_stage import LabelUpsampler, reference_labels
from gsvnet_ros.stream import VideoSegmenter

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch sees none)")]

CONFIG = Path(__file__).resolve().parents[2] / "config" / "swiftnet_r18.yaml"
MS = 1_000_000
INTERVAL = 4
FRAMES = 9  # keyframes at 0, 4, 8


def _segmenter(device: str, half: bool = False) -> VideoSegmenter:
    cfg = load_config(CONFIG, {"runtime": {"device": device, "backend": "torch", "half": half},
                               "stream": {"keyframe_interval": INTERVAL}})
    return VideoSegmenter.from_config(cfg)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return driving_frames(FRAMES, 512, 1024)


@pytest.fixture(scope="module")
def on_cpu(frames):
    """The reference: the torch backend on the CPU, fp32; results and 1/8 logits of every frame."""
    segmenter = _segmenter("cpu")
    results, logits = [], []
    for index, frame in enumerate(frames):
        results.append(segmenter.step(frame, index * 50 * MS))
        logits.append(segmenter.last_logits_1_8.clone())
    return results, logits


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a == b).mean())


def test_preprocessing_on_cuda_matches_the_host(frames):
    for frame in (frames[0], frames[1][:500, :1000]):  # also a size that is padded
        full_cpu, small_cpu = VideoSegmenter.prepare(frame, torch.device("cpu"), True)
        full_gpu, small_gpu = VideoSegmenter.prepare(frame, torch.device("cuda"), True)
        assert full_gpu.is_cuda and small_gpu.is_cuda
        # CUDA divides by the scalar 255 as a multiplication by its reciprocal: within one ulp of the host
        torch.testing.assert_close(full_gpu.cpu(), full_cpu, rtol=0, atol=1.2e-7)
        torch.testing.assert_close(small_gpu.cpu(), small_cpu, rtol=0, atol=1e-6)


@pytest.mark.parametrize("half, min_agreement", [(False, 0.995), (True, 0.98)])
def test_torch_backend_on_cuda_matches_the_cpu_frame_by_frame(frames, on_cpu, half, min_agreement):
    """Same keyframes, and labels that agree with the CPU's on nearly every pixel of every frame (TF32
    convolutions, fp16 with half: true, and DIS on grey levels that may round differently)."""
    cpu_results, cpu_logits = on_cpu
    segmenter = _segmenter("cuda", half)
    assert segmenter.backend.device.type == "cuda"
    agreements = []
    for index, frame in enumerate(frames):
        result = segmenter.step(frame, index * 50 * MS)
        expected = cpu_results[index]
        assert (result.is_keyframe, result.keyframe_reason) == (expected.is_keyframe, expected.keyframe_reason)
        assert result.labels.shape == expected.labels.shape and result.labels.dtype == np.uint8
        logits = segmenter.last_logits_1_8
        assert logits.is_cuda and logits.dtype == torch.float32 and bool(torch.isfinite(logits).all())
        agreements.append(_agreement(result.labels, expected.labels))
    print(f"half={half}: per-frame label agreement with the CPU {[round(a, 5) for a in agreements]}")
    assert min(agreements) >= min_agreement


def test_output_stage_on_cuda(on_cpu):
    """On trained logits: "auto" on the GPU is the reference itself; the torch kernel on the GPU against
    the full bilinear x8 + argmax on the GPU and the compiled kernel on the CPU. The exactness proof holds
    for the CPU's interpolation loop; on the GPU only pixels whose two best classes tie to rounding may
    differ."""
    _, cpu_logits = on_cpu
    for logits in (cpu_logits[0][0], cpu_logits[3][0]):  # a keyframe, a third propagated frame
        assert torch.equal(LabelUpsampler()(logits.cuda()), reference_labels(logits.cuda()))  # auto on a GPU
        on_gpu = LabelUpsampler("torch")(logits.cuda())
        assert on_gpu.is_cuda and on_gpu.dtype == torch.uint8
        reference = reference_labels(logits.cuda())
        compiled = LabelUpsampler("compiled")(logits)
        gpu, ref, host = on_gpu.cpu().numpy(), reference.cpu().numpy(), compiled.numpy()
        print(f"pixels differing: from the GPU reference {int((gpu != ref).sum())}, "
              f"from the CPU compiled kernel {int((gpu != host).sum())} of {gpu.size}")
        assert (gpu != ref).sum() <= 1e-5 * gpu.size
        assert (gpu != host).sum() <= 1e-5 * gpu.size


def test_segment_on_cuda_gives_step_results(frames):
    """The pipelined stream on the GPU: its host thread uploads and downsamples frames on the device
    while the caller's thread runs the networks; results equal step()'s."""
    items = [(frame, index * 50 * MS) for index, frame in enumerate(frames)]
    stepper = _segmenter("cuda")
    stepped = [stepper.step(*item).labels for item in items]
    pipelined = [result.labels for result in _segmenter("cuda").segment(items)]
    assert len(pipelined) == len(stepped)
    for a, b in zip(pipelined, stepped):
        assert _agreement(a, b) >= 0.9999


def test_gpu_memory_stays_bounded_over_a_long_stream_with_size_changes(frames):
    segmenter = _segmenter("cuda")
    sizes = [frames[0], frames[1][:384, :768]]
    stamp = 0

    def run(count: int) -> None:
        nonlocal stamp
        for index in range(count):
            segmenter.step(sizes[(index // 10) % 2], stamp)
            stamp += 50 * MS

    run(40)
    torch.cuda.synchronize()
    warm = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    run(200)
    torch.cuda.synchronize()
    after, peak = torch.cuda.memory_allocated(), torch.cuda.max_memory_allocated()
    print(f"GPU memory: {warm / 2**20:.1f} MiB after warm-up, {after / 2**20:.1f} MiB after 200 more "
          f"frames, peak {peak / 2**20:.1f} MiB")
    assert after <= warm + 2**20  # nothing accumulates from frame to frame
    assert peak < 2 * 2**30


def test_device_auto_picks_the_gpu_and_the_torch_backend():
    cfg = load_config(CONFIG)
    assert cfg.runtime.device == "auto"
    backend = build_backend(cfg)
    assert backend.name == "torch" and backend.device.type == "cuda"
