"""fusion_kernel.fuse_on_host: Eq. 2's weighted sum on the host equals the torch module's, for every kernel
size, candidate list and frame size, down to a single pixel (the shifts leave the frame on every side)."""
import pytest
import torch

from gsvnet_ros.backends.onnxruntime_backend import fused
from gsvnet_ros.fusion_kernel import fuse_on_host
from gsvnet_ros.models.gsv import GuidedSpatiallyVaryingConv


def _inputs(gsv, height, width, seed=0):
    generator = torch.Generator().manual_seed(seed)
    warped = 5 * torch.randn(1, 19, height, width, generator=generator)
    weights = torch.rand(1, gsv.num_weights, height, width, generator=generator)
    intra = 5 * torch.randn(1, 19, height, width, generator=generator) if gsv.use_intra else None
    return warped, weights, intra


@pytest.mark.parametrize("kernel_size", [3, 5])
@pytest.mark.parametrize("fusion,use_intra", [("code", True), ("paper", True), ("code", False)])
@pytest.mark.parametrize("size", [(64, 128), (1, 1), (2, 3), (5, 2), (7, 9)])
def test_fuse_on_host_equals_the_torch_sum(kernel_size, fusion, use_intra, size):
    gsv = GuidedSpatiallyVaryingConv(19, kernel_size=kernel_size, fusion=fusion, use_intra=use_intra).eval()
    warped, weights, intra = _inputs(gsv, *size)
    with torch.inference_mode():
        expected = gsv.fuse(warped, weights, intra)
        in_place = gsv.fuse_inference(warped, weights.clone(), intra)
        got = fuse_on_host(warped, weights.clone(), intra, gsv.shifts.offsets)
    assert got.shape == expected.shape and got.dtype == torch.float32
    # the same products summed in the same order; only fused multiply-adds may round otherwise
    torch.testing.assert_close(got, in_place, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-5)


def test_a_shift_never_reads_across_a_row_edge():
    """Huge values in the first and last columns: a run that read them for a pixel of the neighbouring
    row without a zero weight would be off by ~1e6."""
    gsv = GuidedSpatiallyVaryingConv(19, kernel_size=5).eval()
    warped, weights, intra = _inputs(gsv, 6, 7, seed=3)
    warped[..., 0] += 1e6
    warped[..., -1] -= 1e6
    with torch.inference_mode():
        expected = gsv.fuse(warped, weights, intra)
        got = fuse_on_host(warped, weights.clone(), intra, gsv.shifts.offsets)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0.5)  # float32 at 1e6: ulp 0.06


def test_the_first_shift_must_be_the_identity():
    gsv = GuidedSpatiallyVaryingConv(19).eval()
    warped, weights, intra = _inputs(gsv, 4, 4)
    with pytest.raises(ValueError, match="identity"):
        fuse_on_host(warped, weights, intra, list(reversed(gsv.shifts.offsets)))


def test_fused_without_numba_runs_the_torch_sum(without_numba):
    gsv = GuidedSpatiallyVaryingConv(19).eval()
    warped, weights, intra = _inputs(gsv, 8, 12, seed=4)
    with torch.inference_mode(), pytest.warns(RuntimeWarning, match="numba is not installed"):
        got = fused(gsv, warped, weights.clone(), intra)
    assert torch.equal(got, gsv.fuse_inference(warped, weights.clone(), intra))


def test_fused_with_learnable_kernels_runs_the_torch_sum(monkeypatch):
    from gsvnet_ros import fusion_kernel

    monkeypatch.setattr(fusion_kernel, "fuse_on_host", None)  # would fail if called
    gsv = GuidedSpatiallyVaryingConv(19, learnable_kernels=True).eval()
    warped, weights, intra = _inputs(gsv, 8, 12, seed=6)
    with torch.inference_mode():
        assert torch.equal(fused(gsv, warped, weights.clone(), intra), gsv.fuse(warped, weights, intra))


def test_fused_with_numba_runs_the_kernel(monkeypatch):
    gsv = GuidedSpatiallyVaryingConv(19).eval()
    warped, weights, intra = _inputs(gsv, 8, 12, seed=5)
    calls = []
    from gsvnet_ros import fusion_kernel

    real = fusion_kernel.fuse_on_host
    monkeypatch.setattr(fusion_kernel, "fuse_on_host", lambda *a: calls.append(1) or real(*a))
    with torch.inference_mode():
        got = fused(gsv, warped, weights.clone(), intra)
    assert calls == [1]
    torch.testing.assert_close(got, gsv.fuse(warped, weights, intra), rtol=1e-6, atol=1e-5)
