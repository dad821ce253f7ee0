"""Bidirectional copy-paste (BCP; Bai et al., CVPR 2023): a mean-teacher framework in which labelled and unlabelled
images exchange a random rectangle in both directions.

Each step splits the labelled batch into halves (a, b) and the unlabelled batch into halves (u_a, u_b), and draws
one rectangle R (a share `patch` of each side). The student learns

    u_a outside R, a inside R   against   teacher's pseudo-label of u_a outside, a's true mask inside
    b outside R, u_b inside R   against   b's true mask outside, teacher's pseudo-label of u_b inside

with the pseudo-labelled pixels weighted `unlabeled_weight` (0.5) and the true ones 1; each region's loss is
(CE + Dice) / 2. Pseudo-labels are the teacher's hard prediction, reduced to its largest connected component (the
paper's post-processing for single-object masks). Before that, for the first `pretrain` share of training, the
student learns from the labelled images alone, copy-pasted into each other (a outside R, b inside); the teacher
starts as a copy of the student when self-training begins, then follows it as an EMA (`ema_decay`).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from medseg.losses import IGNORE_INDEX, HybridLoss, hard_prediction, probabilities
from medseg.methods.base import Method, register_method
from medseg.methods.teacher import EmaTeacher, TeacherHooks
from medseg.methods.views import copy_paste, paste_mask

__all__ = ["BidirectionalCopyPaste", "largest_component"]


def largest_component(masks: torch.Tensor) -> torch.Tensor:
    """`(B, H, W)` class indices with each foreground class reduced to its largest 8-connected component."""
    array = masks.cpu().numpy()
    out = np.zeros_like(array)
    for k, mask in enumerate(array):
        for value in np.unique(mask[mask > 0]):
            labels, count = ndimage.label(mask == value, structure=np.ones((3, 3)))
            if count:
                sizes = np.bincount(labels.ravel())[1:]
                out[k][labels == 1 + int(sizes.argmax())] = value
    return torch.from_numpy(out).to(masks.device)


@register_method("bcp")
class BidirectionalCopyPaste(TeacherHooks, Method):
    """Args:
    model_spec: any segmentation model.
    pretrain: share of training spent on copy-pasted labelled images before self-training (the paper: 10k of
        40k iterations, 0.25).
    patch: side of the pasted rectangle as a share of the image's (2/3).
    unlabeled_weight: weight of the pseudo-labelled region's loss (0.5; the true masks' weigh 1).
    ema_decay: the teacher's per-step decay (0.99).
    largest_component_only: keep only each class's largest connected component of the pseudo-labels.
    """

    uses_unlabeled = True

    def __init__(
        self,
        model_spec: dict,
        pretrain: float = 0.25,
        patch: float = 2 / 3,
        unlabeled_weight: float = 0.5,
        ema_decay: float = 0.99,
        largest_component_only: bool = True,
    ) -> None:
        super().__init__(model_spec)
        if not 0 <= pretrain < 1 or not 0 < patch < 1:
            raise ValueError(f"method.pretrain must be in [0, 1) and method.patch in (0, 1), got {pretrain}, {patch}")
        self.pretrain, self.patch, self.unlabeled_weight = pretrain, patch, unlabeled_weight
        self.largest_component_only = largest_component_only
        self.loss = HybridLoss(0.5, 0.5)  # (CE + Dice) / 2 of each region
        self.ema = EmaTeacher(ema_decay)
        self.self_training = pretrain == 0

    def set_progress(self, fraction: float, epoch: int) -> None:
        self.self_training = fraction >= self.pretrain

    def _region_loss(self, logits: torch.Tensor, target: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
        """The hybrid loss of `logits` against `target` on the pixels of `region` `(H, W)` only."""
        return self.loss(logits, torch.where(region[None], target, IGNORE_INDEX))

    def _mixed_loss(
        self, logits: torch.Tensor, outside: torch.Tensor, inside: torch.Tensor, region: torch.Tensor, weights
    ) -> torch.Tensor:
        return weights[0] * self._region_loss(logits, outside, ~region) + weights[1] * self._region_loss(
            logits, inside, region
        )

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        images, masks = batch["image"], batch["mask"]
        half = images.shape[0] // 2
        if half == 0:
            raise ValueError("method bcp pastes between two halves of the labelled batch: train.batch_size ≥ 2")
        region = paste_mask(*images.shape[-2:], self.patch, images.device)
        if not self.self_training:
            mixed = copy_paste(images[:half], images[half : 2 * half], region)
            loss = self._mixed_loss(self.model(mixed), masks[:half], masks[half : 2 * half], region, (1.0, 1.0))
            zero = loss.detach() * 0
            return {"loss": loss, "loss_labeled_mix": loss.detach(), "loss_unlabeled_mix": zero}
        return self._self_training_step(images, masks, batch["unlabeled_image"], region)

    def _self_training_step(
        self, images: torch.Tensor, masks: torch.Tensor, unlabeled: torch.Tensor, region: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        half = min(images.shape[0], unlabeled.shape[0]) // 2
        if half == 0:
            raise ValueError("method bcp pastes between two unlabelled images per step: train.unlabeled_batch_size ≥ 2")
        a, b, mask_a, mask_b = images[:half], images[half : 2 * half], masks[:half], masks[half : 2 * half]
        u_a, u_b = unlabeled[:half], unlabeled[half : 2 * half]
        pseudo_a, pseudo_b = self._pseudo_labels(torch.cat([u_a, u_b])).split(half)
        # one student pass over both mixed halves
        logits = self.model(torch.cat([copy_paste(u_a, a, region), copy_paste(b, u_b, region)]))
        w = self.unlabeled_weight
        unlabeled_mix = self._mixed_loss(logits[:half], pseudo_a, mask_a, region, (w, 1.0))
        labeled_mix = self._mixed_loss(logits[half:], mask_b, pseudo_b, region, (1.0, w))
        return {
            "loss": unlabeled_mix + labeled_mix,
            "loss_labeled_mix": labeled_mix.detach(),
            "loss_unlabeled_mix": unlabeled_mix.detach(),
        }

    @torch.no_grad()
    def _pseudo_labels(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's hard prediction `(B, H, W)` (its largest component per class, by default)."""
        teacher = self.ema.start(self.model)  # self-training begins: the teacher starts from the pre-trained student
        teacher.train(self.model.training)
        labels = hard_prediction(probabilities(teacher(images).float()))
        return largest_component(labels) if self.largest_component_only else labels
