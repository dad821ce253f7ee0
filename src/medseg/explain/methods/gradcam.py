"""Grad-CAM (Selvaraju et al., ICCV 2017): each channel weighed by its gradient's spatial mean."""

from __future__ import annotations

import torch

from medseg.explain.base import Explainer, register_explainer


@register_explainer("gradcam")
class GradCAM(Explainer):
    def weigh(self, activation: torch.Tensor, gradient: torch.Tensor | None) -> torch.Tensor:
        return (gradient.mean((2, 3), keepdim=True) * activation).sum(1, keepdim=True)
