"""Level-balanced loss weights: the slice level tells nothing about the class."""

import numpy as np
import pytest

from medseg.methods.level_balance import level_balanced_weights, level_log_odds


def _mass(weights, mask):
    return float(weights[mask].sum())


def test_each_class_weighs_the_same_and_spreads_over_the_levels_alike():
    rng = np.random.default_rng(0)
    levels = np.concatenate([rng.uniform(0.3, 0.7, 60), rng.uniform(0, 1, 140)])  # lesions sit in the middle
    labels = np.array([1] * 60 + [0] * 140)
    weights = level_balanced_weights(levels, labels, bins=5)
    assert weights.mean() == pytest.approx(1.0)
    assert _mass(weights, labels == 1) == pytest.approx(_mass(weights, labels == 0))
    bins = np.minimum((levels * 5).astype(int), 4)
    for b in range(5):
        assert _mass(weights, (bins == b) & (labels == 1)) == pytest.approx(_mass(weights, (bins == b) & (labels == 0)))
    outside = (bins == 0) | (bins == 4)  # the top and bottom slices hold no lesion: they tell nothing
    assert (weights[outside] == 0).all() and (weights[~outside] > 0).all()


def test_a_level_that_alone_separates_the_classes_and_a_single_class_are_refused():
    with pytest.raises(ValueError, match="no slice level holds images of every class"):
        level_balanced_weights(np.array([0.1, 0.15, 0.9, 0.95]), np.array([0, 0, 1, 1]), bins=4)
    with pytest.raises(ValueError, match="two classes or more"):
        level_balanced_weights(np.array([0.1, 0.9]), np.array([1, 1]))


def test_the_level_log_odds_favour_lesions_where_the_training_lesions_lie():
    levels = np.array([0.05, 0.1, 0.5, 0.5, 0.55, 0.95])
    labels = np.array([0, 0, 1, 1, 0, 0])
    odds = level_log_odds(levels, labels, bins=2)
    assert odds[1] > 0 > odds[0]  # every lesion in the upper half, half of the tumour-free slices
    counts_lesion, counts_free = np.array([0, 2]) + 1, np.array([2, 2]) + 1
    np.testing.assert_allclose(odds, np.log(counts_lesion / 4) - np.log(counts_free / 6))


def test_three_classes_each_weigh_the_same_in_every_shared_bin():
    levels = np.array([0.1, 0.2, 0.6, 0.1, 0.7, 0.8, 0.15, 0.65, 0.9, 0.95])
    labels = np.array([2, 2, 2, 5, 5, 5, 7, 7, 7, 7])  # any label values
    weights = level_balanced_weights(levels, labels, bins=2)
    for low in (True, False):
        in_bin = (levels < 0.5) == low
        masses = [_mass(weights, in_bin & (labels == c)) for c in (2, 5, 7)]
        assert masses == pytest.approx([masses[0]] * 3) and masses[0] > 0
