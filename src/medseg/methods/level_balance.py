"""Loss weights that make the slice level useless to a classifier.

On LGG the slice's position in the volume alone tells tumour slices from tumour-free ones with a ROC AUC of 0.85
(tumours lie in the middle slices, the top and bottom of the head are tumour-free), and classifiers that learn this
shortcut point at the same anatomy on every slice. Weighted so that each class has the same distribution over
the training set's level bins, the bin tells nothing about the class (finer cues of the level, inside a bin or
through anatomy that follows it, remain learnable). Slices in a bin that lacks a class (on LGG the top and bottom
of the head) weigh nothing.
"""

from __future__ import annotations

import numpy as np

__all__ = ["level_balanced_weights", "level_log_odds", "level_bins"]


def level_bins(levels: np.ndarray, bins: int) -> np.ndarray:
    """The bin `(N,)` int of each level in [0, 1] among `bins` equal bins."""
    return np.minimum((np.clip(np.asarray(levels, np.float64), 0, 1) * bins).astype(np.int64), bins - 1)


def level_balanced_weights(levels: np.ndarray, labels: np.ndarray, bins: int = 10) -> np.ndarray:
    """Per-image loss weights `(N,)`, mean 1, for images at slice `levels` `(N,)` in [0, 1] with class `labels`
    `(N,)` (int, ≥ 0).

    The level range is cut into `bins` equal bins. Every class gets the same total weight, spread over the bins as
    the target distribution: in each bin, the smallest share of any class's images there (renormalised), so that
    no class needs more images in a bin than it has. An image in a bin that some class lacks weighs 0.

    Raises:
        ValueError: fewer than two classes, or no level bin holds images of every class.
    """
    levels, labels = np.asarray(levels, np.float64), np.asarray(labels, np.int64)
    classes = np.unique(labels)
    if len(classes) < 2:
        raise ValueError(f"level balancing needs images of two classes or more, got only class {classes.tolist()}")
    index, level_bin = np.searchsorted(classes, labels), level_bins(levels, bins)
    counts = np.zeros((len(classes), bins))
    np.add.at(counts, (index, level_bin), 1)
    target = (counts / counts.sum(1, keepdims=True)).min(0)
    if target.sum() == 0:
        raise ValueError(
            "level balancing: no slice level holds images of every class (the level alone separates them); "
            "turn it off or add data"
        )
    target /= target.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        per_cell = np.where(counts > 0, target / counts, 0.0)  # each class's total weight is 1
    weights = per_cell[index, level_bin]
    return weights * len(weights) / weights.sum()


def level_log_odds(levels: np.ndarray, labels: np.ndarray, bins: int = 10) -> np.ndarray:
    """`(bins,)` log p(level bin | lesion) − log p(level bin | no lesion) over binary `labels` (Laplace-smoothed):
    added to a level-balanced classifier's logit, it gives back what the level bin says about a lesion, for a
    detection score on images as they come (the classifier was trained not to use the bin)."""
    level_bin, labels = level_bins(levels, bins), np.asarray(labels, np.int64)
    counts = np.stack([np.bincount(level_bin[labels == c], minlength=bins) for c in (1, 0)]).astype(np.float64) + 1
    shares = counts / counts.sum(1, keepdims=True)
    return np.log(shares[0]) - np.log(shares[1])
