"""Uncertainty rectified pyramid consistency (Luo et al., MICCAI 2021 / MedIA 2022): a U-Net with heads on
several decoder scales (upsampled to full size), each supervised on the labelled images. On every image each
scale's probabilities p_s are pulled towards the scales' mean p̄ by an MSE weighted per pixel by exp(-D_s),
where D_s = KL(p_s ‖ p̄) is the scale's uncertainty, plus the mean of D_s itself. The coarser heads see
perturbed features (channel dropout, feature dropout, feature noise). Prediction: the full-resolution head."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from medseg.losses import HybridLoss
from medseg.methods.base import register_method
from medseg.methods.consistency import ConsistencySchedule, ScheduledMethod, both_streams, class_logits
from medseg.methods.perturbations import PERTURBATIONS

__all__ = ["PyramidConsistency", "rectified_pyramid_consistency"]


def rectified_pyramid_consistency(pyramid: list[torch.Tensor]) -> torch.Tensor:
    """URPC's unsupervised term for logits `(B, K, H, W)` per scale; zero when the scales agree."""
    distributions = [F.softmax(class_logits(z).float(), 1) for z in pyramid]
    mean = torch.stack(distributions).mean(0)
    terms = []
    for p in distributions:
        uncertainty = (p * (torch.log(p.clamp_min(1e-8)) - torch.log(mean.clamp_min(1e-8)))).sum(1, keepdim=True)
        weight = torch.exp(-uncertainty)
        squared = (p - mean).pow(2).sum(1, keepdim=True)
        terms.append((squared * weight).mean() / (weight.mean() + 1e-8) + uncertainty.mean())
    return torch.stack(terms).mean()


@register_method("urpc")
class PyramidConsistency(ScheduledMethod):
    """Args:
    model_spec: a `unet` spec; `pyramid` (the number of coarser heads) defaults to 3.
    consistency: final weight of the pyramid term (0.1); rampup; dice: batch | image.
    """

    _perturbations = (PERTURBATIONS["dropout"], PERTURBATIONS["feature_dropout"], PERTURBATIONS["noise"])

    def __init__(self, model_spec: dict, consistency: float = 0.1, rampup: float = 0.3, dice: str = "batch") -> None:
        super().__init__(model_spec)
        self.loss = HybridLoss(dice=dice)
        self.schedule = ConsistencySchedule(consistency, rampup)

    @classmethod
    def complete_model_spec(cls, model_spec: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        """A `unet` with 3 pyramid heads unless the spec says how many (≥ 1)."""
        spec = {"pyramid": 3, **model_spec}
        if spec["name"] != "unet" or spec["pyramid"] < 1:
            raise ValueError(
                f"method urpc needs model unet with pyramid ≥ 1, got {spec['name']!r} with pyramid {spec['pyramid']}"
            )
        return spec

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        images, labeled = both_streams(batch)
        pyramid = self.model.forward_heads(images, self._perturbations)
        supervised = torch.stack([self.loss(z[:labeled], batch["mask"]) for z in pyramid]).mean()
        consistency = rectified_pyramid_consistency(pyramid)
        return {
            "loss": supervised + self.schedule.value * consistency,
            "loss_supervised": supervised.detach(),
            "loss_consistency": consistency.detach(),
        }
