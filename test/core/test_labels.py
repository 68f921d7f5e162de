"""labels.py against the official cityscapesScripts table and the real Cityscapes sample."""
from pathlib import Path

import numpy as np
import pytest

from gsvnet_ros import labels

# (name, labelId, trainId, color) of the 19 evaluation classes, typed in from
# cityscapesScripts/cityscapesscripts/helpers/labels.py, independently of labels.py.
OFFICIAL = [
    ("road", 7, 0, (128, 64, 128)),
    ("sidewalk", 8, 1, (244, 35, 232)),
    ("building", 11, 2, (70, 70, 70)),
    ("wall", 12, 3, (102, 102, 156)),
    ("fence", 13, 4, (190, 153, 153)),
    ("pole", 17, 5, (153, 153, 153)),
    ("traffic light", 19, 6, (250, 170, 30)),
    ("traffic sign", 20, 7, (220, 220, 0)),
    ("vegetation", 21, 8, (107, 142, 35)),
    ("terrain", 22, 9, (152, 251, 152)),
    ("sky", 23, 10, (70, 130, 180)),
    ("person", 24, 11, (220, 20, 60)),
    ("rider", 25, 12, (255, 0, 0)),
    ("car", 26, 13, (0, 0, 142)),
    ("truck", 27, 14, (0, 0, 70)),
    ("bus", 28, 15, (0, 60, 100)),
    ("train", 31, 16, (0, 80, 100)),
    ("motorcycle", 32, 17, (0, 0, 230)),
    ("bicycle", 33, 18, (119, 11, 32)),
]


def _realdata() -> Path:
    root = next(p for p in Path(__file__).resolve().parents if (p / "setup.py").exists())
    return root.parent / "shared" / "realdata"


def test_class_names_colours_and_ids_match_official_table():
    assert labels.NUM_CLASSES == 19
    assert list(labels.CLASS_NAMES) == [row[0] for row in OFFICIAL]
    for name, label_id, train_id, color in OFFICIAL:
        assert tuple(labels.PALETTE[train_id]) == color, name
        assert labels.LABEL_ID_TO_TRAIN_ID[label_id] == train_id, name
        row = next(lab for lab in labels.LABELS if lab.name == name)
        assert (row.label_id, row.train_id, row.color) == (label_id, train_id, color)


def test_every_non_evaluation_label_id_maps_to_ignore():
    evaluated = {row[1] for row in OFFICIAL}
    for label_id in range(256):
        if label_id not in evaluated:
            assert labels.LABEL_ID_TO_TRAIN_ID[label_id] == 255, label_id


def test_train_ids_round_trip_through_label_ids():
    train = np.array([[*range(19), 255]], np.uint8)
    back = labels.label_ids_to_train_ids(labels.train_ids_to_label_ids(train))
    np.testing.assert_array_equal(back, train)


def test_label_ids_to_train_ids_agrees_with_real_cityscapes_sample():
    cv2 = pytest.importorskip("cv2")
    folder = _realdata() / "cityscapes-sample" / "gtFine" / "val" / "frankfurt"
    if not folder.is_dir():
        pytest.skip(f"real data sample not found at {folder}")
    stem = folder / "frankfurt_000000_000294_gtFine_"
    label_ids = cv2.imread(str(stem) + "labelIds.png", cv2.IMREAD_UNCHANGED)
    train_ids = cv2.imread(str(stem) + "labelTrainIds.png", cv2.IMREAD_UNCHANGED)
    ours = labels.label_ids_to_train_ids(label_ids)
    # The sample's two label images were downscaled separately (256x128), so 1-px-wide boundary
    # pixels may differ; away from boundaries the mapping must be exact ...
    kernel = np.ones((5, 5), np.uint8)
    interior = cv2.dilate(label_ids, kernel) == cv2.erode(label_ids, kernel)
    assert interior.sum() > 0.6 * interior.size
    np.testing.assert_array_equal(ours[interior], train_ids[interior])
    # ... and every labelId present maps to the trainId the official tool gave most of its pixels.
    for label_id in np.unique(label_ids):
        values, counts = np.unique(train_ids[label_ids == label_id], return_counts=True)
        assert labels.LABEL_ID_TO_TRAIN_ID[label_id] == values[counts.argmax()], label_id
    assert (ours == train_ids).mean() > 0.995
