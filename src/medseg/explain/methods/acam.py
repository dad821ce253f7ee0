"""ACAM (Wu et al., MICCAI 2019): the CAM of a classifier with attention pooling, weighed by its spatial attention
(`s_H s_W C_k`)."""

from __future__ import annotations

from torch import nn

from medseg.explain.base import register_explainer
from medseg.explain.methods.cam import CAM


@register_explainer("acam")
class ACAM(CAM):
    weighted = True

    def check(self, model: nn.Module) -> None:
        super().check(model)
        if model.pool != "attention":
            raise ValueError("--method acam needs a classifier trained with model.pool: attention")
