"""Cross-consistency training (Ouali et al., CVPR 2020): a shared encoder, a main decoder and auxiliary
decoders that each see the encoder's features under a different perturbation (feature noise, feature
dropout, channel dropout). Every decoder is supervised on the labelled images (their losses summed, as the
branches of CDMA and MC-Net+ are; the original CCT supervises only the main decoder); on every image the
auxiliary decoders' probabilities are pulled (MSE) towards the main decoder's, detached, with a ramped-up
weight. Prediction: the main decoder."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medseg.losses import HybridLoss, probabilities
from medseg.methods.base import register_method
from medseg.methods.consistency import ConsistencySchedule, ScheduledMethod, both_streams
from medseg.methods.perturbations import PERTURBATIONS
from medseg.models import build_model

__all__ = ["CrossConsistencyTraining"]


@register_method("cct")
class CrossConsistencyTraining(ScheduledMethod):
    """Args:
    model_spec: an `mtnet` spec; its decoders default to one plain main decoder plus one per perturbation.
    perturbations: one auxiliary decoder each, from `noise`, `feature_dropout`, `dropout`.
    consistency: final weight of the consistency term (0.1); rampup; dice: batch | image.
    """

    uses_unlabeled = True

    def __init__(
        self,
        model_spec: dict,
        perturbations: Sequence[str] = ("noise", "feature_dropout", "dropout"),
        consistency: float = 0.1,
        rampup: float = 0.3,
        dice: str = "batch",
    ) -> None:
        unknown = [name for name in perturbations if name not in PERTURBATIONS]
        if unknown or not perturbations:
            raise ValueError(f"method.perturbations must be a non-empty list of {list(PERTURBATIONS)}, got {unknown}")
        self.perturbations = [PERTURBATIONS[name] for name in perturbations]
        decoders = len(perturbations) + 1
        self.model_spec = {"attentions": ["none"] * decoders, **model_spec, "main_branch": 0}
        self.loss = HybridLoss(dice=dice)
        self.schedule = ConsistencySchedule(consistency, rampup)
        self.model: nn.Module | None = None

    def build(self) -> nn.Module:
        if self.model_spec["name"] != "mtnet" or len(self.model_spec["attentions"]) != len(self.perturbations) + 1:
            raise ValueError(
                f"method cct needs model mtnet with {len(self.perturbations) + 1} decoders (a main one and one per "
                f"perturbation), got {self.model_spec['name']!r} with attentions {self.model_spec.get('attentions')}"
            )
        self.model = build_model(self.model_spec)
        return self.model

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        images, labeled = both_streams(batch)
        size = images.shape[-2:]
        skips = self.model.encode(images)
        main = self.model.decode(skips, 0, size)
        auxiliary = [
            self.model.decode([perturb(s) for s in skips], i + 1, size) for i, perturb in enumerate(self.perturbations)
        ]
        supervised = sum(self.loss(z[:labeled], batch["mask"]) for z in [main, *auxiliary])
        target = probabilities(main.detach().float())
        consistency = torch.stack([F.mse_loss(probabilities(z.float()), target) for z in auxiliary]).mean()
        return {
            "loss": supervised + self.schedule.value * consistency,
            "loss_supervised": supervised.detach(),
            "loss_consistency": consistency.detach(),
        }

    def predict(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return probabilities(model(images).float())
