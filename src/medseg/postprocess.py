"""Probabilities → masks, as configured in `eval` (threshold, largest component); shared by the PyTorch and
the ONNX predictors."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy import ndimage

__all__ = ["keep_largest_component", "masks_from_probabilities", "average_over_flips"]

FLIPS = [(), (-1,), (-2,)]  # the image, and its horizontal and vertical flips


def average_over_flips(
    predict: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, enabled: bool
) -> torch.Tensor:
    """`predict(images)` `(B, K, H, W)`, or with `enabled` (flip test-time augmentation) its mean over the image
    and its two flips, each prediction flipped back. Image-level outputs `(B, K)` are averaged as they are."""
    total = None
    for dims in FLIPS if enabled else FLIPS[:1]:
        probs = predict(images.flip(dims) if dims else images)
        probs = probs.flip(dims) if dims and probs.dim() == 4 else probs
        total = probs if total is None else total + probs
    return total / (len(FLIPS) if enabled else 1)


def keep_largest_component(masks: np.ndarray) -> np.ndarray:
    """`(B, H, W)` binary masks → only the largest 8-connected foreground component of each kept."""
    out = np.zeros_like(masks)
    for k, mask in enumerate(masks):
        labels, count = ndimage.label(mask > 0, structure=np.ones((3, 3)))
        if count:
            sizes = np.bincount(labels.ravel())[1:]
            out[k] = (labels == 1 + int(sizes.argmax())).astype(masks.dtype)
    return out


def masks_from_probabilities(probs: torch.Tensor, threshold: float, largest_component: bool) -> np.ndarray:
    """Probabilities `(B, K, H, W)` → `(B, H, W)` uint8 class indices: `p ≥ threshold` for K = 1, argmax for
    K > 1; then, for binary masks, optionally only the largest component."""
    classes = (probs[:, 0] >= threshold) if probs.shape[1] == 1 else probs.argmax(1)
    masks = classes.numpy().astype(np.uint8)
    if largest_component and probs.shape[1] == 1:
        masks = keep_largest_component(masks)
    return masks
