import math

import numpy as np
import pytest
import torch
from monai.metrics import DiceMetric, MeanIoU

from medseg.metrics import aggregate, binary_metrics, by_truth, case_metrics, dice_scores


def test_empty_mask_conventions():
    empty = np.zeros((8, 8), bool)
    blob = empty.copy()
    blob[2:4, 2:4] = True
    both_empty = binary_metrics(empty, empty)
    assert both_empty["dice"] == 1 and both_empty["iou"] == 1 and both_empty["hd95"] == 0
    false_alarm = binary_metrics(blob, empty)
    assert false_alarm["dice"] == 0 and false_alarm["precision"] == 0 and false_alarm["sensitivity"] == 1
    assert math.isnan(false_alarm["hd95"])
    missed = binary_metrics(empty, blob)
    assert missed["dice"] == 0 and missed["sensitivity"] == 0 and missed["precision"] == 1


def test_known_values():
    truth = np.zeros((10, 10), bool)
    truth[0:4, 0:5] = True  # 20 px
    pred = np.zeros((10, 10), bool)
    pred[0:4, 0:4] = True  # 16 px, all inside
    m = binary_metrics(pred, truth)
    assert m["dice"] == pytest.approx(32 / 36)
    assert m["iou"] == pytest.approx(16 / 20)
    assert m["sensitivity"] == pytest.approx(0.8) and m["precision"] == 1.0
    assert m["specificity"] == 1.0
    assert m["hd95"] == pytest.approx(1.0)


def test_dice_and_iou_agree_with_monai_on_random_masks():
    rng = np.random.default_rng(0)
    pred = rng.random((12, 32, 32)) > 0.6
    truth = rng.random((12, 32, 32)) > 0.5
    ours_dice = [binary_metrics(p, t)["dice"] for p, t in zip(pred, truth, strict=True)]
    ours_iou = [binary_metrics(p, t)["iou"] for p, t in zip(pred, truth, strict=True)]
    p, t = torch.from_numpy(pred)[:, None].float(), torch.from_numpy(truth)[:, None].float()
    monai_dice = DiceMetric(include_background=True, reduction="none")(p, t)[:, 0]
    monai_iou = MeanIoU(include_background=True, reduction="none")(p, t)[:, 0]
    np.testing.assert_allclose(ours_dice, monai_dice.numpy(), atol=1e-6)
    np.testing.assert_allclose(ours_iou, monai_iou.numpy(), atol=1e-6)
    fast = dice_scores(torch.from_numpy(pred), torch.from_numpy(truth))
    np.testing.assert_allclose(fast.numpy(), ours_dice, atol=1e-6)


def test_multiclass_averages_foreground_classes():
    truth = np.array([[0, 1], [2, 2]])
    pred = np.array([[0, 1], [2, 0]])
    assert case_metrics(pred, truth, num_classes=3)["dice"] == pytest.approx((1 + 2 / 3) / 2)


def test_aggregate_leaves_out_nan_and_counts():
    rows = [{"dice": 1.0, "hd95": 2.0}, {"dice": 0.0, "hd95": math.nan}]
    summary = aggregate(rows)
    assert summary["dice"]["mean"] == 0.5 and summary["dice"]["std"] == 0.5
    assert summary["hd95"]["mean"] == 2.0 and summary["hd95"]["n"] == 1


def test_by_truth_splits_lesion_dice_from_false_positives():
    rows = [
        {"dice": 0.5, "lesion": True, "predicted": True},
        {"dice": 0.0, "lesion": True, "predicted": False},  # a missed lesion counts in the lesion Dice
        {"dice": 1.0, "lesion": False, "predicted": False},
        {"dice": 0.0, "lesion": False, "predicted": True},
        {"dice": 1.0, "lesion": False, "predicted": False},
        {"dice": 1.0, "lesion": False, "predicted": False},
    ]
    split = by_truth(rows)
    assert split["lesion"]["n"] == 2 and split["lesion"]["dice"]["mean"] == pytest.approx(0.25)
    assert split["lesion_free"] == {"false_positive_rate": 0.25, "n": 4}
    assert by_truth(rows[:2])["lesion_free"] == {"false_positive_rate": None, "n": 0}
