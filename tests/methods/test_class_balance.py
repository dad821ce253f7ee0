"""Pseudo-labels that respect a rare class: class-adaptive thresholds lower the threshold of a class the teacher
is rarely sure of, and distribution alignment moves the teacher's class shares toward the labelled masks'."""

from __future__ import annotations

import torch
from torch import nn

from medseg.methods.class_balance import RunningShares, adaptive_thresholds, align_distribution, class_probabilities
from tests.helpers import built_method


class _Planted(nn.Module):
    """A teacher that is sure of the background (logit −6, p = 0.998) and unsure of a small lesion in the top-left
    6 × 6 corner (logit `lesion_logit`)."""

    def __init__(self, lesion_logit: float) -> None:
        super().__init__()
        self.lesion_logit = lesion_logit
        self.scale = nn.Parameter(torch.ones(()))  # a parameter, so that the EMA teacher has one to follow

    def forward(self, x):
        logits = torch.full((x.shape[0], 1, *x.shape[-2:]), -6.0) * self.scale
        logits[:, :, :6, :6] = self.lesion_logit
        return logits


def _method(phantom_config, **options):
    config = phantom_config()
    config["method"] = {"name": "fixmatch", "cutmix": 0.0, "balance_momentum": 0.0, **options}
    return built_method(config)


def test_adaptive_thresholds_keep_the_best_learnt_class_and_lower_the_others():
    thresholds = adaptive_thresholds(torch.tensor([1.0, 0.5, 0.0]), 0.95)
    torch.testing.assert_close(thresholds, torch.tensor([0.95, 0.95 / 3, 0.0]))


def test_thresholds_adapt_to_a_planted_class_imbalance(phantom_config):
    images = torch.rand(2, 1, 24, 24)
    fixed = _method(phantom_config)
    fixed.model = _Planted(lesion_logit=2.0)  # p = 0.88: below 0.95
    labels, confident = fixed.pseudo_labels(images)
    assert not confident[:, :6, :6].any() and confident[:, 6:, 6:].all()

    adaptive = _method(phantom_config, class_thresholds=True)
    adaptive.model = _Planted(lesion_logit=2.0)
    labels, confident = adaptive.pseudo_labels(images)
    assert (labels[:, :6, :6] == 1).all()
    assert confident[:, :6, :6].all(), "the lesion class, never sure, gets a lower threshold"
    assert confident[:, 6:, 6:].all()
    learnt = adaptive.shares.values["sure"]
    assert learnt[0] == 1.0 and learnt[1] == 0.0


def test_alignment_moves_the_teachers_foreground_share_toward_the_labelled_one(phantom_config):
    method = _method(phantom_config, align=True)
    method.model = _Planted(lesion_logit=-0.5)  # p = 0.38: the teacher calls the lesion background
    images = torch.rand(2, 1, 24, 24)
    masks = torch.zeros(2, 24, 24, dtype=torch.long)
    masks[:, :12, :12] = 1  # the labelled masks: a quarter foreground
    before = class_probabilities(torch.sigmoid(method.model(images)))[:, 1].mean()
    method.shares.update("labelled", RunningShares.mask_shares(masks, 2))
    labels, _ = method.pseudo_labels(images)
    assert (labels[:, :6, :6] == 1).all(), "aligned, the under-predicted lesion is foreground"
    assert (labels[:, 6:, 6:] == 0).all()
    aligned = align_distribution(
        class_probabilities(torch.sigmoid(method.model(images))),
        method.shares.values["labelled"],
        method.shares.values["teacher"],
    )[:, 1].mean()
    assert abs(aligned - 0.25) < abs(before - 0.25)


def test_alignment_leaves_a_teacher_that_matches_the_labelled_shares_unchanged():
    probs = torch.rand(2, 3, 8, 8).softmax(1)
    shares = probs.mean(dim=(0, 2, 3))
    torch.testing.assert_close(align_distribution(probs, shares, shares), probs)


def test_the_running_shares_survive_a_checkpoint(phantom_config):
    method = _method(phantom_config, align=True, class_thresholds=True, balance_momentum=0.5)
    method.model = _Planted(lesion_logit=2.0)
    masks = torch.zeros(2, 24, 24, dtype=torch.long)
    masks[:, :4, :4] = 1
    method.training_step(
        {"image": torch.rand(2, 1, 24, 24), "mask": masks, "unlabeled_image": torch.rand(2, 1, 24, 24)}
    )
    restored = _method(phantom_config, align=True, class_thresholds=True, balance_momentum=0.5)
    restored.model = _Planted(lesion_logit=2.0)
    restored.load_state_dict(method.state_dict())
    assert set(restored.shares.values) == {"labelled", "teacher", "sure"}
    for name, value in method.shares.values.items():
        torch.testing.assert_close(restored.shares.values[name], value)
