"""Static int8 quantization of the exported graphs with ONNX Runtime's quantization tools.

Both graphs are convolution-bound (ONNX Runtime profile: ~98 % of the SwiftNet-R18 keyframe graph, 3.1 of
the 4.2 ms of the DIS propagation graph at 1024x512), and on a CPU with VNNI ONNX Runtime runs int8
convolutions 2-3x faster than fp32. We quantize statically (QDQ format, per-channel int8 weights, uint8
activations with MinMax ranges) on calibration inputs rendered by the synthetic generator from
TRAIN-range seeds, so the calibration never sees val/test frames:

- keyframe graph: `CALIBRATION_FRAMES` frames;
- flow, intra and propagation graphs: the inputs they really get in a stream, i.e. `CALIBRATION_FRAMES`
  snippets, each a keyframe segmented by the fp32 torch model and `PROPAGATION_STEPS` frames propagated
  from it (so the logits ranges cover propagated as well as keyframe logits).

Quantized: in the keyframe graph every Conv; phi in the intra graph and G in the propagation graph
(Conv, Resize, Add, Concat, Relu, so activations stay int8 between their convolutions); in the flow
graph the flow net's Conv. What stays fp32: the edge map (its Laplacian on argmax labels is tested
for != 0, which a quantized kernel would break), the weights' normalisation; the warp and Eq. 2's sum
run on the host.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

if TYPE_CHECKING:
    from ..models.gsvnet import GSVNet

__all__ = ["CALIBRATION_FRAMES", "PROPAGATION_STEPS", "int8_recipe", "calibration_frames",
           "propagation_calibration_feeds", "quantize_graph"]

CALIBRATION_FRAMES = 8
PROPAGATION_STEPS = 3  # propagated frames per calibration snippet (propagation graph)
_CALIBRATION_FIRST_SEQUENCE = 90000  # train-split sequence indices 90000.. (seed = train base + index)
_RENDER_SIZE = (1024, 512)  # frames are rendered at the generator's default size, then resized
_RECIPE = (f"qdq-per-channel-s8w-u8a-minmax-conv|frames={CALIBRATION_FRAMES}|"
           f"first={_CALIBRATION_FIRST_SEQUENCE}|render={_RENDER_SIZE[0]}x{_RENDER_SIZE[1]}")


def int8_recipe(part: str) -> str:
    """Part of the cache key of an int8 graph: a change of recipe rebuilds the cached graphs."""
    if part == "keyframe":
        return _RECIPE
    return (f"{_RECIPE}|propagation-steps={PROPAGATION_STEPS}|ops={','.join(_PROPAGATION_OPS)}"
            f"|in={','.join(_PROPAGATION_NETS)}|no-single-channel-groups")


def _render(index: int, height: int, width: int, frame_count: int) -> list[np.ndarray]:
    """Frames 1 .. frame_count of train-range calibration snippet `index`, (1, 3, H, W) float32 in [0, 1]."""
    from ..data.synth.render import build_scene, render_frame
    from ..data.synth.writer import sequence_seed

    scene = build_scene(sequence_seed("train", _CALIBRATION_FIRST_SEQUENCE + index), *_RENDER_SIZE,
                        frame_count + 1)
    frames = []
    for step in range(1, frame_count + 1):
        image = render_frame(scene, step).image
        if image.shape[:2] != (height, width):
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        frames.append(np.ascontiguousarray(image.astype(np.float32).transpose(2, 0, 1)[None] / 255.0))
    return frames


def calibration_frames(height: int, width: int, count: int = CALIBRATION_FRAMES) -> list[np.ndarray]:
    """`count` synthetic driving frames as (1, 3, height, width) float32 RGB in [0, 1]."""
    return [_render(i, height, width, 1)[0] for i in range(count)]


def propagation_calibration_feeds(model: "GSVNet", height: int, width: int, count: int = CALIBRATION_FRAMES,
                                  steps: int = PROPAGATION_STEPS) -> list[dict[str, np.ndarray]]:
    """The inputs of the flow, intra and correction graphs (frame_1_8, prev_frame_1_8, warped_1_8 and its
    labels_1_8, and, with phi, intra_1_8) for `steps` frames after a keyframe in each of `count`
    train-range snippets, computed with the fp32 torch model and the configured flow (each graph takes the
    inputs it has)."""
    from ..models.dis_flow import dis_flow_1_8
    from ..models.preprocess import downsample_1_8, normalize

    model = model.eval()
    feeds = []
    with torch.inference_mode():
        for index in range(count):
            frames = [torch.from_numpy(f) for f in _render(index, height, width, steps + 1)]
            logits = model.keyframe_forward(frames[0])
            previous = downsample_1_8(frames[0])
            for frame in frames[1:]:
                current = downsample_1_8(frame)
                if model.cfg.flow == "dis":
                    flow = dis_flow_1_8(current, previous, model.cfg.dis_preset, model.cfg.dis_finest_scale)
                else:
                    flow = model.flow(normalize(current), normalize(previous))
                warped = model.warp(logits, flow)
                feed = {"frame_1_8": current.numpy(), "prev_frame_1_8": previous.numpy(),
                        "warped_1_8": warped.numpy(),
                        # torch's argmax: the labels onnxruntime_backend.warped_labels gives (tested), without
                        # importing that module (it imports this one through onnx_export: a cycle)
                        "labels_1_8": warped.argmax(1, keepdim=True).float().numpy()}
                intra = model.intra_logits(current)
                if intra is not None:
                    feed["intra_1_8"] = intra.numpy()
                feeds.append(feed)
                logits = model.correct_warped(current, warped)
                previous = current
    return feeds


_PROPAGATION_OPS = ["Conv", "Resize", "Add", "Concat", "Relu"]
_PROPAGATION_NETS = ("/intra/", "/guide/")  # phi and G, by the exporter's node names (module scopes)


def _propagation_nodes(graph_path: Path) -> list[str]:
    """The nodes of phi and G (every op of `_PROPAGATION_OPS` there, so their activations stay int8
    between convolutions), and the flow net's convolutions; no Conv whose weights are (M, 1, k, k):
    one input channel per group, i.e. the Laplacian on labels or learnable shift kernels."""
    import onnx

    graph = onnx.load(str(graph_path)).graph
    shapes = {init.name: tuple(init.dims) for init in graph.initializer}
    chosen = []
    for node in graph.node:
        weights = shapes.get(node.input[1], ()) if node.op_type == "Conv" and len(node.input) > 1 else ()
        if len(weights) == 4 and weights[1] == 1:
            continue
        if any(net in node.name for net in _PROPAGATION_NETS) or (node.op_type == "Conv" and
                                                                   "/flow_net/" in node.name):
            chosen.append(node.name)
    return chosen


def quantize_graph(model: "GSVNet", part: str, fp32_path: Path, out_path: Path, height: int, width: int
                   ) -> None:
    """Write the int8 (QDQ) version of the fp32 graph of `part` at `fp32_path` to `out_path`, atomically."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    inputs = {i.name for i in onnx.load(str(fp32_path)).graph.input}  # the exporter drops unused ones
    if part == "keyframe":
        samples = [{"frame": frame} for frame in calibration_frames(height, width)]
    else:
        samples = [{name: value for name, value in feed.items() if name in inputs}
                   for feed in propagation_calibration_feeds(model, height, width)]

    class Reader(CalibrationDataReader):
        """The calibration feeds, one at a time."""

        def __init__(self) -> None:
            self._feeds = iter(samples)

        def get_next(self):
            return next(self._feeds, None)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".quantize-") as work:
        prepared, quantized = Path(work) / "prepared.onnx", Path(work) / "int8.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        which = ({"op_types_to_quantize": ["Conv"]} if part == "keyframe" else
                 {"op_types_to_quantize": _PROPAGATION_OPS, "nodes_to_quantize": _propagation_nodes(prepared)})
        quantize_static(str(prepared), str(quantized), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, **which)
        os.replace(quantized, out_path)
