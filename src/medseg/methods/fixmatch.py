"""Weak-to-strong consistency (FixMatch, Sohn et al., NeurIPS 2020, as UniMatch, Yang et al., CVPR 2023, applies it
to segmentation): an EMA teacher's hard prediction on an unlabelled image as the loader augmented it (the weak view)
is the target of the student on a strong view of the same image, on the pixels the teacher is sure of only.

The strong view moves no pixel, so the pseudo-label stays aligned with it: per image a random gamma, contrast and
brightness change, a Gaussian blur and Gaussian noise; then, with probability `cutmix`, a rectangle pasted from
another unlabelled image of the batch, with that image's pseudo-label and confidence (CutMix).

    loss = hybrid(student(labelled), mask) + weight · hybrid(student(strong), pseudo-label where confidence ≥ threshold)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from medseg.losses import IGNORE_INDEX, HybridLoss, hard_prediction, probabilities
from medseg.methods.base import Method, register_method
from medseg.methods.bcp import copy_paste, paste_mask
from medseg.methods.teacher import EmaTeacher

__all__ = ["FixMatch", "strong_view", "gaussian_blur", "confidence"]


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, radius: int = 3) -> torch.Tensor:
    """Images `(B, C, H, W)` blurred with a separable Gaussian of standard deviation `sigma` `(B,)` (pixels) per
    image, over a `2 · radius + 1` window with reflected borders."""
    b, c, h, w = images.shape
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    kernels = torch.exp(-0.5 * (offsets[None] / sigma[:, None].clamp_min(1e-3)) ** 2)
    kernels = (kernels / kernels.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (B·C, 2r + 1)
    x = F.pad(images.reshape(1, b * c, h, w), (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernels[:, None, None, :], groups=b * c)
    x = F.conv2d(x, kernels[:, None, :, None], groups=b * c)
    return x.reshape(b, c, h, w)


def strong_view(
    images: torch.Tensor,
    gamma: float = 0.3,
    contrast: float = 0.3,
    brightness: float = 0.2,
    blur: float = 1.5,
    noise: float = 0.05,
) -> torch.Tensor:
    """A strong photometric view of `(B, C, H, W)` images that moves no pixel. Per image, on its intensities scaled
    to [0, 1]: gamma in [1 - gamma, 1 / (1 - gamma)] (log-uniform), contrast × [1 - contrast, 1 + contrast] about
    the mean, a brightness shift in ±brightness, a Gaussian blur of σ in [0.1, blur] pixels and noise of std
    `noise`; then back to the image's own range. Draws from torch's global generator."""
    b = images.shape[0]
    shape = (b, 1, 1, 1)

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(shape, device=images.device)

    low = images.amin(dim=(1, 2, 3), keepdim=True)
    span = (images.amax(dim=(1, 2, 3), keepdim=True) - low).clamp_min(1e-6)
    unit = ((images - low) / span).pow(torch.exp(uniform(math.log(1 - gamma), -math.log(1 - gamma))))
    mean = unit.mean(dim=(1, 2, 3), keepdim=True)
    unit = (unit - mean) * uniform(1 - contrast, 1 + contrast) + mean + uniform(-brightness, brightness)
    unit = gaussian_blur(unit, uniform(0.1, blur).flatten())
    unit = unit + noise * torch.randn_like(unit)
    return unit * span + low


def confidence(probs: torch.Tensor) -> torch.Tensor:
    """`(B, H, W)` probability of the predicted class of `(B, K, H, W)` probabilities (sigmoid for K = 1)."""
    return torch.maximum(probs[:, 0], 1 - probs[:, 0]) if probs.shape[1] == 1 else probs.amax(1)


@register_method("fixmatch")
class FixMatch(Method):
    """Args:
    model_spec: any segmentation model.
    threshold: the teacher's confidence a pixel needs to be a target (0.95, UniMatch's).
    weight: weight of the unlabelled term (1: UniMatch's equal halves).
    cutmix: probability of pasting a rectangle between the strong views (0.5); patch: its side as a share of the
        image's (0.5).
    ema_decay: the teacher's per-step decay (0.99; 0 makes the teacher the student of the previous step).
    dice: "batch" or "image" Dice in both terms.

    The teacher predicts in eval mode (its batch-norm running statistics are the student's); it starts as a copy of
    the student at the first step and is saved with the checkpoints.
    """

    uses_unlabeled = True

    def __init__(
        self,
        model_spec: dict,
        threshold: float = 0.95,
        weight: float = 1.0,
        cutmix: float = 0.5,
        patch: float = 0.5,
        ema_decay: float = 0.99,
        dice: str = "batch",
    ) -> None:
        super().__init__(model_spec)
        if not 0 <= cutmix <= 1 or not 0 < patch < 1 or not 0 <= threshold <= 1:
            raise ValueError(
                f"method.cutmix and method.threshold must be in [0, 1] and method.patch in (0, 1), got {cutmix}, "
                f"{threshold}, {patch}"
            )
        self.threshold, self.weight, self.cutmix, self.patch = threshold, weight, cutmix, patch
        self.loss = HybridLoss(dice=dice)
        self.ema = EmaTeacher(ema_decay)

    @torch.no_grad()
    def pseudo_labels(self, unlabeled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's hard prediction `(B, H, W)` on the weak view and its confidence `(B, H, W)`."""
        teacher = self.ema.start(self.model).eval()
        probs = probabilities(teacher(unlabeled).float())
        return hard_prediction(probs), confidence(probs)

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        unlabeled = batch["unlabeled_image"]
        labels, sure = self.pseudo_labels(unlabeled)
        strong = strong_view(unlabeled)
        if unlabeled.shape[0] > 1 and float(torch.rand(())) < self.cutmix:
            region = paste_mask(*unlabeled.shape[-2:], self.patch, unlabeled.device)
            strong, labels, sure = (copy_paste(x, x.roll(1, 0), region) for x in (strong, labels, sure))
        confident = sure >= self.threshold
        supervised = self.loss(self.model(batch["image"]), batch["mask"])
        unsupervised = self.loss(self.model(strong), torch.where(confident, labels, IGNORE_INDEX))
        return {
            "loss": supervised + self.weight * unsupervised,
            "loss_supervised": supervised.detach(),
            "loss_unlabeled": unsupervised.detach(),
            "confident_share": confident.float().mean(),
        }

    def after_step(self) -> None:
        self.ema.update(self.model)

    def state_dict(self) -> dict:
        """The teacher's weights, so that a resumed run keeps its teacher."""
        return self.ema.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.ema.load_state_dict(state, self.model)
