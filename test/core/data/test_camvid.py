"""CamVid loaders on the real SegNet sample, the 32-to-11 colour mapping, and video frames."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from gsvnet_ros.data.camvid import (CAMVID32, CAMVID_CLASSES, CAMVID_VOID, CamVidFrames,
                                    colour_labels_to_camvid11, list_camvid)
from gsvnet_ros.data.errors import DatasetLayoutError


def _sample() -> Path:
    root = next(p for p in Path(__file__).resolve().parents if (p / "setup.py").exists())
    path = root.parent / "shared" / "realdata" / "camvid-sample"
    if not path.is_dir():
        pytest.skip(f"real data sample not found at {path}")
    return path


def test_real_sample_lists_and_reads_labelled_frames():
    root = _sample()
    assert list_camvid(root, "train") == ["0001TP_006690", "0001TP_006720", "0001TP_006750",
                                          "0001TP_006780", "0001TP_006810"]
    item = CamVidFrames(root, "test")[0]
    assert item.name == "0016E5_07959"
    assert item.frames.shape == (1, 360, 480, 3) and item.frames.dtype == np.uint8
    assert item.label.shape == (360, 480)
    assert set(np.unique(item.label)) <= set(range(11)) | {255}
    raw = cv2.imread(str(root / "annotations_prepped_test" / "0016E5_07959.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(item.label == 255, raw == CAMVID_VOID)


def test_real_sample_class_order_puts_sky_above_road():
    item = CamVidFrames(_sample(), "train")[0]
    rows = np.arange(item.label.shape[0])[:, None] * np.ones_like(item.label)
    sky = rows[item.label == CAMVID_CLASSES.index("sky")].mean()
    road = rows[item.label == CAMVID_CLASSES.index("road")].mean()
    assert sky < item.label.shape[0] / 3 < road


def test_void_can_be_kept_as_eleven():
    item = CamVidFrames(_sample(), "train", void_to=CAMVID_VOID)[0]
    assert item.label.max() <= CAMVID_VOID and (item.label == CAMVID_VOID).any()


def test_32_class_colours_map_to_11_classes():
    rgb = np.array([[colour for _, colour, _ in CAMVID32]], np.uint8)
    np.testing.assert_array_equal(colour_labels_to_camvid11(rgb)[0], [c for _, _, c in CAMVID32])
    table = {name: c for name, _, c in CAMVID32}
    assert table["LaneMkgsDriv"] == CAMVID_CLASSES.index("road")
    assert table["SUVPickupTruck"] == CAMVID_CLASSES.index("car")
    assert table["Void"] == CAMVID_VOID
    assert len(CAMVID32) == 32 and len({c for _, c, _ in CAMVID32}) == 32


def test_unknown_colour_is_void_or_an_error_when_strict():
    rgb = np.array([[[1, 2, 3]]], np.uint8)
    assert colour_labels_to_camvid11(rgb)[0, 0] == CAMVID_VOID
    with pytest.raises(ValueError, match=r"\(1, 2, 3\)"):
        colour_labels_to_camvid11(rgb, strict=True)


def test_video_frames_before_the_labelled_one_are_read_and_resized(tmp_path):
    for sub in ("images_prepped_val", "annotations_prepped_val"):
        (tmp_path / sub).mkdir()
    cv2.imwrite(str(tmp_path / "images_prepped_val" / "0006R0_00930.png"), np.zeros((36, 48, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "annotations_prepped_val" / "0006R0_00930.png"), np.ones((36, 48), np.uint8))
    seq = tmp_path / "sequences" / "0006R0"
    seq.mkdir(parents=True)
    cv2.imwrite(str(seq / "0006R0_00928.png"), np.full((72, 96, 3), 50, np.uint8))
    ds = CamVidFrames(tmp_path, "val", k=2)
    with pytest.raises(DatasetLayoutError, match="0006R0_00929.png"):
        ds[0]
    cv2.imwrite(str(seq / "0006R0_00929.png"), np.full((72, 96, 3), 60, np.uint8))
    item = ds[0]
    assert item.frames.shape == (3, 36, 48, 3)
    assert [int(f[0, 0, 0]) for f in item.frames] == [50, 60, 0]


def test_missing_split_is_a_layout_error(tmp_path):
    with pytest.raises(DatasetLayoutError, match="images_prepped_train"):
        list_camvid(tmp_path, "train")
