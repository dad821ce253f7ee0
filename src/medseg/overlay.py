"""Overlay pictures: the image in grey, the prediction filled in red, the ground truth outlined in green."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import binary_erosion

from medseg.atomic import atomic_path

__all__ = ["to_display", "overlay", "heatmap", "save_png"]


def to_display(image: np.ndarray) -> np.ndarray:
    """`(C, H, W)` or `(H, W)` image → `(H, W, 3)` uint8 for display (per-image min–max; RGB kept when C = 3)."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3:
        image = image.mean(0) if image.shape[0] != 3 else np.moveaxis(image, 0, -1)
    low, high = np.percentile(image, (0.5, 99.5))
    scaled = np.clip((image - low) / max(high - low, 1e-6), 0, 1)
    rgb = scaled if scaled.ndim == 3 else np.repeat(scaled[..., None], 3, axis=2)
    return (rgb * 255).astype(np.uint8)


def _outline(mask: np.ndarray) -> np.ndarray:
    mask = mask.astype(bool)
    return mask & ~binary_erosion(mask, iterations=1, border_value=0)


def overlay(image: np.ndarray, prediction: np.ndarray | None, truth: np.ndarray | None = None) -> np.ndarray:
    """Draw masks `(H, W)` (non-zero = foreground) onto an image; returns `(H, W, 3)` uint8."""
    rgb = to_display(image).astype(np.float32)
    if prediction is not None:
        fill = prediction.astype(bool)
        rgb[fill] = 0.55 * rgb[fill] + 0.45 * np.array([255, 40, 40])
        rgb[_outline(fill)] = (255, 40, 40)
    if truth is not None:
        rgb[_outline(truth)] = (40, 255, 80)
    return rgb.astype(np.uint8)


def heatmap(image: np.ndarray, weights: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a map `(H, W)` in [0, 1] (colour map "inferno") over an image; returns `(H, W, 3)` uint8."""
    from matplotlib import colormaps

    colours = colormaps["inferno"](np.clip(weights, 0, 1))[..., :3] * 255
    rgb = (1 - alpha) * to_display(image).astype(np.float32) + alpha * colours
    return rgb.astype(np.uint8)


def save_png(path: str | Path, array: np.ndarray) -> None:
    """Save `(H, W)` or `(H, W, 3)` uint8 as PNG, atomically."""
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(array).save(tmp, format="PNG")
