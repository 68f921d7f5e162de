"""Static int8 quantization of the exported keyframe graph with ONNX Runtime's quantization tools.

The keyframe network is ~98 % convolutions (ONNX Runtime profile of the SwiftNet-R18 graph), and on
a CPU with VNNI ONNX Runtime runs int8 convolutions faster than fp32: the SwiftNet-R18 keyframe step
went from 138.5 to 60.0 ms on the 2-core dev CPU (gsvnet-bench, 1024x512, 2 threads, round-4
weights). We quantize statically (QDQ format, per-channel int8 weights, uint8 activations with
MinMax ranges) on calibration frames rendered by the synthetic generator from TRAIN-range seeds, so
the calibration never sees val/test frames. The propagation graph stays fp32: it is small, and its
flow + grid_sample + fusion are precision-sensitive.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

__all__ = ["CALIBRATION_FRAMES", "INT8_RECIPE", "calibration_frames", "quantize_keyframe_graph"]

CALIBRATION_FRAMES = 8
_CALIBRATION_FIRST_SEQUENCE = 90000  # train-split sequence indices 90000.. (seed = train base + index)
_RENDER_SIZE = (1024, 512)  # frames are rendered at the generator's default size, then resized
# Part of the cache key of an int8 graph: a change of recipe rebuilds the cached graphs.
INT8_RECIPE = (f"qdq-per-channel-s8w-u8a-minmax-conv|frames={CALIBRATION_FRAMES}|"
               f"first={_CALIBRATION_FIRST_SEQUENCE}|render={_RENDER_SIZE[0]}x{_RENDER_SIZE[1]}")


def calibration_frames(height: int, width: int, count: int = CALIBRATION_FRAMES) -> list[np.ndarray]:
    """`count` synthetic driving frames as (1, 3, height, width) float32 RGB in [0, 1]."""
    from ..data.synth.render import build_scene, render_frame
    from ..data.synth.writer import sequence_seed

    frames = []
    for i in range(count):
        scene = build_scene(sequence_seed("train", _CALIBRATION_FIRST_SEQUENCE + i), *_RENDER_SIZE, 2)
        image = render_frame(scene, 1).image
        if image.shape[:2] != (height, width):
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        frames.append(np.ascontiguousarray(image.astype(np.float32).transpose(2, 0, 1)[None] / 255.0))
    return frames


def quantize_keyframe_graph(fp32_path: Path, out_path: Path, height: int, width: int) -> None:
    """Write the int8 (QDQ) version of the fp32 keyframe graph at `fp32_path` to `out_path`, atomically."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class FrameReader(CalibrationDataReader):
        """The calibration frames, one feed {'frame': (1, 3, H, W)} at a time."""

        def __init__(self) -> None:
            self._frames = iter(calibration_frames(height, width))

        def get_next(self):
            frame = next(self._frames, None)
            return None if frame is None else {"frame": frame}

    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".quantize-") as work:
        prepared, quantized = Path(work) / "prepared.onnx", Path(work) / "int8.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(quantized), FrameReader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["Conv"], calibrate_method=CalibrationMethod.MinMax)
        os.replace(quantized, out_path)
