"""Cross-consistency training (Ouali et al., CVPR 2020): a shared encoder, a main decoder and auxiliary
decoders that each see the encoder's features under a different perturbation (feature noise, feature
dropout, channel dropout). Every decoder is supervised on the labelled images (their losses summed, as the
branches of CDMA and MC-Net+ are; the original CCT supervises only the main decoder); on every image the
auxiliary decoders' probabilities are pulled (MSE) towards the main decoder's, detached, with a ramped-up
weight. Prediction: the main decoder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from medseg.losses import HybridLoss, probabilities
from medseg.methods.base import register_method
from medseg.methods.consistency import ConsistencySchedule, ScheduledMethod, both_streams
from medseg.methods.perturbations import PERTURBATIONS

__all__ = ["CrossConsistencyTraining"]


@register_method("cct")
class CrossConsistencyTraining(ScheduledMethod):
    """Args:
    model_spec: an `mtnet` spec; its decoders default to one plain main decoder plus one per perturbation, and
        decoder 0 is the main one (`main_branch: 0`, what `forward` and prediction use).
    perturbations: one auxiliary decoder each, from `noise`, `feature_dropout`, `dropout`.
    consistency: final weight of the consistency term (0.1); rampup; dice: batch | image.
    """

    model_family = "mtnet"

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
        super().__init__(model_spec)
        self.perturbations = [PERTURBATIONS[name] for name in perturbations]
        self.loss = HybridLoss(dice=dice)
        self.schedule = ConsistencySchedule(consistency, rampup)

    @classmethod
    def complete_model_spec(cls, model_spec: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        """An `mtnet` with one plain decoder per perturbation plus the main one (decoder 0)."""
        decoders = len(options.get("perturbations", ("noise", "feature_dropout", "dropout"))) + 1
        spec = {"attentions": ["none"] * decoders, "main_branch": 0, **model_spec}
        if spec["name"] != "mtnet" or len(spec["attentions"]) != decoders or spec["main_branch"] != 0:
            raise ValueError(
                f"method cct needs model mtnet with {decoders} decoders (main_branch 0, and one per perturbation), "
                f"got {spec['name']!r} with attentions {spec.get('attentions')}, main_branch {spec.get('main_branch')}"
            )
        return spec

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
