"""Segmentation losses: cross-entropy (binary or multi-class) plus soft Dice."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["IGNORE_INDEX", "HybridLoss", "soft_dice_loss", "probabilities", "hard_prediction"]

# a mask pixel whose class is unknown: pseudo-masks' uncertain band, every pixel of a case stored without mask
IGNORE_INDEX = 255


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Logits `(B, K, H, W)` → probabilities: sigmoid for K = 1, softmax over K otherwise."""
    return torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, dim=1)


def hard_prediction(probs: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Probabilities `(B, K, H, W)` → class indices `(B, H, W)`: threshold for K = 1, argmax otherwise."""
    return (probs[:, 0] >= threshold).long() if probs.shape[1] == 1 else probs.argmax(1)


def _one_hot(mask: torch.Tensor, channels: int) -> torch.Tensor:
    """`(B, H, W)` class indices → `(B, K, H, W)` float targets (K = 1: the foreground channel)."""
    if channels == 1:
        return mask.unsqueeze(1).float()
    return F.one_hot(mask.long(), channels).permute(0, 3, 1, 2).float()


def soft_dice_loss(
    probs: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None, per_image: bool = False
) -> torch.Tensor:
    """1 - soft Dice, averaged over channels (foreground channels only when K > 1).

    Args:
        probs: `(B, K, H, W)` probabilities.
        target: `(B, K, H, W)` one-hot targets.
        valid: optional `(B, 1, H, W)` weights (0 = ignored pixel).
        per_image: Dice of each image, then the mean (matches a per-case Dice metric: a small lesion counts as
            much as a large one); otherwise one Dice over the whole batch (steadier when many masks are empty).
    """
    if probs.shape[1] > 1:
        probs, target = probs[:, 1:], target[:, 1:]
    if valid is not None:
        probs, target = probs * valid, target * valid
    dims = (2, 3) if per_image else (0, 2, 3)
    intersection = (probs * target).sum(dims)
    denominator = probs.sum(dims) + target.sum(dims)
    return 1.0 - ((2 * intersection + 1.0) / (denominator + 1.0)).mean()


class HybridLoss(nn.Module):
    """BCE + soft Dice (one logit channel) or CE + soft Dice (K channels).

    Args:
        ce_weight: weight of the (binary) cross-entropy term.
        dice_weight: weight of the soft Dice term.
        dice: "batch" (one Dice over the batch) or "image" (mean of per-image Dice), see `soft_dice_loss`.

    `forward(logits (B, K, H, W), mask (B, H, W) long)` → scalar. Pixels equal to `IGNORE_INDEX` take no part
    in either term.
    """

    def __init__(self, ce_weight: float = 1.0, dice_weight: float = 1.0, dice: str = "batch") -> None:
        super().__init__()
        if dice not in ("batch", "image"):
            raise ValueError(f"method.dice must be 'batch' or 'image', got {dice!r}")
        self.ce_weight, self.dice_weight, self.per_image = ce_weight, dice_weight, dice == "image"

    def forward(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        known = mask != IGNORE_INDEX
        valid = known.unsqueeze(1).float()  # (B, 1, H, W); no host sync: an all-known mask is just all ones
        classes = torch.where(known, mask, 0).long()
        target = _one_hot(classes, logits.shape[1])
        if logits.shape[1] == 1:
            pixel = F.binary_cross_entropy_with_logits(logits, target, reduction="none")[:, 0]
        else:
            pixel = F.cross_entropy(logits, classes, reduction="none")
        ce = (pixel * known).sum() / known.sum().clamp_min(1)
        dice = soft_dice_loss(probabilities(logits), target, valid, per_image=self.per_image)
        return self.ce_weight * ce + self.dice_weight * dice
