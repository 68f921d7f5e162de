"""Cityscapes-layout loaders on the real sample and on a hand-made sequence root."""
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from gsvnet_ros.data.cityscapes import (CityscapesClips, DatasetLayoutError, DenseClips, DenseFrames,
                                        Snippet, class_shares, list_sequences, list_snippets,
                                        read_flow)
from gsvnet_ros.labels import label_ids_to_train_ids


def _realdata() -> Path:
    root = next(p for p in Path(__file__).resolve().parents if (p / "setup.py").exists())
    return root.parent / "shared" / "realdata"


def _write(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)


@pytest.fixture()
def seq_root(tmp_path) -> Path:
    """Two snippets of 4 frames (frame 3 annotated), frame t filled with value 10 * t + seq."""
    rng = np.random.default_rng(0)
    for seq in (0, 7):
        for t in range(4):
            stem = f"town_{seq:06d}_{t:06d}"
            _write(tmp_path / "leftImg8bit_sequence" / "val" / "town" / f"{stem}_leftImg8bit.png",
                   np.full((32, 64, 3), 10 * t + seq, np.uint8))
            lab = rng.choice([7, 8, 26, 0], size=(32, 64)).astype(np.uint8)
            _write(tmp_path / "gtFine_sequence" / "val" / "town" / f"{stem}_gtFine_labelIds.png", lab)
            if t == 3:
                _write(tmp_path / "gtFine" / "val" / "town" / f"{stem}_gtFine_labelIds.png", lab)
    return tmp_path


def test_real_sample_reads_as_one_annotated_frame_with_train_ids():
    root = _realdata() / "cityscapes-sample"
    if not root.is_dir():
        pytest.skip(f"real data sample not found at {root}")
    assert list_snippets(root, "val") == [Snippet("frankfurt", 0, 294)]
    clip = CityscapesClips(root, "val", k=0, frames_folder="leftImg8bit")[0]
    assert clip.frames.shape == (1, 128, 256, 3) and clip.frames.dtype == np.uint8
    stem = root / "gtFine" / "val" / "frankfurt" / "frankfurt_000000_000294_gtFine_"
    ids = cv2.imread(str(stem) + "labelIds.png", cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(clip.label, label_ids_to_train_ids(ids))
    bgr = cv2.imread(str(root / "leftImg8bit" / "val" / "frankfurt" /
                         "frankfurt_000000_000294_leftImg8bit.png"))
    np.testing.assert_array_equal(clip.frames[0], bgr[..., ::-1])  # RGB order


def test_real_sample_has_no_sequence_folder_and_says_which_path():
    root = _realdata() / "cityscapes-sample"
    if not root.is_dir():
        pytest.skip(f"real data sample not found at {root}")
    with pytest.raises(DatasetLayoutError, match="leftImg8bit_sequence") as err:
        CityscapesClips(root, "val", k=2)[0]
    assert err.value.path is not None and "000292" in err.value.path.name


def test_clip_holds_k_frames_before_the_annotated_one(seq_root):
    ds = CityscapesClips(seq_root, "val", k=2)
    assert len(ds) == 2 and ds.snippets[1] == Snippet("town", 7, 3)
    clip = ds[1]
    assert clip.frames.shape == (3, 32, 64, 3)
    assert [int(f[0, 0, 0]) for f in clip.frames] == [17, 27, 37]
    assert set(np.unique(clip.label)) <= {0, 1, 13, 255}
    assert ds.clip(0, k=0).frames.shape[0] == 1


def test_sequences_are_listed_with_their_frames(seq_root):
    assert list_sequences(seq_root, "val") == {("town", 0): [0, 1, 2, 3], ("town", 7): [0, 1, 2, 3]}


def test_dense_frames_and_clips_use_every_labelled_frame(seq_root):
    frames = DenseFrames(seq_root, "val")
    assert len(frames) == 8
    rgb, lab = frames[5]
    assert rgb.shape == (32, 64, 3) and lab.shape == (32, 64)
    clips = DenseClips(seq_root, "val", k=1)
    assert len(clips) == 6  # frames 1..3 of each snippet
    c = clips[0]
    assert c.snippet.frame == 1 and [int(f[0, 0, 0]) for f in c.frames] == [0, 10]
    ids = cv2.imread(str(seq_root / "gtFine_sequence" / "val" / "town" /
                         "town_000000_000001_gtFine_labelIds.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(c.label, label_ids_to_train_ids(ids))


def test_missing_split_folder_names_the_expected_path(tmp_path):
    with pytest.raises(DatasetLayoutError, match=re.escape(str(tmp_path / "gtFine" / "train"))):
        list_snippets(tmp_path, "train")


def test_colour_label_image_is_a_layout_error(seq_root):
    path = seq_root / "gtFine" / "val" / "town" / "town_000000_000003_gtFine_labelIds.png"
    _write(path, np.zeros((32, 64, 3), np.uint8))
    with pytest.raises(DatasetLayoutError, match="single-channel"):
        CityscapesClips(seq_root, "val")[0]


def test_flow_reader_checks_shape(tmp_path):
    good, bad = tmp_path / "a_flow.npy", tmp_path / "b_flow.npy"
    np.save(good, np.zeros((4, 5, 2), np.float16))
    np.save(bad, np.zeros((4, 5), np.float16))
    assert read_flow(good).dtype == np.float32
    with pytest.raises(DatasetLayoutError, match=r"\(H, W, 2\)"):
        read_flow(bad)
    with pytest.raises(DatasetLayoutError, match="missing_flow"):
        read_flow(tmp_path / "missing_flow.npy")


def test_class_shares_sum_to_one(seq_root):
    shares = class_shares(seq_root, "val")
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["ignore"] > 0.1 and shares["13"] > 0.1
