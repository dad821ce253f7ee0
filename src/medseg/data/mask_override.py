"""Masks that replace the true ones for training: a `pseudo_masks.npz` (`ids`, `masks` `(N, S, S)` uint8 with
0 / 1 / `IGNORE_INDEX` = unknown) that `data.mask_override` puts in place of the training and validation
cases' masks (the weakly supervised path writes it; test cases keep their true masks)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from medseg.atomic import atomic_path
from medseg.data.store import Store
from medseg.errors import DataError
from medseg.losses import IGNORE_INDEX

__all__ = ["save_pseudo_masks", "load_pseudo_masks", "override_masks"]


def save_pseudo_masks(path: str | Path, ids: list[str], masks: np.ndarray) -> None:
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, ids=np.array(ids), masks=masks.astype(np.uint8))


def load_pseudo_masks(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Raises: DataError for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "pseudo-mask file not found (data.mask_override)")
    try:
        with np.load(path) as data:
            ids, masks = [str(i) for i in data["ids"]], data["masks"]
    except (KeyError, ValueError, OSError) as error:
        raise DataError(path, f"not a pseudo-mask file (expected arrays 'ids' and 'masks'): {error}") from None
    if masks.ndim != 3 or len(ids) != len(masks):
        raise DataError(path, f"expected masks (N, S, S) for N ids, got {masks.shape} for {len(ids)} ids")
    return ids, masks


def override_masks(store: Store, path: str | Path, allowed: set[str]) -> Store:
    """A store in which every case in `allowed` (the training and validation cases) has its pseudo-mask, or,
    if the file has none for it, an all-unknown mask: a true mask is never left in place for those cases.

    Raises:
        DataError: pseudo-masks of another size than the store's, or none for any allowed case.
    """
    ids, masks = load_pseudo_masks(path)
    if not store.uniform:
        raise DataError(path, "pseudo-masks replace the masks of a square store (data.resolution: square)")
    if masks.shape[1:] != store.masks.shape[1:]:
        raise DataError(
            path, f"pseudo-masks are {masks.shape[1:]}, the data is {store.masks.shape[1:]}: same data.size?"
        )
    replaced = np.array(store.masks)
    replaced[[store.position[case_id] for case_id in allowed if case_id in store.position]] = IGNORE_INDEX
    matched = 0
    for case_id, mask in zip(ids, masks, strict=True):
        if case_id in allowed and case_id in store.position:
            replaced[store.position[case_id]] = mask
            matched += 1
    if matched == 0:
        raise DataError(path, "no pseudo-mask for any training or validation case of this dataset (another split?)")
    return dataclasses.replace(store, mask_data=replaced.reshape(-1))
