"""Guided spatially-varying convolution: shift kernels, intra net, edge map, guide, unit-gain fusion."""
import pytest
import torch
import torch.nn.functional as F

from gsvnet_ros.models.gsv import (GuidedSpatiallyVaryingConv, GuidingNet, IntraNet, ShiftKernels, edge_map,
                                   ideal_delay_kernels, shift_offsets)


def _shift(x, dy, dx):
    """Reference: out(y, x) = x(y + dy, x + dx), zero outside."""
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    ys, xs = slice(max(0, -dy), min(h, h - dy)), slice(max(0, -dx), min(w, w - dx))
    yt, xt = slice(max(0, dy), min(h, h + dy)), slice(max(0, dx), min(w, w + dx))
    out[..., ys, xs] = x[..., yt, xt]
    return out


def test_offsets_3x3_are_identity_plus_8_neighbours():
    offsets = shift_offsets(3)
    assert len(offsets) == 9 and offsets[0] == (0, 0) and len(set(offsets)) == 9
    assert all(max(abs(dy), abs(dx)) == 1 for dy, dx in offsets[1:])


def test_offsets_5x5_add_the_two_pixel_shifts_along_the_same_directions():
    offsets = shift_offsets(5)
    assert len(offsets) == 17 and len(set(offsets)) == 17
    assert offsets[:9] == shift_offsets(3)
    assert offsets[9:] == [(2 * dy, 2 * dx) for dy, dx in offsets[1:9]]
    with pytest.raises(ValueError, match="3 or 5"):
        shift_offsets(7)


