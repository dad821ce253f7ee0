"""Fully supervised training: every batch has masks; hybrid CE + Dice loss."""

from __future__ import annotations

import torch
from torch import nn

from medseg.losses import HybridLoss, probabilities
from medseg.methods.base import register_method
from medseg.models import build_model

__all__ = ["Supervised"]


@register_method("supervised")
class Supervised:
    """Plain supervised segmentation.

    Args:
        model_spec: the config's `model:` section.
        ce_weight, dice_weight: weights of the hybrid loss terms.
    """

    def __init__(self, model_spec: dict, ce_weight: float = 1.0, dice_weight: float = 1.0) -> None:
        self.model_spec = model_spec
        self.loss = HybridLoss(ce_weight, dice_weight)
        self.model: nn.Module | None = None

    def build(self) -> nn.Module:
        self.model = build_model(self.model_spec)
        return self.model

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        logits = self.model(batch["image"])
        return {"loss": self.loss(logits, batch["mask"])}

    def predict(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return probabilities(model(images).float())
