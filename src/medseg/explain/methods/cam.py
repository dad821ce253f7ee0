"""CAM (Zhou et al., CVPR 2016): a classifier's class weights applied to its deepest features, `w_kᵀ F`."""

from __future__ import annotations

import torch

from medseg.explain.base import Explainer, Request, register_explainer
from medseg.explain.targets import to_input_size


@register_explainer("cam")
class CAM(Explainer):
    gradients = False
    classifier_only = True
    families = ("classifier",)
    weighted = False

    def maps(self, request: Request) -> torch.Tensor:
        self.check(request.model)
        height, width = request.images.shape[-2:]
        with torch.no_grad():
            raw = request.model.class_activation_map(request.images, request.class_index, weighted=self.weighted)
        return to_input_size(torch.relu(raw), height, width)
