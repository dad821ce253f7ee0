"""Overlay pictures: the image in grey, the prediction filled in red, the ground truth outlined in green."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import binary_erosion

from medseg.atomic import atomic_path

__all__ = ["to_display", "overlay", "explanation_figure", "save_png"]


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


def explanation_figure(path: str | Path, image: np.ndarray, weights: np.ndarray, title: str) -> None:
    """Save a readable explanation PNG: the image on the left; on the right the map `(H, W)` in [0, 1] over
    it, with a colour bar. Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    grey = to_display(image)
    figure, (left, right) = plt.subplots(1, 2, figsize=(7.2, 3.4), dpi=110, constrained_layout=True)
    left.imshow(grey)
    left.set_title("image", fontsize=9)
    right.imshow(grey)
    shown = right.imshow(weights, cmap="inferno", alpha=0.55, vmin=0.0, vmax=1.0)
    right.set_title(title, fontsize=9)
    for axis in (left, right):
        axis.set_axis_off()
    figure.colorbar(shown, ax=right, fraction=0.046, pad=0.03, label="relative weight")
    try:
        with atomic_path(path, suffix=".png") as tmp:
            figure.savefig(tmp, format="png")
    finally:
        plt.close(figure)


def save_png(path: str | Path, array: np.ndarray) -> None:
    """Save `(H, W)` or `(H, W, 3)` uint8 as PNG, atomically."""
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(array).save(tmp, format="PNG")
