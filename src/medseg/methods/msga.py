"""Training the multi-scale self-guided attention network (Sinha & Dolz, IEEE JBHI 2020; `model: msga`).

The loss of the paper: hybrid CE + Dice on each of the eight segmentation maps (summed), plus the guided loss
(MSE between the step-1 and step-2 encodings of each scale's semantic modules) and the reconstruction loss
(MSE between each semantic module's decoding and its input), weighted 0.25 and 0.1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medseg.losses import HybridLoss
from medseg.methods.base import Method, register_method
from medseg.models.msga import MSGA

__all__ = ["GuidedAttentionTraining"]


@register_method("msga")
class GuidedAttentionTraining(Method):
    """Args:
    model_spec: an `msga` spec.
    guided_weight, reconstruction_weight: weights of the auxiliary losses (the paper's 0.25 and 0.1).
    ce_weight, dice_weight, dice: the segmentation loss on each map (see `HybridLoss`).
    """

    def __init__(
        self,
        model_spec: dict,
        guided_weight: float = 0.25,
        reconstruction_weight: float = 0.1,
        ce_weight: float = 1.0,
        dice_weight: float = 1.0,
        dice: str = "batch",
    ) -> None:
        super().__init__(model_spec)
        if guided_weight < 0 or reconstruction_weight < 0:
            raise ValueError(
                f"method.guided_weight and reconstruction_weight must be ≥ 0, got {guided_weight}, "
                f"{reconstruction_weight}"
            )
        self.guided_weight, self.reconstruction_weight = guided_weight, reconstruction_weight
        self.loss = HybridLoss(ce_weight, dice_weight, dice)

    def check_model(self, model: nn.Module) -> None:
        if not isinstance(model, MSGA):
            raise ValueError(f"method msga trains model msga, got {self.model_spec['name']!r}")

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        maps = self.model.forward_maps(batch["image"])
        segmentation = sum(self.loss(logits, batch["mask"]) for logits in maps.logits)
        guided = sum(F.mse_loss(first.float(), second.float()) for first, second in maps.codes)
        reconstruction = sum(F.mse_loss(decoded.float(), inputs.float()) for decoded, inputs in maps.reconstructions)
        guided, reconstruction = self.guided_weight * guided, self.reconstruction_weight * reconstruction
        return {
            "loss": segmentation + guided + reconstruction,
            "loss_segmentation": segmentation.detach(),
            "loss_guided": guided.detach(),
            "loss_reconstruction": reconstruction.detach(),
        }
