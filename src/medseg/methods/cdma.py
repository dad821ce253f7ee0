"""CDMA: semi-supervised segmentation by cross distillation of multiple attentions (Zhong et al., MICCAI 2023).

MTNet's three branches (CA, SA, CBAM decoders) are each supervised on the labelled images
(0.5·CE + 0.5·Dice by default). On every image, labelled or not, each branch learns from the other two
through cross-decoder knowledge distillation, `KL(softmax(z_j / T) ‖ softmax(z_i / T))·T²` for every ordered
pair i ≠ j with the teacher j detached, and the entropy of the branches' mean probability is minimised. The
unsupervised terms are weighted by a ramp-up (or CDMA's step schedule). Prediction: the mean of the three
branches' probabilities.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medseg.losses import HybridLoss
from medseg.methods.base import register_method
from medseg.methods.consistency import BranchMethod, ConsistencySchedule, both_streams, class_logits, entropy_map

__all__ = ["CDMA", "cross_distillation", "mean_entropy"]


def cross_distillation(branches: list[torch.Tensor], temperature: float) -> torch.Tensor:
    """Mean over ordered pairs (student i, teacher j ≠ i) of the pixel-mean KL between softened class
    distributions, times T². Branch logits `(B, K, H, W)`; zero when the branches agree."""
    log_student = [F.log_softmax(class_logits(z).float() / temperature, 1) for z in branches]
    teacher = [F.softmax(class_logits(z).detach().float() / temperature, 1) for z in branches]
    terms = [
        (teacher[j] * (torch.log(teacher[j].clamp_min(1e-8)) - log_student[i])).sum(1).mean()
        for i in range(len(branches))
        for j in range(len(branches))
        if i != j
    ]
    return torch.stack(terms).mean() * temperature**2


def mean_entropy(branches: list[torch.Tensor]) -> torch.Tensor:
    """Pixel-mean entropy of the branches' mean class distribution (uncertainty minimisation)."""
    return entropy_map(torch.stack([F.softmax(class_logits(z).float(), 1) for z in branches]).mean(0)).mean()


@register_method("cdma")
class CDMA(BranchMethod):
    """Args:
    model_spec: an `mtnet` spec (any model with `forward_branches`).
    temperature: T of the distillation (default 10).
    ce_weight, dice_weight: the supervised loss per branch (0.5 / 0.5).
    consistency: final weight of the distillation + entropy terms (0.1).
    rampup: fraction of training over which that weight ramps up; start_epoch: CDMA's step schedule instead.
    """

    def __init__(
        self,
        model_spec: dict,
        temperature: float = 10.0,
        ce_weight: float = 0.5,
        dice_weight: float = 0.5,
        consistency: float = 0.1,
        rampup: float = 0.3,
        start_epoch: int | None = None,
    ) -> None:
        super().__init__(model_spec)
        self.temperature = temperature
        self.loss = HybridLoss(ce_weight, dice_weight)
        self.schedule = ConsistencySchedule(consistency, rampup, start_epoch)

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        images, labeled = both_streams(batch)
        branches = self.model.forward_branches(images)
        supervised = sum(self.loss(z[:labeled], batch["mask"]) for z in branches)
        distillation = cross_distillation(branches, self.temperature)
        entropy = mean_entropy(branches)
        weight = self.schedule.value
        return {
            "loss": supervised + weight * (distillation + entropy),
            "loss_supervised": supervised.detach(),
            "loss_distillation": distillation.detach(),
            "loss_entropy": entropy.detach(),
        }
