"""int8 graphs (ONNX Runtime static quantization): agree with fp32 on trained weights, cached."""
from pathlib import Path

import numpy as np
import pytest
import torch

from gsvnet_ros.backends.onnx_export import cached_export
from gsvnet_ros.backends.onnx_quantize import calibration_frames, propagation_calibration_feeds
from gsvnet_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
from gsvnet_ros.config import ModelConfig, load_config
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


def test_unknown_precision_is_refused(trained, tmp_path):
    model, _ = trained
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        cached_export(model, "keyframe", 64, 64, tmp_path, precision="fp16")
    with pytest.raises(ValueError, match="runtime.onnx_propagation_precision must be one of"):
        OnnxRuntimeBackend(model, cache_dir=str(tmp_path), propagation_precision="int4")


@pytest.fixture(scope="module")
def trained_dis():
    """The shipped SwiftNet-R18 DIS pair (config/swiftnet_r18.yaml): the propagation graph takes the
    frame and the logits warped on the host."""
    model = build_gsvnet(load_config(WEIGHTS.parents[1] / "config" / "swiftnet_r18.yaml").model)
    load_weights(model, WEIGHTS, part="keyframe")
    load_weights(model, WEIGHTS.with_name("propagation_swiftnet_r18_dis.pt"), part="propagation")
    return model.eval()


@pytest.mark.parametrize("flow", ["learned", "dis"])
def test_propagation_calibration_feeds_are_the_graph_inputs_after_a_keyframe(flow, trained, trained_dis):
    model = trained[0] if flow == "learned" else trained_dis
    feeds = propagation_calibration_feeds(model, 64, 96, count=2, steps=2)
    names = ["frame_1_8", "prev_frame_1_8", "warped_1_8", "labels_1_8", "intra_1_8"]  # shipped: with phi
    assert len(feeds) == 4 and all(list(feed) == names for feed in feeds)
    assert all(f["frame_1_8"].shape == (1, 3, 8, 12) and f["warped_1_8"].shape == (1, 19, 8, 12)
               and f["intra_1_8"].shape == (1, 19, 8, 12) for f in feeds)
    assert all(np.array_equal(f["labels_1_8"][0, 0], f["warped_1_8"][0].argmax(0)) for f in feeds)
    with torch.inference_mode():  # phi's output on the same frame: what the intra graph gives
        expected = model.intra_logits(torch.from_numpy(feeds[0]["frame_1_8"])).numpy()
    assert np.array_equal(feeds[0]["intra_1_8"], expected)
    assert np.array_equal(feeds[1]["prev_frame_1_8"], feeds[0]["frame_1_8"])  # consecutive frames
    assert not np.array_equal(feeds[0]["warped_1_8"], feeds[1]["warped_1_8"])  # propagated, not the keyframe


def test_int8_propagation_graph_keeps_the_edge_laplacian_fp32_and_agrees_with_fp32(trained_dis, tmp_path):
    import onnx

    fp32 = OnnxRuntimeBackend(trained_dis, threads=2, cache_dir=str(tmp_path))
    int8 = OnnxRuntimeBackend(trained_dis, threads=2, cache_dir=str(tmp_path), precision="int8")
    assert int8.precisions == {"keyframe": "int8", "intra": "int8", "propagation": "int8", "flow": "int8"}
    assert "int8 graphs" in int8.describe()
    intra = onnx.load(str(int8.graph_path("intra", HEIGHT, WIDTH))).graph
    assert [i.name for i in intra.input] == ["frame_1_8"] and [o.name for o in intra.output] == ["intra_1_8"]
    assert sum(n.op_type == "QuantizeLinear" for n in intra.node) >= 3  # phi's three convolutions in int8
    graph = onnx.load(str(int8.graph_path("propagation", HEIGHT, WIDTH))).graph
    assert [i.name for i in graph.input] == ["intra_1_8", "labels_1_8"]  # phi's logits and the warped labels
    weights = {init.name: tuple(init.dims) for init in graph.initializer}
    assert any(n.op_type == "QuantizeLinear" for n in graph.node)
    float_convs = [n for n in graph.node if n.op_type == "Conv" and weights.get(n.input[1]) == (1, 1, 3, 3)]
    assert len(float_convs) == 1  # the Laplacian on the argmax labels: not quantized
    agreement = []
    for index in (3, 7):
        keyframe, frame = _val_frame(index), _val_frame(index + 1)
        logits = fp32.keyframe(keyframe)
        small = [torch.nn.functional.avg_pool2d(f, 8) for f in (frame, keyframe)]
        a, b = fp32.propagate(*small, logits), int8.propagate(*small, logits)
        assert not torch.equal(a, b)  # really another graph
        agreement.append((a.argmax(1) == b.argmax(1)).float().mean().item())
    assert min(agreement) >= 0.97, agreement


