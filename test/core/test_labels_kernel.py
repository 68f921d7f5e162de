"""labels_kernel.channel_argmax: the edge map's labels on the host equal torch's argmax (first class on
ties), so the correction graph's edge map is the one the torch model makes."""
import numpy as np
import pytest
import torch

from gsvnet_ros.backends.onnxruntime_backend import warped_labels
from gsvnet_ros.labels_kernel import channel_argmax


def _torch_labels(logits: np.ndarray) -> np.ndarray:
    return torch.from_numpy(logits).argmax(1, keepdim=True).float().numpy()


@pytest.mark.parametrize("make", [
    lambda rng: rng.standard_normal((1, 19, 64, 128)).astype(np.float32),
    lambda rng: rng.integers(-2, 3, (1, 19, 16, 24)).astype(np.float32),  # ties everywhere
    lambda rng: np.zeros((1, 5, 3, 4), np.float32),  # all classes tie: class 0
    lambda rng: rng.standard_normal((1, 1, 7, 9)).astype(np.float32),  # one class
    lambda rng: rng.standard_normal((1, 19, 20, 30)).astype(np.float32)[:, :, ::2, 1::3],  # strided
])
def test_channel_argmax_equals_torch_argmax(make):
    logits = make(np.random.default_rng(0))
    labels = channel_argmax(logits)
    assert labels.dtype == np.float32 and labels.shape == (1, 1, *logits.shape[-2:])
    assert np.array_equal(labels, _torch_labels(np.ascontiguousarray(logits)))


def test_warped_labels_with_and_without_numba(without_numba):
    logits = torch.from_numpy(np.random.default_rng(1).integers(-3, 4, (1, 19, 12, 16)).astype(np.float32))
    with pytest.warns(RuntimeWarning, match="numba is not installed"):  # so torch's argmax runs
        fallback = warped_labels(logits)
    assert torch.equal(fallback, logits.argmax(1, keepdim=True).float())


def test_warped_labels_compiled():
    logits = torch.from_numpy(np.random.default_rng(2).integers(-3, 4, (1, 19, 12, 16)).astype(np.float32))
    assert torch.equal(warped_labels(logits), logits.argmax(1, keepdim=True).float())
