"""Pieces shared by the semi-supervised methods: the consistency-weight schedule and binary/multi-class
probabilities as class distributions."""

from __future__ import annotations

import math

import torch
from torch import nn

from medseg.losses import probabilities
from medseg.methods.base import Method
from medseg.models import MultiBranch

__all__ = ["ConsistencySchedule", "ScheduledMethod", "BranchMethod", "both_streams", "class_logits", "entropy_map"]


class ConsistencySchedule:
    """The weight of the unsupervised terms over training.

    Args:
        weight: the final weight.
        rampup: fraction of training over which the weight rises as exp(-5 (1 - t)²) (Laine & Aila 2017);
            0 = full weight from the start.
        start_epoch: if set, the weight is 0 before this epoch and `weight` from it on (CDMA's official
            schedule) instead of the ramp-up.
    """

    def __init__(self, weight: float, rampup: float = 0.3, start_epoch: int | None = None) -> None:
        self.weight, self.rampup, self.start_epoch = weight, rampup, start_epoch
        self.value = 0.0 if start_epoch is not None or rampup > 0 else weight

    def update(self, fraction: float, epoch: int) -> float:
        """Set and return the weight at `fraction` (0..1) of training, in `epoch` (1-based)."""
        if self.start_epoch is not None:
            self.value = self.weight if epoch >= self.start_epoch else 0.0
        elif self.rampup <= 0:
            self.value = self.weight
        else:
            t = min(fraction / self.rampup, 1.0)
            self.value = self.weight * math.exp(-5.0 * (1.0 - t) ** 2)
        return self.value


class ScheduledMethod(Method):
    """Base of the semi-supervised methods, whose unsupervised terms are weighted by `self.schedule` over
    training."""

    uses_unlabeled = True
    schedule: ConsistencySchedule

    def set_progress(self, fraction: float, epoch: int) -> None:
        self.schedule.update(fraction, epoch)


class BranchMethod(ScheduledMethod):
    """Base of the semi-supervised methods over a multi-branch model (`MultiBranch`, e.g. MTNet), which
    predict the mean of the branches' probabilities."""

    model_family = "mtnet"

    def check_model(self, model: nn.Module) -> None:
        if not isinstance(model, MultiBranch):
            raise ValueError(f"method {self.name} needs a multi-branch model (mtnet), got {self.model_spec['name']!r}")

    def predict(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return torch.stack([probabilities(z.float()) for z in model.forward_branches(images)]).mean(0)


def both_streams(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """The labelled images then the unlabelled ones (if the batch has them) as one batch
    `(B_l + B_u, C, H, W)`, and B_l: the first B_l outputs are the supervised ones."""
    labeled = batch["image"].shape[0]
    if "unlabeled_image" not in batch:
        return batch["image"], labeled
    return torch.cat([batch["image"], batch["unlabeled_image"]]), labeled


def class_logits(logits: torch.Tensor) -> torch.Tensor:
    """`(B, K, H, W)` logits as logits of a class distribution: a binary head's z becomes `[0, z]`, so that
    softmax gives `[1 - σ(z), σ(z)]`; K > 1 stays as it is."""
    return torch.cat([torch.zeros_like(logits), logits], 1) if logits.shape[1] == 1 else logits


def entropy_map(distribution: torch.Tensor) -> torch.Tensor:
    """Per-pixel entropy `(B, 1, H, W)` of class distributions `(B, K, H, W)` (probabilities summing to 1)."""
    return -(distribution * torch.log(distribution.clamp_min(1e-8))).sum(1, keepdim=True)