def test_each_graph_takes_its_own_precision_and_threads(trained_dis, tmp_path):
    backend = OnnxRuntimeBackend(trained_dis, threads=2, cache_dir=str(tmp_path), precision="int8",
                                 propagation_precision="fp32", propagation_threads=1)
    assert backend.precisions == {"keyframe": "int8", "intra": "fp32", "propagation": "fp32", "flow": "fp32"}
    assert [backend.threads(part) for part in ("keyframe", "intra", "propagation")] == [2, 1, 1]
    assert "_int8_" not in backend.graph_path("propagation", 64, 96).name
    assert "int8 keyframe / fp32 propagation" in backend.describe() and "1 propagation" in backend.describe()


def test_stream_runs_on_the_int8_backend(trained):
    model, cache = trained
    segmenter = VideoSegmenter(OnnxRuntimeBackend(model, threads=2, cache_dir=str(cache), precision="int8"))
    frame = (_val_frame(3)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    first, second = segmenter.step(frame, 0), segmenter.step(frame, 50_000_000)
    assert first.is_keyframe and not second.is_keyframe
    assert first.labels.shape == (HEIGHT, WIDTH) and (first.labels == second.labels).mean() > 0.9


def test_zero_padded_layers_give_the_same_output_with_16_channel_multiples():
    from gsvnet_ros.backends.onnx_export import _zero_padded

    torch.manual_seed(0)
    block = torch.nn.Sequential(torch.nn.Conv2d(32, 11, 3, padding=1), torch.nn.BatchNorm2d(11), torch.nn.ReLU())
    block[1].running_mean.uniform_(-1, 1)
    block[1].running_var.uniform_(0.5, 2)
    block[1].bias.data.uniform_(-1, 1)
    block.eval()
    single = torch.nn.Sequential(torch.nn.Conv2d(32, 19, 3, padding=1)).eval()
    x = torch.randn(1, 32, 8, 12)
    for layers, channels in ((block, 11), (single, 19)):
        padded = _zero_padded(layers)
        assert padded.layers[0].out_channels == 16 * -(-channels // 16)
        with torch.no_grad():
            wide = padded.layers(x)
            # torch's conv kernels may block 16 output channels otherwise than 11: a few ulps
            torch.testing.assert_close(padded(x), layers(x), rtol=1e-6, atol=1e-6)
        assert wide.shape[1] % 16 == 0 and not wide[:, channels:].any()  # the padding is exactly zero
    sixteen = torch.nn.Sequential(torch.nn.Conv2d(32, 16, 3, padding=1))
    assert _zero_padded(sixteen) is sixteen  # nothing to pad


@pytest.mark.parametrize("part", ["intra", "propagation"])
def test_channel_padding_leaves_the_int8_graphs_outputs_bit_identical(part, trained_dis, tmp_path, monkeypatch):
    import onnx
    import onnxruntime as ort

    from gsvnet_ros.backends import onnx_export
    from gsvnet_ros.backends.onnx_quantize import quantize_graph

    height, width = 64, 128
    feeds = propagation_calibration_feeds(trained_dis, height, width, count=1, steps=2)
    outputs = {}
    for pad in (False, True):
        monkeypatch.setattr(onnx_export, "PAD_CHANNELS", pad)
        fp32, int8 = tmp_path / f"{part}_{pad}.onnx", tmp_path / f"{part}_{pad}_int8.onnx"
        onnx_export.export_part(trained_dis, part, height, width, fp32)
        quantize_graph(trained_dis, part, fp32, int8, height, width)
        conv_outputs = sorted(init.dims[0] for init in onnx.load(str(fp32)).graph.initializer
                              if len(init.dims) == 4)
        assert (any(c % 16 for c in conv_outputs if c > 1)) == (not pad)  # 19 / 11 channels unless padded
        for path in (fp32, int8):
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            names = {i.name for i in session.get_inputs()}
            outputs[(pad, path is int8)] = [session.run(None, {k: v for k, v in feed.items() if k in names})[0]
                                            for feed in feeds]
    for quantized in (False, True):
        for a, b in zip(outputs[(False, quantized)], outputs[(True, quantized)]):
            assert a.shape == b.shape and np.array_equal(a, b)
