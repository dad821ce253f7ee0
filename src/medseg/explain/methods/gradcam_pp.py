"""Grad-CAM++ (Chattopadhyay et al., WACV 2018), the paper's closed form as pytorch-grad-cam computes it: each
channel weighed by Σ_ij α_ij ReLU(g_ij) with α = g² / (2g² + g³ Σ_ab A_ab). The paper's exp(score) factor is a
positive constant per image and is left out (it overflows for region scores, and normalising removes it)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medseg.explain.base import Explainer, register_explainer


@register_explainer("gradcam++")
class GradCAMPlusPlus(Explainer):
    def weigh(self, activation: torch.Tensor, gradient: torch.Tensor | None) -> torch.Tensor:
        squared = gradient.pow(2)
        denominator = 2 * squared + gradient.pow(3) * activation.sum((2, 3), keepdim=True)
        alpha = squared / torch.where(denominator != 0, denominator, torch.ones_like(denominator))
        weights = (alpha * F.relu(gradient)).sum((2, 3), keepdim=True)
        return (weights * activation).sum(1, keepdim=True)
