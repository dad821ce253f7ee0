"""LayerCAM (Jiang et al., TIP 2021) over the three deepest encoder stages: at each, ReLU(Σ_c ReLU(g_c) · A_c) per
position (the gradient weighs every position, not only every channel, so the finer stages localise too); each
stage's map is divided by its peak and the stages are combined by their per-pixel maximum."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medseg.explain.base import Explainer, register_explainer


@register_explainer("layercam")
class LayerCAM(Explainer):
    stages = 3

    def weigh(self, activation: torch.Tensor, gradient: torch.Tensor | None) -> torch.Tensor:
        return (F.relu(gradient) * activation).sum(1, keepdim=True)
