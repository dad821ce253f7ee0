"""Cross pseudo supervision (Chen et al., CVPR 2021): two networks of the same architecture, initialised
differently, are each supervised on the labelled images, and on every image each one learns from the
other's hard pseudo-labels (cross-entropy), with a ramped-up weight. Prediction: the mean of the two."""

from __future__ import annotations

import torch
from torch import nn

from medseg.losses import HybridLoss, hard_prediction, probabilities
from medseg.methods.base import register_method
from medseg.methods.consistency import ConsistencySchedule, ScheduledMethod, both_streams
from medseg.models import build_model

__all__ = ["CrossPseudoSupervision", "TwinNetworks"]


class TwinNetworks(nn.Module):
    """Two networks side by side; `pair(x)` returns both logits, `forward` their mean logits (what Grad-CAM
    explains; the method's predictions average the two probabilities instead)."""

    def __init__(self, first: nn.Module, second: nn.Module) -> None:
        super().__init__()
        self.first, self.second = first, second

    def pair(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.first(x), self.second(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack(self.pair(x)).mean(0)


@register_method("cps")
class CrossPseudoSupervision(ScheduledMethod):
    """Args: model_spec (built twice, from two seeds derived from the run's, without disturbing the global
    random state);
    consistency: final weight of the cross pseudo-label term (1.0); rampup; dice: batch | image."""

    def __init__(self, model_spec: dict, consistency: float = 1.0, rampup: float = 0.3, dice: str = "batch") -> None:
        super().__init__(model_spec)
        self.loss = HybridLoss(dice=dice)
        self.pseudo_loss = HybridLoss(ce_weight=1.0, dice_weight=0.0)
        self.schedule = ConsistencySchedule(consistency, rampup)

    def build_model(self) -> nn.Module:
        state = torch.random.get_rng_state()
        base = torch.initial_seed()  # the run's seed: the twins change with it, and still differ from each other
        try:
            torch.manual_seed((base * 2 + 1) % 2**63)
            first = build_model(self.model_spec)
            torch.manual_seed((base * 2 + 2) % 2**63)
            second = build_model(self.model_spec)
        finally:
            torch.random.set_rng_state(state)
        return TwinNetworks(first, second)

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        images, labeled = both_streams(batch)
        first, second = self.model.pair(images)
        supervised = self.loss(first[:labeled], batch["mask"]) + self.loss(second[:labeled], batch["mask"])
        with torch.no_grad():
            label_first = hard_prediction(probabilities(first.float()))
            label_second = hard_prediction(probabilities(second.float()))
        cross = self.pseudo_loss(first, label_second) + self.pseudo_loss(second, label_first)
        return {
            "loss": supervised + self.schedule.value * cross,
            "loss_supervised": supervised.detach(),
            "loss_cross": cross.detach(),
        }

    def predict(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        first, second = model.pair(images)
        return (probabilities(first.float()) + probabilities(second.float())) / 2
