"""Eigen-CAM (Muhammad & Yeasin, IJCNN 2020): the centred activations projected on their first principal
component, per image; no gradient and no target (it shows what the layer holds most, whatever the class). A
component's sign is arbitrary: it is turned so that the projection rises with the total activation at a position."""

from __future__ import annotations

import torch

from medseg.explain.base import Explainer, register_explainer


@register_explainer("eigencam")
class EigenCAM(Explainer):
    gradients = False

    def weigh(self, activation: torch.Tensor, gradient: torch.Tensor | None) -> torch.Tensor:
        batch, channels, height, width = activation.shape
        flat = activation.reshape(batch, channels, height * width).transpose(1, 2)  # (B, hw, C)
        centred = flat - flat.mean(1, keepdim=True)
        _, _, vh = torch.linalg.svd(centred, full_matrices=False)
        projection = centred @ vh[:, 0, :, None]  # (B, hw, 1)
        agreement = (projection[..., 0] * flat.sum(-1)).sum(1)[:, None, None]
        projection = torch.where(agreement < 0, -projection, projection)
        return projection.transpose(1, 2).reshape(batch, 1, height, width)
