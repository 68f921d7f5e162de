"""Metrics against hand-computed confusion matrices, the ignore label, absent classes, pooling."""
import math

import numpy as np
import pytest

from gsvnet_ros.metrics import (DistanceConfusion, MetricInputError, confusion_matrix, iou_per_class,
                                mean_iou)


def test_confusion_matrix_matches_hand_count_rows_truth_cols_prediction():
    gt = np.array([[0, 0, 1], [1, 2, 2]], np.uint8)
    pred = np.array([[0, 1, 1], [1, 2, 0]], np.uint8)
    expected = np.array([[1, 1, 0],
                         [0, 2, 0],
                         [1, 0, 1]])
    cm = confusion_matrix(pred, gt, num_classes=3)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, expected)


def test_ignored_truth_pixels_are_not_counted_whatever_the_prediction():
    gt = np.array([0, 255, 1, 255], np.uint8)
    pred = np.array([0, 1, 0, 200], np.uint8)  # 200 on an ignored pixel is fine
    cm = confusion_matrix(pred, gt, num_classes=2)
    np.testing.assert_array_equal(cm, [[1, 0], [1, 0]])
    assert cm.sum() == 2


def test_prediction_outside_class_range_on_scored_pixel_is_an_error():
    with pytest.raises(MetricInputError, match=r"\[19\].*outside"):
        confusion_matrix(np.array([19]), np.array([3]), num_classes=19)


def test_truth_outside_class_range_is_an_error():
    with pytest.raises(MetricInputError, match="label values"):
        confusion_matrix(np.array([0]), np.array([30]), num_classes=19)


def test_shape_mismatch_is_an_error():
    with pytest.raises(MetricInputError, match="shape"):
        confusion_matrix(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8))


def test_iou_is_tp_over_tp_fp_fn_without_smoothing():
    cm = np.array([[1, 1, 0],
                   [0, 2, 0],
                   [1, 0, 1]])
    # class 0: TP 1, FP 1 (row 2), FN 1 -> 1/3; class 1: TP 2, FP 1, FN 0 -> 2/3; class 2: 1/(1+0+1)
    np.testing.assert_allclose(iou_per_class(cm), [1 / 3, 2 / 3, 1 / 2])
    assert mean_iou(cm) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)


def test_class_absent_from_truth_and_prediction_is_nan_and_left_out_of_the_mean():
    cm = np.zeros((4, 4), np.int64)
    cm[0, 0] = 5
    cm[1, 1] = 3
    cm[1, 0] = 1
    iou = iou_per_class(cm)
    assert math.isnan(iou[2]) and math.isnan(iou[3])
    assert iou[0] == pytest.approx(5 / 6) and iou[1] == pytest.approx(3 / 4)
    assert mean_iou(cm) == pytest.approx((5 / 6 + 3 / 4) / 2)


def test_class_predicted_but_absent_from_truth_scores_zero_not_nan():
    cm = np.array([[3, 1], [0, 0]])
    np.testing.assert_allclose(iou_per_class(cm), [0.75, 0.0])
    assert mean_iou(cm) == pytest.approx(0.375)


def test_mean_iou_of_empty_matrix_is_nan_without_warning():
    with np.errstate(all="raise"):
        assert math.isnan(mean_iou(np.zeros((19, 19), np.int64)))


def test_non_square_matrix_is_an_error():
    with pytest.raises(MetricInputError, match="square"):
        iou_per_class(np.zeros((2, 3)))


def test_distance_confusion_pools_offsets_and_minimum_is_the_largest_distance():
    dc = DistanceConfusion(num_classes=2)
    gt = np.array([0, 0, 1, 1])
    dc.update(np.array([0, 0, 1, 1]), gt, 0)  # perfect
    dc.update(np.array([0, 1, 1, 1]), gt, 1)  # one error
    dc.update(np.array([1, 1, 1, 1]), gt, 2)  # class 0 lost
    assert dc.distances == (0, 1, 2)
    np.testing.assert_array_equal(dc.at(2), [[0, 2], [0, 2]])
    np.testing.assert_array_equal(dc.pooled(), [[3, 3], [0, 6]])
    s = dc.summary()
    # pooled: class 0 3/6, class 1 6/9
    assert s["average_miou"] == pytest.approx((3 / 6 + 6 / 9) / 2)
    assert s["minimum_miou"] == pytest.approx((0 + 2 / 4) / 2)
    assert s["per_distance_miou"][0] == pytest.approx(1.0)
    assert s["per_distance_miou"][1] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert s["per_class_iou"] == pytest.approx([3 / 6, 6 / 9])


def test_distance_confusion_accumulates_repeated_distance_and_reports_none_for_nan():
    dc = DistanceConfusion(num_classes=3)
    dc.update(np.array([0]), np.array([0]), 1)
    dc.update(np.array([0]), np.array([0]), 1)
    assert dc.at(1)[0, 0] == 2
    s = dc.summary()
    assert s["per_class_iou"] == [1.0, None, None]
    assert DistanceConfusion().summary()["average_miou"] is None


def test_distance_confusion_rejects_negative_distance_and_unknown_lookup():
    dc = DistanceConfusion(num_classes=2)
    with pytest.raises(MetricInputError, match="distance"):
        dc.update(np.array([0]), np.array([0]), -1)
    with pytest.raises(MetricInputError, match="distances seen"):
        dc.at(3)
