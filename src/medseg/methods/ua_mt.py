"""Uncertainty-aware Mean Teacher (Yu et al., MICCAI 2019): Mean Teacher whose consistency counts only the
pixels where the teacher is certain. The teacher's uncertainty is the entropy of its mean prediction over
`passes` noisy forward passes; the certainty threshold rises from 0.75·log K to log K over training."""

from __future__ import annotations

import math

import torch

from medseg.methods.base import register_method
from medseg.methods.consistency import class_logits, entropy_map
from medseg.methods.mean_teacher import MeanTeacher

__all__ = ["UncertaintyAwareMeanTeacher"]


@register_method("ua_mt")
class UncertaintyAwareMeanTeacher(MeanTeacher):
    """Args as for `mean_teacher`, plus `passes`: noisy teacher passes for the uncertainty (default 4)."""

    def __init__(
        self,
        model_spec: dict,
        passes: int = 4,
        ema_decay: float = 0.99,
        consistency: float = 0.1,
        rampup: float = 0.3,
        noise: float = 0.1,
        dice: str = "batch",
    ) -> None:
        super().__init__(model_spec, ema_decay, consistency, rampup, noise, dice)
        self.passes = passes
        self.fraction = 0.0

    def set_progress(self, fraction: float, epoch: int) -> None:
        super().set_progress(fraction, epoch)
        self.fraction = fraction

    def _consistency(
        self, student: torch.Tensor, unlabeled: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with torch.no_grad():
            runs = [
                torch.softmax(class_logits(self.teacher(self._noisy(unlabeled)).float()), 1) for _ in range(self.passes)
            ]
            mean = torch.stack(runs).mean(0)
            uncertainty = entropy_map(mean)  # (B, 1, H, W)
            target = mean[:, 1:] if student.shape[1] == 1 else mean
            # Yu et al.: from 0.75 to 1 of the largest possible entropy, log K, on a sigmoid ramp over all training
            ramp = math.exp(-5.0 * (1.0 - min(self.fraction, 1.0)) ** 2)
            threshold = (0.75 + 0.25 * ramp) * math.log(mean.shape[1])
            certain = (uncertainty < threshold).float()
        squared = (student - target) ** 2 * certain
        consistency = squared.sum() / (certain.sum() * student.shape[1]).clamp_min(1.0)
        return consistency, {"certain_share": certain.mean()}
