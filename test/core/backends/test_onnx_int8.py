"""int8 keyframe graph (ONNX Runtime static quantization): agrees with fp32 on trained weights, cached."""
from pathlib import Path

import numpy as np
import pytest
import torch

from gsvnet_ros.backends.onnx_export import cached_export
from gsvnet_ros.backends.onnx_quantize import calibration_frames
from gsvnet_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
from gsvnet_ros.config import ModelConfig
from gsvnet_ros.data.synth.render import build_scene, render_frame
from gsvnet_ros.data.synth.writer import sequence_seed
from gsvnet_ros.models.gsvnet import build_gsvnet
from gsvnet_ros.models.weights import load_weights
from gsvnet_ros.stream import VideoSegmenter

pytest.importorskip("onnxruntime")

WEIGHTS = Path(__file__).resolve().parents[3] / "models" / "keyframe_swiftnet_r18.pt"
# Its trained propagation pair: with random propagation weights the propagated frame's agreement
# with the keyframe depended on the global RNG state, i.e. on which tests had run before.
PROPAGATION = WEIGHTS.with_name("propagation_swiftnet_r18.pt")
HEIGHT, WIDTH = 256, 512


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    if not WEIGHTS.is_file():
        pytest.fail(f"shipped weights missing: {WEIGHTS}")
    model = build_gsvnet(ModelConfig())
    load_weights(model, WEIGHTS, part="keyframe")
    load_weights(model, PROPAGATION, part="propagation")
    return model.eval(), tmp_path_factory.mktemp("onnx")


def _val_frame(index: int) -> torch.Tensor:
    """A synthetic frame from the VAL seed range (the calibration uses train seeds)."""
    import cv2

    image = render_frame(build_scene(sequence_seed("val", index), 1024, 512, 20), 19).image
    image = cv2.resize(image, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0


def test_calibration_frames_have_the_graph_size_and_range():
    frames = calibration_frames(64, 96, count=2)
    assert len(frames) == 2 and all(f.shape == (1, 3, 64, 96) and f.dtype == np.float32 for f in frames)
    assert all(0.0 <= f.min() and f.max() <= 1.0 for f in frames)
    assert not np.array_equal(frames[0], frames[1])


def test_int8_keyframe_labels_agree_with_fp32_on_trained_weights(trained):
    model, cache = trained
    fp32 = OnnxRuntimeBackend(model, threads=2, cache_dir=str(cache))
    int8 = OnnxRuntimeBackend(model, threads=2, cache_dir=str(cache), precision="int8")
    agreement = []
    for index in (3, 7):
        frame = _val_frame(index)
        a, b = fp32.keyframe(frame), int8.keyframe(frame)
        assert a.shape == b.shape == (1, 19, HEIGHT // 8, WIDTH // 8)
        assert not torch.equal(a, b)  # really another graph
        agreement.append((a.argmax(1) == b.argmax(1)).float().mean().item())
    assert min(agreement) >= 0.97, agreement
    assert "int8" in int8.describe()


def test_int8_graph_is_cached_separately_and_rebuilt_when_corrupt(trained):
    model, cache = trained
    fp32_path = cached_export(model, "keyframe", HEIGHT, WIDTH, cache)
    int8_path = cached_export(model, "keyframe", HEIGHT, WIDTH, cache, precision="int8")
    assert int8_path != fp32_path and "_int8_" in int8_path.name
    stamp = int8_path.with_suffix(".json").stat().st_mtime_ns  # the sidecar is written on export only
    assert cached_export(model, "keyframe", HEIGHT, WIDTH, cache, precision="int8") == int8_path
    assert int8_path.with_suffix(".json").stat().st_mtime_ns == stamp  # reused
    int8_path.write_bytes(fp32_path.read_bytes())  # the fp32 graph under the int8 name
    rebuilt = cached_export(model, "keyframe", HEIGHT, WIDTH, cache, precision="int8")
    assert rebuilt.read_bytes() != fp32_path.read_bytes()


def test_int8_applies_to_the_keyframe_graph_only(trained, tmp_path):
    model, _ = trained
    with pytest.raises(ValueError, match="keyframe graph only"):
        cached_export(model, "propagation", 64, 64, tmp_path, precision="int8")
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        cached_export(model, "keyframe", 64, 64, tmp_path, precision="fp16")


def test_stream_runs_on_the_int8_backend(trained):
    model, cache = trained
    segmenter = VideoSegmenter(OnnxRuntimeBackend(model, threads=2, cache_dir=str(cache), precision="int8"))
    frame = (_val_frame(3)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    first, second = segmenter.step(frame, 0), segmenter.step(frame, 50_000_000)
    assert first.is_keyframe and not second.is_keyframe
    assert first.labels.shape == (HEIGHT, WIDTH) and (first.labels == second.labels).mean() > 0.9
