"""Training patches from a store of slices at their own sizes (data.resolution: native), as nnU-Net draws them:
a share of each batch centred on a random foreground pixel, the rest anywhere, and slices smaller than a patch
padded (image 0, mask unknown, so the padding takes no part in the loss)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from medseg.data.store import Store
from medseg.losses import IGNORE_INDEX

__all__ = ["sample_patches", "patch_batches"]


def _window(length: int, patch: int, centre: int | None, generator: torch.Generator) -> int:
    """The start of a `patch`-long window over `length` (≥ patch) pixels: around `centre`, or uniform."""
    if centre is None:
        return int(torch.randint(0, length - patch + 1, (), generator=generator))
    return min(max(centre - patch // 2, 0), length - patch)


def _padded(image: np.ndarray, mask: np.ndarray, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """`(C, H, W)`, `(H, W)` padded at the bottom/right to at least `patch` on both sides."""
    height, width = mask.shape
    pad_h, pad_w = max(patch - height, 0), max(patch - width, 0)
    if not pad_h and not pad_w:
        return image, mask
    image = np.pad(image, ((0, 0), (0, pad_h), (0, pad_w)))
    return image, np.pad(mask, ((0, pad_h), (0, pad_w)), constant_values=IGNORE_INDEX)


def sample_patches(
    store: Store, rows: np.ndarray, patch: int, foreground: float, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """One `patch × patch` window per row: `{"image": (B, C, P, P) float32, "mask": (B, P, P) int64, "row": (B,)}`.

    The first `round(B · foreground)` windows are centred on a random foreground pixel of their slice (where it
    has one; anywhere otherwise), the others are uniform over the slice.
    """
    forced = round(len(rows) * foreground)
    images, masks = [], []
    for k, row in enumerate(rows):
        image, mask = _padded(np.asarray(store.image(row), np.float32), np.asarray(store.mask(row)), patch)
        centre_y = centre_x = None
        if k < forced:
            lesion = np.flatnonzero((mask > 0) & (mask != IGNORE_INDEX))
            if len(lesion):
                pick = int(lesion[int(torch.randint(0, len(lesion), (), generator=generator))])
                centre_y, centre_x = divmod(pick, mask.shape[1])
        top = _window(mask.shape[0], patch, centre_y, generator)
        left = _window(mask.shape[1], patch, centre_x, generator)
        images.append(image[:, top : top + patch, left : left + patch])
        masks.append(mask[top : top + patch, left : left + patch])
    return {
        "image": torch.from_numpy(np.stack(images)),
        "mask": torch.from_numpy(np.stack(masks).astype(np.int64)),
        "row": torch.from_numpy(np.asarray(rows, dtype=np.int64)),
    }


def patch_batches(
    store: Store,
    rows: np.ndarray,
    batch_size: int,
    patch: int,
    foreground: float,
    generator: torch.Generator,
    labels: np.ndarray | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Shuffled batches of patches of `rows`, reshuffled whenever they run out (as the trainer's square stream),
    each with `"label"` when `labels` is given."""
    while True:
        order = rows[torch.randperm(len(rows), generator=generator).numpy()]
        for start in range(0, len(order) - batch_size + 1 if len(order) >= batch_size else 1, batch_size):
            chunk = order[start : start + batch_size]
            batch = sample_patches(store, chunk, patch, foreground, generator)
            if labels is not None:
                batch["label"] = torch.from_numpy(labels[chunk])
            yield batch
