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


# --- both implementations: the numba kernel (CPU default) and the torch ops (accelerators) -----------

@pytest.mark.parametrize("kernel", ["torch", "compiled"])
@pytest.mark.parametrize("case", ["random", "structured", "ties", "single_class", "one_cell"])
def test_each_kernel_matches_the_reference(kernel, case):
    gen = torch.Generator().manual_seed(11)
    logits = {"random": lambda: torch.randn(19, 23, 41, generator=gen) * 3,
              "structured": lambda: _structured_logits(36, 61, seed=5),
              "ties": lambda: torch.randint(0, 3, (7, 12, 17), generator=gen).float(),
              "single_class": lambda: torch.randn(1, 5, 6, generator=gen),
              "one_cell": lambda: torch.randn(19, 1, 1, generator=gen)}[case]()
    assert torch.equal(LabelUpsampler(kernel)(logits), reference_labels(logits))


def test_the_default_kernel_is_compiled_on_the_cpu_and_unknown_kernels_are_refused():
    assert LabelUpsampler().kernel == "auto"
    with pytest.raises(ValueError, match="kernel must be one of auto, compiled, torch, got 'cuda'"):
        LabelUpsampler("cuda")
    with pytest.raises(ValueError, match="runs on CPU tensors"):
        LabelUpsampler("compiled")(torch.zeros(2, 3, 3, device="meta"))


@pytest.mark.parametrize("kernel", ["torch", "compiled"])
def test_near_tie_pixels_are_recomputed_with_the_reference(kernel):
    """Two classes equal on the left half and one cell a hair apart: pixels there are within the
    tolerance of a tie, so the kernel hands them to the windowed reference; labels stay exact."""
    logits = torch.zeros(4, 6, 8)
    logits[1] = 2.0
    logits[2, :, :4] = 2.0  # exact ties: the reference's argmax takes the first index, 1
    logits[2, 3, 5] = 2.0 + 1e-6  # a near tie
    upsampler = LabelUpsampler(kernel)
    labels = upsampler(logits)
    assert upsampler.last_near_ties > 0
    assert torch.equal(labels, reference_labels(logits))


@pytest.mark.parametrize("kernel", ["torch", "compiled"])
def test_more_than_256_classes_do_not_alias_in_the_corner_test(kernel):
    """Classes 1 and 257 are the same uint8 label; the corner test must still see two classes, so the
    block is interpolated and class 5 wins between them (the reference's labels wrap as uint8 too)."""
    logits = torch.full((300, 2, 4), -10.0)
    logits[5] = 9.0
    logits[1, :, :2] = 10.0
    logits[257, :, 2:] = 10.0
    labels = LabelUpsampler(kernel)(logits)
    assert torch.equal(labels, reference_labels(logits))
    assert (labels == 5).any()


def test_constant_logits_recompute_every_pixel_in_batches():
    """Every class ties everywhere: all 4096 pixels are near ties, recomputed in several batches."""
    from gsvnet_ros import output_stage

    logits = torch.full((3, 8, 8), 0.5)
    upsampler = LabelUpsampler("compiled")
    labels = upsampler(logits)
    assert upsampler.last_near_ties == 64 * 64 > output_stage._CHUNK
    assert torch.equal(labels, reference_labels(logits))


def _logits_with_ties(draw, classes, height, width):
    """Tie-heavy logits on a binary grid: a few integer levels (exact ties everywhere), some channels
    duplicated, some values nudged by 2^-12 (near ties, well inside the tie tolerance), scaled by a power
    of two. Bilinear weights are multiples of 1/256, so the reference's float32 arithmetic is exact on
    these and its labels do not depend on rounding: any difference is the kernel's."""
    from hypothesis import strategies as st

    levels = draw(st.integers(1, 4))
    values = draw(st.lists(st.integers(0, levels), min_size=classes * height * width,
                           max_size=classes * height * width))
    logits = torch.tensor(values, dtype=torch.float32).view(classes, height, width)
    if classes > 1 and draw(st.booleans()):
        logits[draw(st.integers(0, classes - 1))] = logits[draw(st.integers(0, classes - 1))]
    nudges = draw(st.lists(st.tuples(st.integers(0, classes - 1), st.integers(0, height - 1),
                                     st.integers(0, width - 1)), max_size=4))
    for c, y, x in nudges:
        logits[c, y, x] += 2.0 ** -12
    return logits * draw(st.sampled_from([2.0 ** -10, 1.0, 32.0]))


def test_property_both_kernels_equal_the_reference_on_tie_heavy_logits():
    pytest.importorskip("hypothesis")
    from hypothesis import given, settings, strategies as st

    @settings(max_examples=60, deadline=None)
    @given(st.data(), st.integers(1, 20), st.integers(1, 12), st.integers(1, 12))
    def check(data, classes, height, width):
        logits = _logits_with_ties(data.draw, classes, height, width)
        expected = reference_labels(logits)
        for kernel in ("compiled", "torch"):
            assert torch.equal(LabelUpsampler(kernel)(logits), expected), kernel

    check()


def test_without_numba_auto_falls_back_to_the_torch_kernel_with_one_warning(without_numba):
    logits = torch.randn(19, 5, 7, generator=torch.Generator().manual_seed(1))
    with pytest.warns(RuntimeWarning, match="numba is not installed"):
        assert torch.equal(LabelUpsampler()(logits), reference_labels(logits))