@pytest.mark.parametrize("k", [3, 5])
def test_each_ideal_delay_kernel_is_a_shift_with_zero_fill(k):
    x = torch.randn(2, 4, 7, 9)
    kernels = ideal_delay_kernels(k)
    assert kernels.shape == (len(shift_offsets(k)), 1, k, k)
    assert torch.equal(kernels.sum(dim=(1, 2, 3)), torch.ones(len(kernels)))
    fixed = ShiftKernels(k)(x)
    learned = ShiftKernels(k, learnable=True)(x)
    for d, (dy, dx) in enumerate(shift_offsets(k)):
        ref = _shift(x, dy, dx)
        conv = F.conv2d(x.reshape(-1, 1, 7, 9), kernels[d:d + 1], padding=k // 2).reshape_as(x)
        assert torch.equal(fixed[:, d], ref)
        assert torch.allclose(conv, ref) and torch.allclose(learned[:, d], ref)


@pytest.mark.parametrize("learnable", [False, True])
def test_weighted_sum_matches_the_stacked_candidates(learnable):
    shifts = ShiftKernels(3, learnable)
    x, w = torch.randn(2, 5, 6, 8), torch.rand(2, 9, 6, 8)
    ref = (shifts(x) * w.unsqueeze(2)).sum(dim=1)
    assert torch.allclose(shifts.weighted_sum(x, w), ref, atol=1e-5)


def test_learnable_kernels_are_parameters_fixed_ones_a_non_persistent_buffer():
    learned, fixed = ShiftKernels(3, learnable=True), ShiftKernels(3)
    assert isinstance(learned.kernels, torch.nn.Parameter) and torch.equal(learned.kernels,
                                                                           ideal_delay_kernels(3))
    assert list(fixed.parameters()) == [] and "kernels" not in fixed.state_dict()
    assert "kernels" in learned.state_dict()


def test_intra_and_guide_exact_parameter_counts():
    assert sum(p.numel() for p in IntraNet(19).parameters()) == 15_763
    assert sum(p.numel() for p in GuidingNet(20, 11).parameters()) == 194_241
    assert all(m.bias is not None for m in GuidingNet(20, 11).modules() if isinstance(m, torch.nn.Conv2d))


def test_guide_output_is_non_negative_at_input_size():
    out = GuidingNet(20, 10).eval()(torch.randn(1, 20, 16, 32))
    assert out.shape == (1, 10, 16, 32) and out.min() >= 0


@pytest.mark.parametrize("fusion,k,intra,expected", [
    ("paper", 3, True, 10), ("code", 3, True, 11), ("paper", 5, True, 18), ("code", 5, True, 19),
    ("paper", 3, False, 9), ("code", 3, False, 10)])
def test_number_of_guide_weights(fusion, k, intra, expected):
    gsv = GuidedSpatiallyVaryingConv(19, kernel_size=k, fusion=fusion, use_intra=intra)
    assert gsv.num_weights == expected
    assert gsv.guide.d[0].out_channels == expected
    assert (gsv.intra is not None) == intra


def test_edge_map_binary_and_sigmoid_without_gradient():
    logits = torch.zeros(1, 3, 6, 6, requires_grad=True)
    with torch.no_grad():
        logits[0, 1, :, 3:] = 1.0  # class 1 on the right half, class 0 on the left
    lap = torch.ones(1, 1, 3, 3)
    lap[0, 0, 1, 1] = -8
    binary = edge_map(logits, lap, "binary")
    assert not binary.requires_grad
    assert binary[0, 0, 2:4, 2:4].eq(1).all()  # either side of the class boundary
    assert binary[0, 0, 1:5, 1].eq(0).all()    # flat class-0 interior
    sig = edge_map(logits, lap, "sigmoid")
    assert torch.allclose(sig[0, 0, 1:5, 1], torch.full((4,), 0.5))
    with pytest.raises(ValueError, match="edge mode"):
        edge_map(logits, lap, "canny")


def test_all_weight_on_the_identity_returns_the_warped_input():
    gsv = GuidedSpatiallyVaryingConv(19, fusion="code").eval()
    warped, intra = torch.randn(1, 19, 8, 16), torch.randn(1, 19, 8, 16)
    w = torch.zeros(1, gsv.num_weights, 8, 16)
    w[:, 0] = 1.0
    assert torch.allclose(gsv.fuse(warped, w, intra), warped)
    w = torch.zeros_like(w)
    w[:, -1] = 1.0  # all on f_i
    assert torch.allclose(gsv.fuse(warped, w, intra), intra)
    w = torch.zeros_like(w)
    w[:, 9] = 1.0  # all on the zero map ("code" fusion)
    assert torch.count_nonzero(gsv.fuse(warped, w, intra)) == 0


@pytest.mark.parametrize("fusion", ["paper", "code"])
def test_normalised_weights_have_unit_gain(fusion):
    torch.manual_seed(0)
    gsv = GuidedSpatiallyVaryingConv(19, fusion=fusion).eval()
    warped, frame = torch.randn(1, 19, 8, 16), torch.randn(1, 3, 8, 16)
    with torch.no_grad():
        w = gsv.guide_weights(warped, gsv.intra(frame))
    assert w.min() >= 0
    sums = w.sum(dim=1)
    alive = sums > 0.5  # pixels where the guide is not all zero
    assert alive.any() and torch.allclose(sums[alive], torch.ones_like(sums[alive]), atol=1e-4)
    assert (sums <= 1 + 1e-4).all()
    if fusion == "code":  # the zero map takes part of the gain
        shift_and_intra = w.sum(dim=1) - w[:, 9]
        assert (shift_and_intra <= 1 + 1e-4).all()


@pytest.mark.parametrize("kw", [dict(), dict(fusion="paper", edge="sigmoid"), dict(use_intra=False),
                                dict(kernel_size=5, learnable_kernels=True)])
def test_forward_shapes_and_finite(kw):
    gsv = GuidedSpatiallyVaryingConv(19, **kw)
    out = gsv(torch.randn(2, 19, 8, 12), torch.randn(2, 3, 8, 12))
    assert out.shape == (2, 19, 8, 12) and torch.isfinite(out).all()
    out.sum().backward()
    assert gsv.guide.d[0].weight.grad is not None


def test_invalid_switches_are_rejected():
    with pytest.raises(ValueError, match="fusion"):
        GuidedSpatiallyVaryingConv(19, fusion="both")
    with pytest.raises(ValueError, match="edge"):
        GuidedSpatiallyVaryingConv(19, edge="sobel")


@pytest.mark.parametrize("kernel_size,use_intra,learnable", [(3, True, False), (5, False, False),
                                                             (3, True, True)])
def test_the_in_place_inference_sum_equals_fuse_to_rounding(kernel_size, use_intra, learnable):
    gsv = GuidedSpatiallyVaryingConv(19, kernel_size=kernel_size, use_intra=use_intra,
                                     learnable_kernels=learnable).eval()
    gen = torch.Generator().manual_seed(2)
    warped = torch.randn(1, 19, 12, 20, generator=gen) * 8
    weights = torch.rand(1, gsv.num_weights, 12, 20, generator=gen)
    intra = torch.randn(1, 19, 12, 20, generator=gen) * 8 if use_intra else None
    with torch.inference_mode():
        before = warped.clone()
        expected, got = gsv.fuse(warped, weights, intra), gsv.fuse_inference(warped, weights, intra)
    assert torch.equal(warped, before)  # the inputs are left alone
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5)
    w = torch.zeros_like(weights)
    w[:, 4] = 1.0  # all on one shift: exactly the shifted copy, zero padded
    with torch.inference_mode():
        assert torch.equal(gsv.fuse_inference(warped, w, intra), gsv.fuse(warped, w, intra))
