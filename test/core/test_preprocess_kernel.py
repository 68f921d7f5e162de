"""The compiled 1/8 preprocessing: bit-identical to the float reference, in the stream and without numba."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from gsvnet_ros.models.preprocess import downsample_1_8
from gsvnet_ros.preprocess_kernel import block_means_1_8
from gsvnet_ros.stream import VideoSegmenter


def _reference(frame: np.ndarray) -> np.ndarray:
    """The float path: the whole frame as float32, OpenCV's area resize by 8, / 255."""
    height, width = frame.shape[:2]
    small = cv2.resize(frame.astype(np.float32), (width // 8, height // 8), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(small).permute(2, 0, 1).div_(255.0).numpy()


def _every_block_sum() -> np.ndarray:
    """A frame whose 8x8 blocks take every block sum 0 .. 64 * 255 once, in each channel."""
    sums = np.arange(64 * 255 + 1)
    pixels = np.clip(sums[:, None] - 255 * np.arange(64)[None, :], 0, 255).astype(np.uint8)  # (n, 64)
    assert (pixels.sum(1) == sums).all()
    columns = 128
    rows = -(-len(sums) // columns)
    blocks = np.zeros((rows * columns, 64), np.uint8)
    blocks[:len(sums)] = pixels
    grid = blocks.reshape(rows, columns, 8, 8).transpose(0, 2, 1, 3).reshape(rows * 8, columns * 8)
    return np.ascontiguousarray(np.stack([grid, grid[::-1], grid[:, ::-1]], axis=-1))


@pytest.mark.parametrize("case", ["random", "every_block_sum", "constant", "non_contiguous"])
def test_block_means_are_bit_identical_to_the_float_reference(case):
    rng = np.random.default_rng(3)
    frame = {"random": lambda: rng.integers(0, 256, (96, 136, 3), dtype=np.uint8),
             "every_block_sum": _every_block_sum,
             "constant": lambda: np.full((32, 64, 3), 255, np.uint8),
             "non_contiguous": lambda: rng.integers(0, 256, (64, 160, 3), dtype=np.uint8)[:, 16:144]}[case]()
    result = block_means_1_8(frame)
    assert result.dtype == np.float32 and result.shape == (3, frame.shape[0] // 8, frame.shape[1] // 8)
    assert np.array_equal(result, _reference(frame))
    as_tensor = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float()
    assert np.array_equal(result, downsample_1_8(as_tensor)[0].div_(255.0).numpy())


@pytest.mark.parametrize("shape,dtype", [((30, 64, 3), np.uint8), ((32, 64, 4), np.uint8),
                                         ((32, 64, 3), np.float32), ((32, 64), np.uint8)])
def test_block_means_refuse_what_they_can_not_reduce(shape, dtype):
    with pytest.raises(ValueError, match="expected an \\(H, W, 3\\) uint8 frame with H and W multiples of 8"):
        block_means_1_8(np.zeros(shape, dtype))


@pytest.fixture
def with_numba_prepared():
    frame = np.random.default_rng(4).integers(0, 256, (100, 150, 3), dtype=np.uint8)  # padded to 128 x 160
    return frame, VideoSegmenter.prepare(frame, torch.device("cpu"), full=True)


def test_the_stream_prepares_the_same_tensors_with_and_without_numba(with_numba_prepared, without_numba):
    frame, (full, small) = with_numba_prepared
    with pytest.warns(RuntimeWarning, match="numba is not installed"):
        full_float, small_float = VideoSegmenter.prepare(frame, torch.device("cpu"), full=True)
    assert small.shape == (1, 3, 16, 20) and small.is_contiguous()
    assert torch.equal(small, small_float) and torch.equal(full, full_float)
    padded = cv2.copyMakeBorder(frame, 0, 28, 0, 10, cv2.BORDER_REPLICATE)
    assert torch.equal(small[0], torch.from_numpy(_reference(padded)))
