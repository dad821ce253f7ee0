"""Entropy minimisation (Grandvalet & Bengio 2005; Vu et al. 2019 for segmentation): supervised loss on the
labelled images plus the ramped-up mean pixel entropy of the predictions on the unlabelled ones."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medseg.losses import HybridLoss
from medseg.methods.base import register_method
from medseg.methods.consistency import ConsistencySchedule, ScheduledMethod, both_streams, class_logits, entropy_map

__all__ = ["EntropyMinimization", "pixel_entropy"]


def pixel_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of the entropy of each pixel's class distribution, `(B, K, H, W)` logits → scalar."""
    return entropy_map(F.softmax(class_logits(logits).float(), 1)).mean()


@register_method("entropy_minimization")
class EntropyMinimization(ScheduledMethod):
    """Args: model_spec; consistency: final weight of the entropy term (0.1); rampup: its ramp-up fraction."""

    def __init__(self, model_spec: dict, consistency: float = 0.1, rampup: float = 0.3, dice: str = "batch") -> None:
        super().__init__(model_spec)
        self.loss = HybridLoss(dice=dice)
        self.schedule = ConsistencySchedule(consistency, rampup)

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        images, labeled = both_streams(batch)
        logits = self.model(images)
        supervised = self.loss(logits[:labeled], batch["mask"])
        entropy = pixel_entropy(logits[labeled:])
        return {
            "loss": supervised + self.schedule.value * entropy,
            "loss_supervised": supervised.detach(),
            "loss_entropy": entropy.detach(),
        }
