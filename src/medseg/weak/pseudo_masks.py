"""Pseudo-masks from class activation maps (Wu et al., MICCAI 2019): confident lesion where the normalised
map is ≥ θ_FG, confident background where it is ≤ θ_BG, unknown (ignored by the loss) in between; images
labelled negative are background everywhere.

Stored as `pseudo_masks.npz` (`ids`, `masks` `(N, S, S)` uint8 with 0 / 1 / `IGNORE_INDEX` = unknown, see
`medseg.data.mask_override`), which `data.mask_override` puts in place of the true masks for training and
validation.
"""

from __future__ import annotations

import numpy as np
import torch

from medseg.losses import IGNORE_INDEX

__all__ = ["make_pseudo_masks", "mask_quality"]


def make_pseudo_masks(
    maps: torch.Tensor, labels: torch.Tensor, foreground: float = 0.1, background: float = 0.01
) -> torch.Tensor:
    """`maps` `(N, 1, S, S)` in [0, 1] (max-normalised), `labels` `(N,)` (1 = lesion present) → `(N, S, S)`
    uint8: 1 lesion, 0 background, `IGNORE_INDEX` unknown.

    Raises:
        ValueError: thresholds not in 0 ≤ background < foreground ≤ 1.
    """
    if not 0 <= background < foreground <= 1:
        raise ValueError(f"pseudo-mask thresholds need 0 ≤ background < foreground ≤ 1, got {background}, {foreground}")
    maps = maps[:, 0]
    masks = torch.full(maps.shape, IGNORE_INDEX, dtype=torch.uint8)
    masks[maps >= foreground] = 1
    masks[maps <= background] = 0
    masks[labels == 0] = 0
    return masks


def mask_quality(pseudo: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Pixel precision and recall of the confident lesion pixels, and the share of pixels left unknown."""
    lesion, known = pseudo == 1, pseudo != IGNORE_INDEX
    true = truth > 0
    hits = float((lesion & true).sum())
    return {
        "dice": 2 * hits / max(float(lesion.sum()) + float(true.sum()), 1.0),
        "precision": hits / max(float(lesion.sum()), 1.0),
        "recall": hits / max(float(true.sum()), 1.0),
        "background_error": float((known & (pseudo == 0) & true).sum()) / max(float(true.sum()), 1.0),
        "unknown_share": 1.0 - float(known.mean()),
    }
