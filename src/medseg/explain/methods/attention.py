"""An attention model's own spatial attention maps, one per block (CBAM, spatial attention, attention gates, DANet's
position attention, MSGA), read during one forward pass: what the network weighs, not a score's explanation."""

from __future__ import annotations

import torch

from medseg.explain.attention_maps import spatial_attention_maps
from medseg.explain.base import Explainer, Request, register_explainer


@register_explainer("attention")
class AttentionMaps(Explainer):
    gradients = False
    single_map = False
    families = ("attention",)

    def named_maps(self, request: Request) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return spatial_attention_maps(request.model, request.images)
