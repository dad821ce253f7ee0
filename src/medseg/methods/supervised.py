"""Fully supervised training: every batch has masks; hybrid CE + Dice loss, on every head of a deeply
supervised model (U-Net++, or a U-Net with `pyramid` heads), or on every map of a model with its own auxiliary
losses (MSGA); optionally with an auxiliary image-level classification (a U-Net's label head)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medseg.losses import HybridLoss, probabilities
from medseg.methods.base import register_method
from medseg.methods.classification import image_labels
from medseg.models import build_model

__all__ = ["Supervised"]


@register_method("supervised")
class Supervised:
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
        if label_weight < 0:
            raise ValueError(f"method.label_weight must be ≥ 0, got {label_weight}")
        if label_weight and (not classes or len(classes) < 2 or len(set(classes)) != len(classes)):
            raise ValueError(
                f"method.label_weight needs method.classes, 2 or more distinct label values; got {classes}"
            )
        if classes is not None and not label_weight:
            raise ValueError("method.classes is used only with method.label_weight > 0 (the auxiliary label task)")
        if "label_classes" in model_spec:
            raise ValueError("set method.label_weight and method.classes instead of model.label_classes")
        if label_weight and model_spec.get("name") != "unet":
            raise ValueError(f"method.label_weight needs model.name: unet, got {model_spec.get('name')!r}")
        self.model_spec = model_spec
        self.label_weight = label_weight
        self.classes = list(classes) if classes else None
        self.loss = HybridLoss(ce_weight, dice_weight, dice)
        self.head_weights = list(head_weights) if head_weights is not None else None
        self.model: nn.Module | None = None

    def build(self) -> nn.Module:
        label_classes = len(self.classes) if self.label_weight else 0
        self.model = build_model(
            {**self.model_spec, "label_classes": label_classes} if label_classes else self.model_spec
        )
        self._unetpp_heads = getattr(self.model, "deep_supervision", False)
        # U-Net++'s heads, or a U-Net's full-resolution head plus its pyramid (none for other models)
        pyramid = len(getattr(self.model, "pyramid_heads", ()))
        heads = len(self.model.levels) if self._unetpp_heads else 1 + pyramid
        weights = self.head_weights
        if weights is not None and heads > 1 and (len(weights) != heads or min(weights) < 0 or sum(weights) <= 0):
            raise ValueError(f"method.head_weights needs {heads} non-negative weights, got {weights}")
        if heads == 1:
            self.weights = [1.0]
        else:
            self.weights = weights or [1.0 if self._unetpp_heads else 0.5**k for k in range(heads)]
        return self.model

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if hasattr(self.model, "training_outputs"):
            # the model's maps are summed (as its paper does) and its auxiliary losses come weighted
            outputs = self.model.training_outputs(batch["image"])
            segmentation = sum(self.loss(logits, batch["mask"]) for logits in outputs.logits)
            total = segmentation + sum(outputs.auxiliary.values())
            logged = {f"loss_{name}": term.detach() for name, term in outputs.auxiliary.items()}
            return {"loss": total, "loss_segmentation": segmentation.detach(), **logged}
        if self.label_weight:
            return self._step_with_labels(batch)
        if len(self.weights) == 1:
            return {"loss": self.loss(self.model(batch["image"]), batch["mask"])}
        # every supervised head's logits (B, K, H, W); a U-Net's pyramid comes upsampled to full size
        heads = self.model.forward_heads if self._unetpp_heads else self.model.forward_pyramid
        losses = [self.loss(logits, batch["mask"]) for logits in heads(batch["image"])]
        return self._weighted(losses)

    def _weighted(self, losses: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        total = sum(w * loss for w, loss in zip(self.weights, losses, strict=True)) / sum(self.weights)
        logged = {f"loss_head{k + 1}": loss.detach() for k, loss in enumerate(losses)} if len(losses) > 1 else {}
        return {"loss": total, **logged}

    def _step_with_labels(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        heads, label_logits = self.model.forward_pyramid_and_label(batch["image"])
        out = self._weighted([self.loss(logits, batch["mask"]) for logits in heads])
        label_loss = F.cross_entropy(label_logits.float(), image_labels(batch, "case", self.classes))
        out["loss_segmentation"] = out["loss"].detach()
        out["loss_label"] = label_loss.detach()
        out["loss"] = out["loss"] + self.label_weight * label_loss
        return out

    def predict(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return probabilities(model(images).float())
