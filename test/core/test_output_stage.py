"""The fast output stage gives exactly the labels of full bilinear ×8 upsampling + argmax."""
import pytest
import torch
import torch.nn.functional as F

from gsvnet_ros.output_stage import LabelUpsampler, reference_labels


def _structured_logits(h: int, w: int, classes: int = 19, seed: int = 0) -> torch.Tensor:
    """Piecewise-constant regions (as a segmentation net gives) with mild noise, smoothed."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    regions = (xx // 9 + 3 * (yy // 7) + (xx * yy) // 97) % classes
    logits = F.one_hot(regions, classes).permute(2, 0, 1).float() * 4
    logits += 0.7 * torch.randn(classes, h, w, generator=gen)
    return F.avg_pool2d(logits[None], 3, 1, 1, count_include_pad=False)[0]


@pytest.mark.parametrize("size", [(64, 128), (23, 41), (5, 7), (1, 1), (2, 3), (92, 160)])
def test_random_logits_match_reference(size):
    logits = torch.randn(19, *size, generator=torch.Generator().manual_seed(sum(size))) * 3
    labels = LabelUpsampler()(logits)
    assert labels.dtype == torch.uint8
    assert labels.shape == (8 * size[0], 8 * size[1])
    assert torch.equal(labels, reference_labels(logits))


@pytest.mark.parametrize("size", [(64, 128), (36, 61), (12, 20)])
def test_structured_logits_match_reference(size):
    logits = _structured_logits(*size)
    assert torch.equal(LabelUpsampler()(logits), reference_labels(logits))


def test_exact_ties_follow_reference_argmax():
    logits = torch.zeros(19, 16, 24)
    logits[3] = 1.0
    logits[5, :, :10] = 1.0  # class 5 ties with class 3 on the left part
    logits[7, 4:9, 12:20] = 1.0 + 1e-7  # a near-tie inside float32 rounding
    assert torch.equal(LabelUpsampler()(logits), reference_labels(logits))


def test_a_few_near_ties_use_the_windowed_reference():
    logits = _structured_logits(20, 30, seed=3)
    runner_up = logits.topk(2, dim=0)
    # Make a handful of low-res cells almost tie between their two best classes.
    for y, x in [(3, 4), (10, 17), (19, 29), (0, 0)]:
        logits[runner_up.indices[1, y, x], y, x] = runner_up.values[0, y, x] - 1e-7
    assert torch.equal(LabelUpsampler()(logits), reference_labels(logits))


def test_single_class_and_batched_input():
    one = torch.randn(1, 1, 6, 9)
    assert LabelUpsampler()(one).eq(0).all()
    logits = torch.randn(1, 19, 6, 9)
    assert torch.equal(LabelUpsampler()(logits), reference_labels(logits[0]))


def test_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"\(C, h, w\)"):
        LabelUpsampler()(torch.zeros(19, 4))


@pytest.mark.parametrize("size", [(9, 13), (1, 5), (4, 1), (2, 2)])
def test_windowed_exact_pixels_equal_reference_everywhere(size):
    """The near-tie path (a 2×2-cell window per pixel) reproduces the full reference bit for bit."""
    from gsvnet_ros.output_stage import exact_pixel_labels

    logits = torch.randn(19, *size, generator=torch.Generator().manual_seed(7))
    ys, xs = torch.meshgrid(torch.arange(8 * size[0]), torch.arange(8 * size[1]), indexing="ij")
    labels = exact_pixel_labels(logits, ys.flatten(), xs.flatten()).view(8 * size[0], 8 * size[1])
    assert torch.equal(labels.to(torch.uint8), reference_labels(logits))


def test_a_class_that_wins_no_corner_can_still_win_inside_a_block():
    """Pruning keeps every class that can win: here class 5 wins between corners won by 1 and 2."""
    logits = torch.full((19, 2, 4), -10.0)
    logits[5] = 9.0  # second everywhere
    logits[1, :, :2] = 10.0  # left corners
    logits[2, :, 2:] = 10.0  # right corners
    labels = LabelUpsampler()(logits)
    assert torch.equal(labels, reference_labels(logits))
    assert (labels == 5).any() and set(labels.unique().tolist()) == {1, 2, 5}
