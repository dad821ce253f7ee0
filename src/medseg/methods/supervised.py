"""Fully supervised training: every batch has masks; hybrid CE + Dice loss, on every head of a deeply
supervised model (U-Net++, or a U-Net with `pyramid` heads); optionally with an auxiliary image-level
classification (a U-Net's label head)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medseg.losses import HybridLoss
from medseg.methods.base import Method, register_method
from medseg.methods.classification import image_labels
from medseg.methods.deep_supervision import head_logits, head_weights, weighted_heads
from medseg.models.msga import MSGA

__all__ = ["Supervised"]


@register_method("supervised")
class Supervised(Method):
    """Plain supervised segmentation.

    Args:
        model_spec: the config's `model:` section.
        ce_weight, dice_weight: weights of the hybrid loss terms.
        dice: "batch" or "image" Dice (see `HybridLoss`).
        head_weights: for models with deep supervision, the weight of each head's loss: U-Net++ heads shallow to
            deep (default: equal); a U-Net's full-resolution head, then its pyramid heads at 1/2, 1/4, ...
            (default: 1, 1/2, 1/4, ..., as nnU-Net weighs its scales).
        label_weight: if > 0, a U-Net also learns the cases' image-level labels (`classes`, e.g. the tumour
            type) from its bottleneck, with this weight on the cross-entropy; inference ignores that head.
        classes: with `label_weight`, the label values in class-index order.
    """

    def __init__(
        self,
        model_spec: dict,
        ce_weight: float = 1.0,
        dice_weight: float = 1.0,
        dice: str = "batch",
        head_weights: Sequence[float] | None = None,
        label_weight: float = 0.0,
        classes: Sequence[int] | None = None,
    ) -> None:
        super().__init__(model_spec)
        if label_weight < 0:
            raise ValueError(f"method.label_weight must be ≥ 0, got {label_weight}")
        if label_weight and (not classes or len(classes) < 2 or len(set(classes)) != len(classes)):
            raise ValueError(
                f"method.label_weight needs method.classes, 2 or more distinct label values; got {classes}"
            )
        if classes is not None and not label_weight:
            raise ValueError("method.classes is used only with method.label_weight > 0 (the auxiliary label task)")
        self.label_weight = label_weight
        self.classes = list(classes) if classes else None
        self.loss = HybridLoss(ce_weight, dice_weight, dice)
        self.head_weights = list(head_weights) if head_weights is not None else None
        self.weights = [1.0]

    @classmethod
    def complete_model_spec(cls, model_spec: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        """With `label_weight`, the U-Net gets `label_classes = len(classes)`: the head the label task trains."""
        label_weight, classes = options.get("label_weight", 0.0), options.get("classes") or []
        wanted = len(classes) if label_weight else 0
        if label_weight and model_spec.get("name") != "unet":
            raise ValueError(f"method.label_weight needs model.name: unet, got {model_spec.get('name')!r}")
        if model_spec.get("label_classes", wanted) != wanted:
            raise ValueError("set method.label_weight and method.classes instead of model.label_classes")
        return {**model_spec, "label_classes": wanted} if wanted else model_spec

    def check_model(self, model: nn.Module) -> None:
        if isinstance(model, MSGA):
            raise ValueError("model msga is trained by method msga (its guided and reconstruction losses)")
        self.weights = head_weights(model, self.head_weights)

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.label_weight:
            return self._step_with_labels(batch)
        heads = head_logits(self.model, batch["image"], self.weights)
        return weighted_heads([self.loss(logits, batch["mask"]) for logits in heads], self.weights)

    def _step_with_labels(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        heads, label_logits = self.model.forward_heads_and_label(batch["image"])
        out = weighted_heads([self.loss(logits, batch["mask"]) for logits in heads], self.weights)
        label_loss = F.cross_entropy(label_logits.float(), image_labels(batch, "case", self.classes))
        out["loss_segmentation"] = out["loss"].detach()
        out["loss_label"] = label_loss.detach()
        out["loss"] = out["loss"] + self.label_weight * label_loss
        return out
