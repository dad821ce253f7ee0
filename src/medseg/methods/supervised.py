"""Fully supervised training: every batch has masks; hybrid CE + Dice loss, on every head of a deeply
supervised model (U-Net++), or on every map of a model with its own auxiliary losses (MSGA)."""

from __future__ import annotations

from collections.abc import Sequence

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
        dice: "batch" or "image" Dice (see `HybridLoss`).
        head_weights: for models with deep supervision (`forward_heads`), the weight of each head's loss,
            shallow to deep (default: equal).
    """

    def __init__(
        self,
        model_spec: dict,
        ce_weight: float = 1.0,
        dice_weight: float = 1.0,
        dice: str = "batch",
        head_weights: Sequence[float] | None = None,
    ) -> None:
        self.model_spec = model_spec
        self.loss = HybridLoss(ce_weight, dice_weight, dice)
        self.head_weights = list(head_weights) if head_weights is not None else None
        self.model: nn.Module | None = None

    def build(self) -> nn.Module:
        self.model = build_model(self.model_spec)
        if self.head_weights is not None and getattr(self.model, "deep_supervision", False):
            heads = len(self.model.levels)
            if len(self.head_weights) != heads or sum(self.head_weights) <= 0:
                raise ValueError(f"method.head_weights needs {heads} non-negative weights, got {self.head_weights}")
        return self.model

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if hasattr(self.model, "training_outputs"):
            # the model's maps are summed (as its paper does) and its auxiliary losses come weighted
            outputs = self.model.training_outputs(batch["image"])
            segmentation = sum(self.loss(logits, batch["mask"]) for logits in outputs.logits)
            total = segmentation + sum(outputs.auxiliary.values())
            logged = {f"loss_{name}": term.detach() for name, term in outputs.auxiliary.items()}
            return {"loss": total, "loss_segmentation": segmentation.detach(), **logged}
        if not getattr(self.model, "deep_supervision", False):
            return {"loss": self.loss(self.model(batch["image"]), batch["mask"])}
        losses = [self.loss(logits, batch["mask"]) for logits in self.model.forward_heads(batch["image"])]
        weights = self.head_weights or [1.0] * len(losses)
        total = sum(w * loss for w, loss in zip(weights, losses, strict=True)) / sum(weights)
        return {"loss": total, **{f"loss_head{k + 1}": loss.detach() for k, loss in enumerate(losses)}}

    def predict(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return probabilities(model(images).float())
