"""Per-case segmentation metrics and their aggregation.

Empty-mask conventions (a slice without lesion is common in medical data):
- truth and prediction both empty: Dice = IoU = sensitivity = precision = 1, HD95 = 0 (a perfect answer);
- prediction non-empty on empty truth: Dice = IoU = precision = 0, sensitivity = 1 (nothing to miss), HD95 = NaN;
- prediction empty on non-empty truth: Dice = IoU = sensitivity = 0, precision = 1 (no false positive), HD95 = NaN.
Specificity is 1 when there is no background pixel. NaN values (undefined HD95) are left out of the
aggregate mean/std, and the aggregate states how many cases entered it.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from monai.metrics import compute_hausdorff_distance

__all__ = ["METRIC_NAMES", "binary_metrics", "case_metrics", "aggregate", "by_truth", "dice_scores", "hd95"]

METRIC_NAMES = ("dice", "iou", "sensitivity", "specificity", "precision", "hd95", "hd95_mm")


def _ratio(numerator: float, denominator: float, if_empty: float) -> float:
    return numerator / denominator if denominator > 0 else if_empty


def hd95(pred: np.ndarray, truth: np.ndarray, spacing: float | tuple[float, float] = 1.0) -> float:
    """95th percentile Hausdorff distance between two non-empty boolean masks `(H, W)`: in pixels, or in mm with
    the pixel `spacing` (one value, or rows then columns)."""
    y_pred = torch.from_numpy(pred)[None, None].float()
    y = torch.from_numpy(truth)[None, None].float()
    with warnings.catch_warnings():  # MONAI warns about its own internal use of a deprecated argument
        warnings.simplefilter("ignore", FutureWarning)
        distance = compute_hausdorff_distance(y_pred, y, include_background=True, percentile=95, spacing=spacing)
    return float(distance.item())


def binary_metrics(pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, float] | None = None) -> dict[str, float]:
    """Metrics of one binary prediction.

    Args:
        pred: `(H, W)` boolean prediction.
        truth: `(H, W)` boolean ground truth of the same shape.
        spacing: the pixel spacing in mm (rows, columns), where the source records one.

    Returns:
        dice, iou, sensitivity, specificity, precision, hd95 (pixels) and hd95_mm (NaN without a spacing); see the
        module docstring for empty masks.
    """
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} ≠ truth shape {truth.shape}")
    pred, truth = pred.astype(bool), truth.astype(bool)
    tp = float(np.count_nonzero(pred & truth))
    fp = float(np.count_nonzero(pred & ~truth))
    fn = float(np.count_nonzero(~pred & truth))
    tn = float(pred.size - tp - fp - fn)
    both_empty = tp + fp + fn == 0
    out = {
        "dice": 1.0 if both_empty else 2 * tp / (2 * tp + fp + fn),
        "iou": 1.0 if both_empty else tp / (tp + fp + fn),
        "sensitivity": _ratio(tp, tp + fn, 1.0),
        "specificity": _ratio(tn, tn + fp, 1.0),
        "precision": _ratio(tp, tp + fp, 1.0),
    }
    known = spacing is not None and all(math.isfinite(s) for s in spacing)
    if both_empty:
        out["hd95"], out["hd95_mm"] = 0.0, 0.0 if known else math.nan
    elif pred.any() and truth.any():
        out["hd95"] = hd95(pred, truth)
        out["hd95_mm"] = hd95(pred, truth, tuple(spacing)) if known else math.nan
    else:
        out["hd95"], out["hd95_mm"] = math.nan, math.nan
    return out


def case_metrics(
    pred: np.ndarray, truth: np.ndarray, num_classes: int = 2, spacing: tuple[float, float] | None = None
) -> dict[str, float]:
    """Metrics of one case from class-index maps `(H, W)`: binary, or the mean over foreground classes."""
    if num_classes == 2:
        return binary_metrics(pred > 0, truth > 0, spacing)
    per_class = [binary_metrics(pred == k, truth == k, spacing) for k in range(1, num_classes)]
    return {name: _nan_mean([m[name] for m in per_class]) for name in METRIC_NAMES}


def _nan_mean(values: list[float]) -> float:
    """The mean of the defined values; NaN (without a warning) when none is."""
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def aggregate(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean, std, median and count (NaN left out) of each metric over cases."""
    summary = {}
    for name in METRIC_NAMES:
        values = np.array([row[name] for row in rows if name in row], dtype=np.float64)
        finite = values[np.isfinite(values)]
        summary[name] = {
            "mean": float(finite.mean()) if finite.size else math.nan,
            "std": float(finite.std()) if finite.size else math.nan,
            "median": float(np.median(finite)) if finite.size else math.nan,
            "n": int(finite.size),
        }
    return summary


def by_truth(rows: list[dict]) -> dict[str, dict[str, float | int | None]]:
    """The cases split by their true mask, each row with booleans `lesion` (the true mask holds foreground) and
    `predicted` (the prediction does): Dice over the lesion cases (`lesion.dice`: mean, std, median, n), and the
    share of lesion-free cases given a non-empty mask (`lesion_free.false_positive_rate`, n). Where most slices hold
    no lesion (a volume's slices), the mean Dice over every case mostly counts empty answers; these two say how the
    lesions themselves are segmented and how often one is invented."""
    lesion = [row for row in rows if row["lesion"]]
    free = [row for row in rows if not row["lesion"]]
    return {
        "lesion": {"dice": aggregate(lesion)["dice"], "n": len(lesion)},
        "lesion_free": {
            "false_positive_rate": sum(row["predicted"] for row in free) / len(free) if free else None,
            "n": len(free),
        },
    }


def dice_scores(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Per-case hard Dice of boolean `(B, H, W)` masks, with the same empty conventions (both empty → 1)."""
    pred, truth = pred.flatten(1).bool(), truth.flatten(1).bool()
    intersection = (pred & truth).sum(1).float()
    total = pred.sum(1).float() + truth.sum(1).float()
    return torch.where(total > 0, 2 * intersection / total.clamp_min(1), torch.ones_like(total))
