"""Paired clip transforms: one scale/crop/flip for every frame and the label, reproducible."""
import numpy as np
import pytest

from gsvnet_ros.data.transforms import ClipTransform, TorchClips, crop_clip, scale_clip


def _clip(t: int = 3, h: int = 40, w: int = 60):
    rng = np.random.default_rng(1)
    base = rng.integers(0, 200, (h, w, 3)).astype(np.uint8)
    frames = np.stack([base + 10 * i for i in range(t)]).astype(np.uint8)
    label = (base[..., 0] // 20).astype(np.uint8)
    return frames, label


def test_same_crop_and_flip_for_every_frame_and_the_label():
    frames, label = _clip()
    tf = ClipTransform(scale_range=(1.0, 1.0), crop=(24, 30), hflip=True)
    for seed in range(8):
        out, lab = tf(frames, label, np.random.default_rng(seed))
        assert out.shape == (3, 24, 30, 3) and lab.shape == (24, 30)
        for i in range(1, 3):
            np.testing.assert_array_equal(out[i].astype(int) - out[0], 10 * i)
        np.testing.assert_array_equal(lab, out[0, ..., 0] // 20)


def test_flip_happens_for_some_seeds_and_not_others():
    frames, label = _clip()
    tf = ClipTransform(scale_range=(1.0, 1.0), crop=(40, 60))
    flipped = [not np.array_equal(tf(frames, label, np.random.default_rng(s))[1], label)
               for s in range(10)]
    assert any(flipped) and not all(flipped)


def test_same_generator_state_gives_same_result():
    frames, label = _clip()
    tf = ClipTransform(scale_range=(0.5, 2.0), crop=(32, 32))
    a = tf(frames, label, np.random.default_rng(42))
    b = tf(frames, label, np.random.default_rng(42))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_label_is_resized_with_nearest_neighbour():
    frames, label = _clip()
    _, lab = scale_clip(frames, label, 1.7)
    assert lab.shape == (68, 102)
    assert set(np.unique(lab)) <= set(np.unique(label))


def test_crop_outside_the_image_pads_frames_with_zero_and_label_with_ignore():
    frames, label = _clip(h=10, w=10)
    out, lab = crop_clip(frames, label, -2, -3, 14, 16)
    assert (lab[:2] == 255).all() and (lab[:, :3] == 255).all() and (lab[12:] == 255).all()
    np.testing.assert_array_equal(lab[2:12, 3:13], label)
    assert (out[:, :2] == 0).all()
    tf = ClipTransform(scale_range=(1.0, 1.0), crop=(16, 16), hflip=False)
    _, lab2 = tf(frames, label, np.random.default_rng(0))
    assert (lab2 == 255).sum() == 16 * 16 - 100


def test_bad_options_and_mismatched_label_are_rejected():
    with pytest.raises(ValueError, match="scale_range"):
        ClipTransform(scale_range=(2.0, 1.0))
    frames, label = _clip()
    with pytest.raises(ValueError, match="label shape"):
        ClipTransform()(frames, label[:5], np.random.default_rng(0))


def test_torch_adapter_gives_float_frames_and_long_labels():
    torch = pytest.importorskip("torch")
    frames, label = _clip()
    ds = TorchClips([(frames, label)], ClipTransform(scale_range=(1.0, 1.0), crop=(16, 20)), seed=3)
    x, y = ds[0]
    assert x.shape == (3, 3, 16, 20) and x.dtype == torch.float32 and float(x.max()) <= 1.0
    assert y.shape == (16, 20) and y.dtype == torch.int64
    x2, _ = ds[0]
    assert torch.equal(x, x2)
