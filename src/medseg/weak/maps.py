"""Localisation maps of a trained classifier for batches of preprocessed images, and how well they point."""

from __future__ import annotations

import torch

from medseg.explain.cam import class_target, default_layer, grad_cam, to_input_size
from medseg.models.classifier import Classifier

__all__ = ["MAP_METHODS", "lesion_maps", "pointing_hits", "map_dice"]

MAP_METHODS = ("cam", "acam", "gradcam")


def lesion_maps(model: Classifier, images: torch.Tensor, method: str, lesion_class: int = 0) -> torch.Tensor:
    """`(B, C, S, S)` → max-normalised maps `(B, 1, S, S)` in [0, 1] of the lesion class.

    cam: the plain class activation map (ACAM's weighting left out even if the classifier has it); acam: the
    attention-weighted map (needs `pool: attention`); gradcam: Grad-CAM at the deepest encoder stage.

    Raises:
        ValueError: an unknown method, or acam on a classifier without attention pooling.
    """
    if method not in MAP_METHODS:
        raise ValueError(f"map method must be one of {list(MAP_METHODS)}, got {method!r}")
    height, width = images.shape[-2:]
    if method == "gradcam":
        raw = grad_cam(model, default_layer(model), images, class_target(lesion_class))
    else:
        with torch.no_grad():
            raw = torch.relu(model.class_activation_map(images, lesion_class, weighted=method == "acam"))
    maps = to_input_size(raw, height, width)
    peak = maps.amax((1, 2, 3), keepdim=True)
    return torch.where(peak > 0, maps / peak.clamp_min(1e-12), torch.zeros_like(maps))


def pointing_hits(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Pointing game: 1 where the map's maximum falls inside the true lesion, per image `(B,)`."""
    flat = maps.flatten(1).argmax(1)
    return (masks.flatten(1) > 0).gather(1, flat[:, None])[:, 0].float()


def map_dice(maps: torch.Tensor, masks: torch.Tensor, threshold: float) -> torch.Tensor:
    """Dice of `maps ≥ threshold` against the true masks, per image `(B,)` (1 when both are empty)."""
    predicted, true = maps[:, 0] >= threshold, masks > 0
    overlap = (predicted & true).flatten(1).sum(1).float()
    total = predicted.flatten(1).sum(1).float() + true.flatten(1).sum(1).float()
    return torch.where(total > 0, 2 * overlap / total.clamp_min(1), torch.ones_like(total))
