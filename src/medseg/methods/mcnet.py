"""MC-Net+ (Wu et al., MedIA 2022): a shared encoder and decoders that differ in their upsampling; each is
supervised on the labelled images, and on every image each decoder's probabilities are pulled (MSE) towards
the *sharpened* probabilities of every other decoder, `p^(1/τ) / (p^(1/τ) + (1-p)^(1/τ))` with τ = 0.1.
Use `model: {name: mtnet, attentions: [none, none, none], upsampling: [transpose, bilinear, nearest]}`."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medseg.losses import HybridLoss, probabilities
from medseg.methods.base import register_method
from medseg.methods.consistency import BranchMethod, ConsistencySchedule, both_streams

__all__ = ["MutualConsistency", "sharpen"]


def sharpen(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Sharpen probabilities `(B, K, H, W)`: binary (K = 1) by the formula above, K > 1 by p^(1/τ) renormalised."""
    if probs.shape[1] == 1:
        up, down = probs.pow(1 / temperature), (1 - probs).pow(1 / temperature)
        return up / (up + down).clamp_min(1e-12)
    powered = probs.pow(1 / temperature)
    return powered / powered.sum(1, keepdim=True).clamp_min(1e-12)


@register_method("mcnet")
class MutualConsistency(BranchMethod):
    """Args: model_spec (a multi-decoder model with `forward_branches`); temperature τ (0.1); consistency
    (final weight, 0.1); rampup; dice: batch | image."""

    def __init__(
        self,
        model_spec: dict,
        temperature: float = 0.1,
        consistency: float = 0.1,
        rampup: float = 0.3,
        dice: str = "batch",
    ) -> None:
        super().__init__(model_spec)
        self.temperature = temperature
        self.loss = HybridLoss(dice=dice)
        self.schedule = ConsistencySchedule(consistency, rampup)

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        images, labeled = both_streams(batch)
        branches = self.model.forward_branches(images)
        supervised = sum(self.loss(z[:labeled], batch["mask"]) for z in branches)
        probs = [probabilities(z.float()) for z in branches]
        targets = [sharpen(p.detach(), self.temperature) for p in probs]
        pairs = [F.mse_loss(probs[i], targets[j]) for i in range(len(probs)) for j in range(len(probs)) if i != j]
        consistency = torch.stack(pairs).mean()
        return {
            "loss": supervised + self.schedule.value * consistency,
            "loss_supervised": supervised.detach(),
            "loss_consistency": consistency.detach(),
        }
