"""Training data: snippet index on the Cityscapes layout, aligned scale/crop/flip, 1/8 clip batches."""
import numpy as np
import pytest
import torch

from gsvnet_ros.data.errors import DatasetLayoutError
from gsvnet_ros.training.clips import SnippetClips, plan_positions, sample_clip_batch
from gsvnet_ros.training.data import color_jitter, index_split, random_scale_crop, resolve_label_source

from training_helpers import write_fake_cityscapes


def test_index_finds_frames_annotated_frame_and_dense_labels(fake_root):
    snippets = index_split(fake_root, "train")
    assert [s.name for s in snippets] == ["fakecity_000000", "fakecity_000001"]
    assert len(snippets[0].frame_paths) == 6 and snippets[0].annotated_index == 5
    assert snippets[0].has_dense_labels and resolve_label_source(snippets, "auto") == "dense"


def test_annotated_only_data_uses_the_frames_before_the_gtfine_frame(tmp_path):
    root = write_fake_cityscapes(tmp_path, {"train": 1}, frames=5, annotated=3, dense=False)
    (snippet,) = index_split(root, "train")
    assert len(snippet.frame_paths) == 4 and snippet.annotated_index == 3
    assert resolve_label_source([snippet], "auto") == "annotated"
    with pytest.raises(DatasetLayoutError, match="no gtFine_sequence labels"):
        resolve_label_source([snippet], "dense")


def test_missing_split_names_the_expected_folder(fake_root):
    with pytest.raises(DatasetLayoutError, match="gtFine/test"):
        index_split(fake_root, "test")


def test_scale_crop_flip_keeps_image_and_label_aligned():
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 19, (8, 12)).astype(np.uint8)
    label = np.kron(blocks, np.ones((8, 8), np.uint8))  # 64x96 of 8x8 blocks
    image = np.repeat(label[:, :, None] * 10, 3, axis=2).astype(np.uint8)
    for flip in (False, True):
        for scale in (0.5, 0.75, 1.0, 1.5):
            out_img, out_lab = random_scale_crop(image, label, scale, (32, 32), flip, rng)
            # nearest label vs bilinear image: equal everywhere when shrinking (8x8 blocks start on even
            # pixels), away from block borders when enlarging; a one-pixel shift would give ~86 %
            agree = (out_img[..., 0] == out_lab * 10)[out_lab != 255].mean()
            assert agree == 1.0 if scale <= 1 else agree > 0.6, (flip, scale, agree)
    out_img, out_lab = random_scale_crop(image, label, 1.0, (64, 96), True, rng)
    assert np.array_equal(out_lab, label[:, ::-1]) and np.array_equal(out_img, image[:, ::-1])


def test_crop_larger_than_the_scaled_frame_is_padded_with_ignore():
    label = np.zeros((32, 32), np.uint8)
    _, out_lab = random_scale_crop(np.zeros((32, 32, 3), np.uint8), label, 1.0, (64, 64), False,
                                   np.random.default_rng(1))
    assert (out_lab == 255).sum() == 64 * 64 - 32 * 32


def test_plan_positions_cover_keyframes_targets_and_teacher(fake_root):
    snippet = index_split(fake_root, "train")[0]
    targets, keys, frames = plan_positions(snippet, "dense", 1, 4, teacher=False)
    assert targets == [1, 2, 3, 4, 5] and keys == [0, 1, 2, 3, 4] and frames == [0, 1, 2, 3, 4, 5]
    targets, keys, frames = plan_positions(snippet, "annotated", 2, 3, teacher=True)
    assert targets == [5] and keys == [2, 3, 5] and frames == [2, 3, 4, 5]


def test_clip_batch_cuts_the_same_window_on_the_1_8_grid():
    origin = 2  # rows hold positions 2..7
    frames = torch.arange(6 * 3 * 8 * 16, dtype=torch.float32).reshape(6, 3, 8, 16)
    logits = torch.randn(6, 19, 8, 16).half()
    labels = {t: np.full((64, 128), t, np.uint8) for t in range(4, 8)}
    clip = SnippetClips("s", origin, frames, logits, frozenset(range(2, 8)), [4, 5, 6, 7], labels)
    batch = sample_clip_batch([clip], 3, (2, 2), (32, 64), flip=False, teacher=True,
                              rng=np.random.default_rng(0), label_scale=0.5)
    assert batch.offset == 2
    assert batch.frames_1_8.shape == (3, 3, 3, 4, 8) and batch.key_logits.shape == (3, 19, 4, 8)
    assert batch.labels.shape == (3, 16, 32) and batch.teacher.shape == (3, 19, 4, 8)
    for b in range(3):
        row = int(batch.labels[b, 0, 0]) - origin  # the target t, as a row
        window = [(y, x) for y in range(0, 5) for x in range(0, 9)
                  if torch.equal(frames[row, :, y:y + 4, x:x + 8], batch.frames_1_8[-1, b])]
        assert len(window) == 1
        y, x = window[0]
        assert torch.equal(frames[row - 2, :, y:y + 4, x:x + 8], batch.frames_1_8[0, b])
        assert torch.equal(logits[row - 2, :, y:y + 4, x:x + 8].float(), batch.key_logits[b])
        assert torch.equal(logits[row, :, y:y + 4, x:x + 8].float(), batch.teacher[b])


def test_color_jitter_is_identity_at_zero_and_bounded_otherwise():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    assert color_jitter(image, 0.0, rng) is image
    grey = np.full((8, 8, 3), 100, np.uint8)
    for _ in range(20):
        out = color_jitter(grey, 0.3, rng)
        assert out.dtype == np.uint8 and out.shape == grey.shape
        # a flat grey image stays flat and grey (contrast and saturation have nothing to act on);
        # only brightness moves it, by at most the jitter strength
        assert np.ptp(out) == 0
        assert 70 - 1 <= int(out[0, 0, 0]) <= 130 + 1
    moved = [abs(float(color_jitter(image, 0.3, rng).mean()) - float(image.mean())) for _ in range(10)]
    assert max(moved) > 1.0
