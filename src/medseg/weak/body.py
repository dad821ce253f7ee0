"""Where a lesion can be: the body's region of an image, shrunk by a margin, as a prior on localisation maps.

A classifier trained on image labels may recognise lesion slices by something outside the organ (on LGG, some
classifiers' maps lit the scalp at the edge of the head). The body region — the pixels brighter than the
background, holes filled, the largest connected piece — shrunk by a margin drops that rim, and the air around
the head, from the maps before they become pseudo-masks. It reads only the image.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

__all__ = ["body_regions"]


def _body_region(image: np.ndarray, margin_px: int, threshold: float) -> np.ndarray:
    """`(H, W)` image in about [0, 1] → `(H, W)` bool region; all True when nothing is left after shrinking."""
    peak = float(image.max())
    inside = image > threshold * peak if peak > 0 else np.zeros(image.shape, dtype=bool)
    labels, count = ndimage.label(ndimage.binary_fill_holes(inside))
    if count == 0:
        return np.ones(image.shape, dtype=bool)
    largest = labels == 1 + int(np.bincount(labels.ravel())[1:].argmax())
    # more than the margin from the outside; the frame counts as outside (the padding), for a head that touches it
    region = ndimage.distance_transform_edt(np.pad(largest, 1))[1:-1, 1:-1] > margin_px
    return region if region.any() else np.ones(image.shape, dtype=bool)


def body_regions(images: torch.Tensor, margin: float, threshold: float = 0.1) -> torch.Tensor:
    """The body region of each image, shrunk by `margin` × the shorter side.

    Args:
        images: `(B, C, H, W)` preprocessed images (about [0, 1]); the mean over channels is thresholded.
        margin: the share of the shorter side removed from the region's rim (0.05 → 6 pixels at 128²).
        threshold: background is below `threshold` × the image's brightest (channel-mean) pixel.

    Returns:
        `(B, 1, H, W)` float, 1 inside the region and 0 outside (all 1 for an image whose region vanishes).
    """
    if margin < 0:
        raise ValueError(f"the body region's margin must be ≥ 0, got {margin}")
    margin_px = round(margin * min(images.shape[-2:]))
    brightness = images.detach().float().mean(1).cpu().numpy()
    regions = np.stack([_body_region(image, margin_px, threshold) for image in brightness])
    return torch.from_numpy(regions)[:, None].float().to(images.device)
