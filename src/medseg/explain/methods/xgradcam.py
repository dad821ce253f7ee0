"""XGrad-CAM (Fu et al., BMVC 2020): each channel weighed by Σ_ij g_ij A_ij / Σ_ij A_ij, the gradient averaged
in proportion to the activation it multiplies."""

from __future__ import annotations

import torch

from medseg.explain.base import Explainer, register_explainer


@register_explainer("xgradcam")
class XGradCAM(Explainer):
    def weigh(self, activation: torch.Tensor, gradient: torch.Tensor | None) -> torch.Tensor:
        total = activation.sum((2, 3), keepdim=True)
        weights = (gradient * activation).sum((2, 3), keepdim=True) / (total + 1e-7)
        return (weights * activation).sum(1, keepdim=True)
