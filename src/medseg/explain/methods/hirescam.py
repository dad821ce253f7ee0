"""HiResCAM (Draelos & Carin 2020): the gradient multiplies the activations position by position before the
channels are summed, so the map shows exactly what raised the score at that layer (no spatial averaging)."""

from __future__ import annotations

import torch

from medseg.explain.base import Explainer, register_explainer


@register_explainer("hirescam")
class HiResCAM(Explainer):
    def weigh(self, activation: torch.Tensor, gradient: torch.Tensor | None) -> torch.Tensor:
        return (gradient * activation).sum(1, keepdim=True)
