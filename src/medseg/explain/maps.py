"""Localisation maps of a trained classifier for batches of preprocessed images, and how well they point.

Methods: any registered explanation method that gives one map per image (`medseg.explain.map_methods()`), e.g.
`cam`, `acam` (attention-weighted, Wu et al. 2019), `gradcam` (at the deepest stage), `layercam` (LayerCAM over
the three deepest stages, whose finer stages localise at a higher resolution than the deepest one). Any of them
can be averaged over the image's flips and scales (`augment`), the test-time augmentation weakly supervised
segmentation papers use for their seeds.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from medseg.explain.base import EXPLAINERS, Request, map_methods
from medseg.explain.targets import class_target, scale_to_peak
from medseg.models.classifier import Classifier

__all__ = ["lesion_maps", "pointing_hits", "map_dice"]

SCALES = (1.0, 0.75, 1.25)  # the scales `augment` averages over, with the horizontal flip of each


def _raw_map(model: Classifier, images: torch.Tensor, method: str, lesion_class: int | torch.Tensor) -> torch.Tensor:
    """One method's map of the lesion class at the images' size, `(B, 1, H, W)`, ≥ 0 (not normalised)."""
    request = Request(model, images, class_target(lesion_class), lesion_class)
    return EXPLAINERS[method]().maps(request)


def lesion_maps(
    model: Classifier,
    images: torch.Tensor,
    method: str,
    lesion_class: int | torch.Tensor = 0,
    augment: bool = False,
    scales: Sequence[float] = SCALES,
) -> torch.Tensor:
    """`(B, C, S, S)` → max-normalised maps `(B, 1, S, S)` in [0, 1] of the lesion class.

    Args:
        method: a registered explanation method that gives one map (`medseg.explain.map_methods()`).
        augment: average the maps of the image at each of `scales`, and of its horizontal flip, each brought back
            to the image's pixels, before normalising.

    Raises:
        ValueError: an unknown method, or acam on a classifier without attention pooling.
    """
    if method not in map_methods():
        raise ValueError(f"map method must be one of {map_methods()}, got {method!r}")
    height, width = images.shape[-2:]
    views = [(scale, flip) for scale in scales for flip in (False, True)] if augment else [(1.0, False)]
    total = torch.zeros(images.shape[0], 1, height, width, device=images.device)
    for scale, flip in views:
        view = images.flip(-1) if flip else images
        if scale != 1.0:
            size = (max(16, round(height * scale)), max(16, round(width * scale)))
            view = F.interpolate(view, size=size, mode="bilinear", align_corners=False)
        raw = _raw_map(model, view, method, lesion_class)
        raw = F.interpolate(raw, size=(height, width), mode="bilinear", align_corners=False) if scale != 1 else raw
        total += raw.flip(-1) if flip else raw
    return scale_to_peak(total)


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
